//! Density models end to end: toy data, a short maximum-likelihood run on two moons, tables
//! (standardization, bad cells named), batch normalization refused without data, early stopping.
//! The layers themselves are checked in `flow_layers.rs`.
mod common;
use common::*;
use flowlab::data::toy::ToyData;
use flowlab::distribution::{Distribution, StandardNormal};
use tch::{Device, Kind};

#[test]
fn toy_sets_are_seeded_finite_and_distinct() {
    for json in [
        "\"moons\"",
        "\"circles\"",
        "\"rings\"",
        "\"8gaussians\"",
        "\"pinwheel\"",
        "\"2spirals\"",
        "\"checkerboard\"",
    ] {
        let set: ToyData = serde_json::from_str(json).unwrap();
        let a = set.sample(1000, 1);
        assert_eq!(a.size(), vec![1000, 2]);
        assert!(a.isfinite().all().int64_value(&[]) == 1);
        assert!(
            a.equal(&set.sample(1000, 1)),
            "{json}: same seed, same data"
        );
        assert!(
            !a.equal(&set.sample(1000, 2)),
            "{json}: another seed, other data"
        );
        let spread = a.abs().max().double_value(&[]);
        assert!(
            spread > 0.5 && spread < 8.0,
            "{json}: points within the usual window, max |x| = {spread}"
        );
    }
}

#[test]
fn a_short_realnvp_run_on_two_moons_learns_the_density() {
    let dir = scratch("moons");
    let cfg = r#"{
  "name": "moons",
  "model": { "density": { "data": { "toy": { "name": "moons", "n_train": 4000, "n_val": 1000, "n_test": 2000 } },
                           "flow": [{ "coupling": { "length": 6, "hidden": [32, 32] } }] } },
  "train": { "steps": 1500, "batch_size": 256, "optimizer": { "lr": 0.003 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": 100, "image_every": 500, "checkpoint_every": 500 }
}"#;
    let o = run_config(&dir, "moons.json", cfg);
    let out = dir.join("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&out.join("moons"));
    // The flow starts as the identity, i.e. N(0, I), which scores `baseline` nats on moons data.
    // The data's own entropy is about 2.34 nats (arcs of total length 4π, noise σ = 0.2 across:
    // ln 4π + ½ ln(2πe·0.04)), a floor no model beats by more than sampling noise.
    let moons = ToyData::Moons.sample(20_000, 99).to_kind(Kind::Double);
    let base = StandardNormal::new(vec![2], Kind::Double, Device::Cpu);
    let baseline = -base
        .log_prob(&moons)
        .unwrap()
        .mean(Kind::Double)
        .double_value(&[]);
    let nll = m["test_nll"].as_f64().unwrap();
    assert!(baseline > 2.9, "N(0, I) baseline {baseline}");
    assert!(
        nll < 2.6 && nll > 2.2,
        "test NLL {nll} (baseline {baseline}, entropy ≈ 2.34)"
    );
    let csv = std::fs::read_to_string(out.join("moons/scalars.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("1500,val/nll,")));
    for f in ["density", "data", "samples"] {
        assert!(out.join(format!("moons/figures/{f}.png")).is_file());
    }
    let o = flowlab(&[
        "check",
        out.join("moons").to_str().unwrap(),
        "--grid",
        "600",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// Rows of a 3-D Gaussian with mean (10, −5, 100) and covariance L Lᵀ, L lower triangular.
fn gaussian_table(n: usize, seed: u64) -> String {
    let mut rng = flowlab::data::toy::Rng::new(seed);
    let mut out = String::from("a,b,c\n");
    for _ in 0..n {
        let e: Vec<f64> = (0..3).map(|_| rng.normal()).collect();
        let x = [
            10.0 + 2.0 * e[0],
            -5.0 + 0.5 * e[0] + 0.3 * e[1],
            100.0 - 4.0 * e[1] + 20.0 * e[2],
        ];
        out.push_str(&format!("{},{},{}\n", x[0], x[1], x[2]));
    }
    out
}

#[test]
fn a_table_is_standardized_and_log_prob_comes_back_in_data_units() {
    let dir = scratch("table");
    let data = write(&dir, "gauss.csv", &gaussian_table(6000, 1));
    let cfg = format!(
        r#"{{ "name": "t",
  "model": {{ "density": {{ "data": {{ "csv": {{ "path": "{}" }} }}, "flow": [{{ "maf": {{ "length": 2, "hidden": [32] }} }}] }} }},
  "train": {{ "steps": 800, "batch_size": 256, "optimizer": {{ "lr": 0.003 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "log_every": 100, "image_every": 0, "checkpoint_every": 400 }} }}"#,
        data.display()
    );
    let o = run_config(&dir, "t.json", &cfg);
    let out = dir.join("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    // Held-out rows from the same Gaussian: the mean log-density in data units must approach −H,
    // H = ½ ln det(2πe Σ) with det Σ = (2 · 0.3 · 20)² = 144.
    let fresh = write(&dir, "fresh.csv", &gaussian_table(4000, 2));
    let lp = dir.join("lp.csv");
    let o = flowlab(&[
        "log-prob",
        out.join("t").to_str().unwrap(),
        "--input",
        fresh.to_str().unwrap(),
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
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let entropy =
        0.5 * (3.0 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + 144f64.ln());
    assert!(
        (mean + entropy).abs() < 0.1,
        "mean log p = {mean}, −H = {}",
        -entropy
    );
    // Samples come back in data units too.
    let s = dir.join("s.csv");
    let o = flowlab(&[
        "sample",
        out.join("t").to_str().unwrap(),
        "-n",
        "4000",
        "--out",
        s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = flowlab::data::csv::read_matrix(&s, 3).unwrap();
    let m = Vec::<f64>::try_from(x.mean_dim(0, false, Kind::Double)).unwrap();
    assert!(
        (m[0] - 10.0).abs() < 0.3 && (m[1] + 5.0).abs() < 0.1 && (m[2] - 100.0).abs() < 2.0,
        "sample mean {m:?}"
    );
}

#[test]
fn bad_tables_are_named_with_row_and_column() {
    let dir = scratch("bad-table");
    let out = dir.join("runs");
    for (file, text, needle) in [
        (
            "gap.csv",
            "a,b\n1,2\n3,\n",
            "row 2 (line 3) column 2: empty cell",
        ),
        (
            "word.csv",
            "a,b\n1,2\n3,x\n",
            "row 2 (line 3) column 2: `x` is not a number",
        ),
        (
            "inf.csv",
            "a,b\n1,2\n3,inf\n",
            "row 2 (line 3) column 2: inf is not a finite number",
        ),
        (
            "cols.csv",
            "a,b\n1,2\n3,4,5\n",
            "row 2 (line 3): 3 columns, expected 2",
        ),
        ("nohead.csv", "1,2\n3,4\n", "must be a header"),
    ] {
        let data = write(&dir, file, text);
        let cfg = format!(
            r#"{{ "name": "b", "model": {{ "density": {{ "data": {{ "csv": {{ "path": "{}" }} }}, "flow": [{{ "affine": {{}} }}] }} }} }}"#,
            data.display()
        );
        let o = run_config(&dir, "b.json", &cfg);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(file) && err.contains(needle), "{err}");
        assert!(!out.join("b").exists(), "no run folder for bad data");
    }
}

#[test]
fn batchnorm_is_refused_where_there_is_no_data() {
    let dir = scratch("bn-fit");
    let cfg = tiny_config("bn", 2, 10).replace(
        r#"[{ "planar": { "length": 2 } }]"#,
        r#"[{ "planar": { "length": 2 } }, { "batchnorm": {} }]"#,
    );
    let o = run_config(&dir, "bn.json", &cfg);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("batchnorm needs data"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn early_stopping_keeps_the_best_validation_weights() {
    let dir = scratch("early");
    // A tiny table overfits fast: validation NLL turns up, and training stops with the best
    // weights in model.safetensors.
    let data = write(&dir, "small.csv", &gaussian_table(60, 3));
    let cfg = format!(
        r#"{{ "name": "e",
  "model": {{ "density": {{ "data": {{ "csv": {{ "path": "{}", "val_fraction": 0.25, "test_fraction": 0.25 }} }},
                           "flow": [{{ "coupling": {{ "length": 4, "hidden": [64, 64] }} }}] }} }},
  "train": {{ "steps": 4000, "batch_size": 30, "optimizer": {{ "lr": 0.003 }}, "early_stopping": {{ "patience": 5 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "log_every": 20, "image_every": 0, "checkpoint_every": 100 }} }}"#,
        data.display()
    );
    let o = run_config(&dir, "e.json", &cfg);
    let out = dir.join("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("early stopping at step"),
        "{}",
        stderr(&o)
    );
    let m = metrics(&out.join("e"));
    assert_eq!(m["stopped_early"], true);
    let (best_step, steps) = (
        m["best_step"].as_i64().unwrap(),
        m["steps"].as_i64().unwrap(),
    );
    assert_eq!(
        steps,
        best_step + 5 * 20,
        "stops `patience` checks after the best"
    );
    // The reported best equals the minimum of the logged validation curve, and the final weights
    // reproduce it.
    let csv = std::fs::read_to_string(out.join("e/scalars.csv")).unwrap();
    let vals: Vec<f32> = csv
        .lines()
        .filter(|l| l.contains(",val/nll,"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let min = vals.iter().cloned().fold(f32::INFINITY, f32::min);
    assert_eq!(m["best_val"].as_f64().unwrap() as f32, min);
    assert!(
        (m["val_nll"].as_f64().unwrap() - m["best_val"].as_f64().unwrap()).abs() < 1e-4,
        "{m}"
    );
}

#[test]
fn constant_columns_are_named() {
    let dir = scratch("constant");
    let data = write(
        &dir,
        "c.csv",
        &format!(
            "a,flat,b\n{}",
            (0..50)
                .map(|i| format!("{},7,{}\n", i, i * i % 13))
                .collect::<String>()
        ),
    );
    let cfg = format!(
        r#"{{ "name": "c", "model": {{ "density": {{ "data": {{ "csv": {{ "path": "{}" }} }}, "flow": [{{ "affine": {{}} }}] }} }} }}"#,
        data.display()
    );
    let o = run_config(&dir, "c.json", &cfg);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("column(s) flat are constant"),
        "{}",
        stderr(&o)
    );
}
