//! `flowlab export` writes notebooks that nbformat accepts, with the equations, metrics, curves
//! and figures of the runs; `flowlab plot curves` draws one tag of several runs.
mod common;
use common::*;

#[test]
fn export_writes_a_valid_notebook_with_equations_curves_and_figures() {
    let dir = scratch("export");
    let a = train_tiny(&dir, "a", 2, 40);
    let b = train_tiny(&dir, "b", 3, 40);
    let nb = dir.join("out/walk.ipynb");
    let o = flowlab(&[
        "export",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        nb.to_str().unwrap(),
        "--title",
        "Planar on U1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let check = std::process::Command::new(python())
        .args(["-c", "import nbformat, sys; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); print(len(nb.cells))", nb.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nbformat rejects the notebook: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = std::fs::read_to_string(&nb).unwrap();
    assert!(
        text.contains("# Planar on U1")
            && text.contains("Rezende & Mohamed 2015, §6.1")
            && text.contains("Rezende & Mohamed 2015, eq. 10–12")
    );
    // One overlay figure per curve tag (both runs on it), figures linked, not embedded; every
    // path relative to the notebook's folder, so it opens from there.
    assert_eq!(
        text.matches("image/png").count(),
        4,
        "train/loss, elbo, kl, log_det"
    );
    assert!(
        text.contains("\\\"../runs/a\\\"") && text.contains("../runs/b/figures/fitted.png"),
        "relative paths"
    );
    assert!(!text.contains(dir.to_str().unwrap()), "no absolute paths");
    let nb2 = dir.join("out/figs.ipynb");
    let o = flowlab(&[
        "export",
        a.to_str().unwrap(),
        "--out",
        nb2.to_str().unwrap(),
        "--figures",
        "fitted",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text2 = std::fs::read_to_string(&nb2).unwrap();
    assert_eq!(
        text2.matches("image/png").count(),
        4 + 1,
        "curves and the chosen figure"
    );
    assert!(text.contains(" | kl | ") && text.contains("Run `b`"));
    let o = flowlab(&[
        "export",
        a.to_str().unwrap(),
        "--out",
        dir.join("x.json").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains(".ipynb"));
}

#[test]
fn plot_curves_draws_a_tag_of_several_runs() {
    let dir = scratch("curves");
    let a = train_tiny(&dir, "a", 2, 40);
    let b = train_tiny(&dir, "b", 3, 40);
    let out = dir.join("kl.png");
    let o = flowlab(&[
        "plot",
        "curves",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--tag",
        "train/kl",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (900, 520));
    // Both runs' colours appear (blue, orange).
    let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
    assert!(has([31, 119, 180]) && has([255, 127, 14]));
    let o = flowlab(&[
        "plot",
        "curves",
        a.to_str().unwrap(),
        "--tag",
        "train/nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(
        !o.status.success()
            && e.contains("no run has the tag `train/nope`")
            && e.contains("train/kl"),
        "{e}"
    );
}
