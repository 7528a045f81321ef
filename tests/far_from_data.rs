//! Densities where users look, not only where the samples are: every density model kind, trained
//! briefly, gives a finite log-density on a wide grid and at points a thousand units out, its
//! density integrates to 1 on a generous box, and float64 agrees with float32 where both are
//! finite and stays finite further out. Batch normalization can evaluate with the training set's
//! statistics.
mod common;
use common::*;
use std::path::Path;

/// Each density model kind: (run name, flow blocks, base).
const KINDS: &[(&str, &str, &str)] = &[
    (
        "maf",
        r#"[{"maf": {"length": 3, "hidden": [32, 32]}}]"#,
        "standard_normal",
    ),
    (
        "maf-additive",
        r#"[{"maf": {"length": 3, "hidden": [32, 32], "law": "additive"}}, {"affine": {}}]"#,
        "standard_normal",
    ),
    (
        "maf-spline",
        r#"[{"maf": {"length": 2, "hidden": [32, 32], "law": {"spline": {"bins": 6, "bound": 4.0}}}}]"#,
        "standard_normal",
    ),
    (
        "maf-bn",
        r#"[{"maf": {"length": 3, "hidden": [32, 32], "batchnorm": true}}]"#,
        "standard_normal",
    ),
    (
        "iaf",
        r#"[{"maf": {"length": 2, "hidden": [32, 32], "iaf": true}}]"#,
        "standard_normal",
    ),
    (
        "realnvp",
        r#"[{"coupling": {"length": 4, "hidden": [32, 32]}}]"#,
        "diag_normal",
    ),
    (
        "nice",
        r#"[{"coupling": {"length": 4, "hidden": [32, 32], "law": "additive"}}, {"affine": {}}]"#,
        "logistic",
    ),
    (
        "nsf",
        r#"[{"coupling": {"length": 4, "hidden": [32, 32], "law": {"spline": {"bins": 6, "bound": 4.0}}}}]"#,
        "standard_normal",
    ),
    (
        "glow-vector",
        r#"[{"actnorm": {}}, {"linear": {"lu": true}}, {"coupling": {"length": 2, "hidden": [32]}}, {"actnorm": {}}, {"linear": {"lu": false}}, {"coupling": {"length": 2, "hidden": [32]}}]"#,
        "standard_normal",
    ),
];

fn config(name: &str, flow: &str, base: &str) -> String {
    format!(
        r#"{{ "name": "{name}",
  "model": {{ "density": {{ "data": {{ "toy": {{ "name": "moons", "n_train": 2000, "n_val": 500, "n_test": 500 }} }},
                           "base": "{base}", "flow": {flow} }} }},
  "train": {{ "steps": 300, "batch_size": 128, "optimizer": {{ "lr": 0.003 }}, "seed": 0 }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "log_every": 100, "image_every": 0, "checkpoint_every": 300 }} }}"#
    )
}

/// Writes the points as a two-column CSV.
fn write_points(path: &Path, points: &[(f64, f64)]) {
    let mut s = String::from("x1,x2\n");
    for (a, b) in points {
        s += &format!("{a},{b}\n");
    }
    std::fs::write(path, s).unwrap();
}

/// `flowlab log-prob` on `points` (refusing non-finite results unless `allow`); the values.
fn log_prob(run: &Path, points: &[(f64, f64)], extra: &[&str]) -> Result<Vec<f64>, String> {
    let input = run.with_extension("points.csv");
    let out = run.with_extension("lp.csv");
    write_points(&input, points);
    let mut args = vec![
        "log-prob",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = flowlab(&args);
    if !o.status.success() {
        return Err(stderr(&o));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    Ok(text
        .lines()
        .skip(1)
        .map(|l| l.trim().parse::<f64>().unwrap())
        .collect())
}

/// Cell centres of an n × n grid on [−h, h]², and the cell area.
fn grid(h: f64, n: usize) -> (Vec<(f64, f64)>, f64) {
    let step = 2.0 * h / n as f64;
    let c = |i: usize| -h + (i as f64 + 0.5) * step;
    let pts = (0..n)
        .flat_map(|i| (0..n).map(move |j| (c(i), c(j))))
        .collect();
    (pts, step * step)
}

fn far_points() -> Vec<(f64, f64)> {
    let (mut pts, _) = grid(50.0, 100);
    for (a, b) in [
        (1e3, 1e3),
        (-1e3, 1e3),
        (1e3, 0.0),
        (0.0, -1e3),
        (-1e3, -1e3),
    ] {
        pts.push((a, b));
    }
    pts
}

#[test]
fn every_density_kind_is_finite_far_from_the_data_and_integrates_to_one() {
    let dir = scratch("far");
    for (name, flow, base) in KINDS {
        let mut cfg = config(name, flow, base);
        if *name == "maf-bn" {
            cfg = cfg.replace(
                r#""base": "standard_normal","#,
                r#""base": "standard_normal", "batchnorm_statistics": "training_set","#,
            );
        }
        let o = run_config(&dir, &format!("{name}.json"), &cfg);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let run = dir.join("runs").join(name);
        // Without --allow-nonfinite the command refuses any NaN or ±inf.
        let lp = log_prob(&run, &far_points(), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(lp.iter().all(|v| v.is_finite()), "{name}");
        // Mass on [−20, 20]² (the logistic base's tails beyond are below 1e-7).
        let (pts, area) = grid(20.0, 800);
        let lp = log_prob(&run, &pts, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mass: f64 = lp.iter().map(|v| v.exp()).sum::<f64>() * area;
        assert!((mass - 1.0).abs() < 0.01, "{name}: mass {mass} on the box");
    }
}

#[test]
fn float64_agrees_with_float32_and_reaches_further() {
    let dir = scratch("dtype");
    let (name, flow, base) = KINDS[0];
    let o = run_config(&dir, "maf.json", &config(name, flow, base));
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("runs").join(name);
    let near = [(0.0, 0.0), (1.0, 0.5), (-1.0, 0.3), (2.0, -0.5), (5.0, 5.0)];
    let f32 = log_prob(&run, &near, &["--dtype", "f32"]).unwrap();
    let f64 = log_prob(&run, &near, &["--dtype", "f64"]).unwrap();
    for (a, b) in f32.iter().zip(&f64) {
        assert!(
            (a - b).abs() < 1e-4 * (1.0 + b.abs()),
            "f32 {a} against f64 {b}"
        );
    }
    // At 1e30 a squared base coordinate overflows float32, not float64.
    let far = [(1e30, 0.0)];
    let err = log_prob(&run, &far, &["--dtype", "f32"]).unwrap_err();
    assert!(
        err.contains("not finite") && err.contains("rows 1"),
        "{err}"
    );
    let lp = log_prob(&run, &far, &["--dtype", "f64"]).unwrap();
    assert!(lp[0].is_finite() && lp[0] < -1e50, "{lp:?}");
    // A run trained in float64 stores float64 weights and evaluates in float64 by default.
    let o = run_config(
        &dir,
        "maf64.json",
        &config("maf64", flow, base).replace(
            r#""device": "cpu" }"#,
            r#""device": "cpu", "dtype": "f64" }"#,
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lp = log_prob(&dir.join("runs/maf64"), &far, &[]).unwrap();
    assert!(lp[0].is_finite(), "{lp:?}");
    let m = metrics(&dir.join("runs/maf64"));
    assert!(m["test_nll"].as_f64().unwrap() < 2.9, "{m}");
}
