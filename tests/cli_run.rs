//! End to end through the `flowlab` binary: a short run, its artifacts, and the tools that read
//! them (eval, sample, log-prob, check, plot), plus TensorBoard's own reader.
mod common;
use common::*;
use std::process::Command;

#[test]
fn a_short_run_writes_every_artifact_and_the_tools_read_them() {
    let dir = scratch("e2e");
    let cfg = write(&dir, "tiny.json", &tiny_config("tiny", 4, 300));
    let out = dir.join("runs");
    let o = flowlab(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = out.join("tiny");
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "metrics.json",
        "scalars.csv",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    for f in ["target", "fitted", "samples"] {
        let png = std::fs::read(run.join("figures").join(format!("{f}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{f}.png is a PNG");
    }
    let m = metrics(&run);
    for key in [
        "free_energy",
        "kl",
        "log_z",
        "log_det",
        "steps_per_sec",
        "train_seconds",
        "threads",
        "device",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(m["steps"], 300);
    assert_eq!(m["threads"], 1);
    // KL(q‖p) = F + ln Z ≥ 0 up to Monte-Carlo noise, and 300 steps already beat the initial flow.
    let kl = m["kl"].as_f64().unwrap();
    assert!(kl > -0.05 && kl < 3.0, "kl = {kl}");

    // eval re-estimates the same quantity from the checkpoint.
    let o = flowlab(&["eval", run.to_str().unwrap(), "--samples", "20000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        (e["kl"].as_f64().unwrap() - kl).abs() < 0.1,
        "eval kl {} vs run kl {kl}",
        e["kl"]
    );

    // sample → log-prob: one finite density per sample.
    let samples = dir.join("x.csv");
    let o = flowlab(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "500",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&samples).unwrap();
    assert_eq!(text.lines().count(), 501);
    assert_eq!(text.lines().next().unwrap(), "x1,x2");
    let lp = dir.join("lp.csv");
    let o = flowlab(&[
        "log-prob",
        run.to_str().unwrap(),
        "--input",
        samples.to_str().unwrap(),
        "--out",
        lp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vals: Vec<f64> = std::fs::read_to_string(&lp)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(vals.len(), 500);
    assert!(vals.iter().all(|v| v.is_finite()));

    // Rows whose density is not finite are never written silently: named, non-zero exit.
    let bad_in = dir.join("bad.csv");
    std::fs::write(&bad_in, "x1,x2\n0.5,0.1\n1e30,1e30\n1,-0.3\n-1e25,3\n").unwrap();
    let bad_out = dir.join("bad-lp.csv");
    let args = [
        "log-prob",
        run.to_str().unwrap(),
        "--input",
        bad_in.to_str().unwrap(),
        "--out",
        bad_out.to_str().unwrap(),
    ];
    let o = flowlab(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("2 of 4 log-densities are not finite (data rows 2, 4)"),
        "{}",
        stderr(&o)
    );
    assert!(!bad_out.exists(), "a refused result must not be written");
    let o = flowlab(&[&args[..], &["--allow-nonfinite"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("written as they are"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&bad_out).unwrap().lines().count(),
        5
    );

    // The trained flow passes the three checks.
    let o = flowlab(&["check", run.to_str().unwrap(), "--grid", "600"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let report = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        report.matches(" ok").count(),
        5,
        "4 layers and the whole flow:\n{report}"
    );

    // plot run regenerates the figures.
    std::fs::remove_file(run.join("figures/fitted.png")).unwrap();
    let o = flowlab(&["plot", "run", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run.join("figures/fitted.png").is_file());

    // The running folder is never overwritten by a second run of the same name.
    let o = flowlab(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn tensorboard_reads_back_every_scalar_exactly() {
    let dir = scratch("tb");
    let run = train_tiny(&dir, "tb", 2, 200);
    // TensorBoard's EventAccumulator dumps (tag, step, value) of every scalar, and the tags of
    // images and text it found.
    let script = r#"
import sys, json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'images': 0, 'tensors': 0, 'histograms': 0})
acc.Reload()
tags = acc.Tags()
rows = [[t, e.step, e.value] for t in tags['scalars'] for e in acc.Scalars(t)]
hist = {t: [[e.step, e.histogram_value.num] for e in acc.Histograms(t)] for t in tags['histograms']}
print(json.dumps({'scalars': rows, 'images': tags['images'], 'tensors': tags['tensors'], 'histograms': hist}))
"#;
    let o = Command::new(python())
        .args(["-c", script, run.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tb: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let csv = std::fs::read_to_string(run.join("scalars.csv")).unwrap();
    let mut expected: Vec<(String, i64, f32)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let p: Vec<&str> = l.split(',').collect();
            (
                p[1].to_string(),
                p[0].parse().unwrap(),
                p[2].parse().unwrap(),
            )
        })
        .collect();
    let mut got: Vec<(String, i64, f32)> = tb["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_i64().unwrap(),
                r[2].as_f64().unwrap() as f32,
            )
        })
        .collect();
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(got.len(), expected.len());
    // flowlab's own reader (checksums verified) gives the same records.
    let event_file = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("tfevents"))
        .unwrap();
    let mut own = flowlab::log::tensorboard::read_scalars(&event_file).unwrap();
    own.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(own, expected);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.0, e.0);
        assert_eq!(g.1, e.1);
        assert_eq!(
            g.2.to_bits(),
            e.2.to_bits(),
            "{} at step {}: {} vs {}",
            g.0,
            g.1,
            g.2,
            e.2
        );
    }
    for tag in [
        "train/loss",
        "train/elbo",
        "train/kl",
        "train/log_det",
        "train/beta",
        "train/lr",
        "train/grad_norm",
        "layers/0.planar.1/log_det",
    ] {
        assert!(
            got.iter().filter(|r| r.0 == tag).count() == 10,
            "{tag}: one value per 20 steps"
        );
    }
    assert!(
        tb["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "density"),
        "{}",
        tb["images"]
    );
    assert!(
        tb["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "config"),
        "{}",
        tb["tensors"]
    );
    // Parameter histograms at each image step (100, 200): u of the K = 2 planar block has 4 values.
    assert_eq!(
        tb["histograms"]["params/flow.0.u"],
        serde_json::json!([[100, 4.0], [200, 4.0]]),
        "{}",
        tb["histograms"]
    );
}

#[test]
fn plot_density_draws_the_seed_figure_one_and_rejects_bad_parameters() {
    let dir = scratch("plot");
    let fig = dir.join("fig1.png");
    let o = flowlab(&["plot", "fig1", "--out", fig.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fig.is_file());
    let one = dir.join("planar.png");
    let o = flowlab(&[
        "plot",
        "density",
        "--planar",
        "1,0;5,0;0",
        "--out",
        one.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flowlab(&[
        "plot",
        "density",
        "--radial",
        "0,0;0.5;-2",
        "--out",
        one.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("beta ≥ −alpha"), "{}", stderr(&o));
    let o = flowlab(&["plot", "target", "U9", "--out", one.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("U9"));
}

#[test]
fn radial_flows_train_too() {
    let dir = scratch("radial");
    let o = run_config(
        &dir,
        "r.json",
        &tiny_config("r", 8, 200).replace("planar", "radial"),
    );
    let out = dir.join("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let kl = metrics(&out.join("r"))["kl"].as_f64().unwrap();
    assert!(kl.is_finite() && kl > -0.05, "kl = {kl}");
}
