//! HI-VAE tables as users bring them: class columns coded by any integers (re-indexed as the
//! release does and written back in their own codes), `impute` on every line-ending and quoting
//! variant writing every cell it reports, a run folder that imputes from anywhere without its
//! training files, and the per-column error measure against a hand computation.
mod common;
use common::*;
use flowlab::data::hetero::{ColumnType, Kind};
use flowlab::model::hivae_lik::{column_error, Head, Imputation, Params, Stats};
use std::path::{Path, PathBuf};
use tch::{Kind as DType, Tensor};

/// Cat codes −1, 0, 7 (0-based and negative, with a gap); ordinal levels 0..=3 where the types
/// file declares 5 (level 4 never occurs); a count column from 0.
const CAT_CODES: [i64; 3] = [-1, 0, 7];

fn coded_table(dir: &Path) {
    let mut data = String::new();
    for i in 0..240 {
        let g = i % 3;
        let real = g as f64 * 2.0 - 2.0 + ((i * 37 % 11) as f64 - 5.0) / 10.0;
        let count = g * 2 + (i % 2);
        let ord = (g + (i % 2)).min(3);
        data += &format!("{real},{count},{},{ord}\n", CAT_CODES[g]);
    }
    std::fs::write(dir.join("data.csv"), data).unwrap();
    std::fs::write(
        dir.join("types.csv"),
        "type,dim,nclass\nreal,1,\ncount,1,\ncat,3,3\nordinal,5,5\n",
    )
    .unwrap();
    let mask: String = (1..=240)
        .filter(|r| r % 4 == 0)
        .map(|r| format!("{r},{}\n", r % 4 + 1))
        .collect();
    std::fs::write(dir.join("mask.csv"), mask).unwrap();
}

/// Trains a small HI-VAE on [`coded_table`] in `dir`; its run folder.
fn train(dir: &Path) -> PathBuf {
    coded_table(dir);
    let cfg = format!(
        r#"{{ "name": "coded",
  "model": {{ "hivae": {{ "data": {{ "csv": "{d}/data.csv", "types": "{d}/types.csv", "missing": {{ "mask": "{d}/mask.csv" }} }} }} }},
  "train": {{ "epochs": 8, "batch_size": 40, "optimizer": {{ "lr": 0.01 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "every_epoch": true }} }}"#,
        d = dir.display()
    );
    let o = run_config(dir, "coded.json", &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join("runs/coded")
}

/// `flowlab impute RUN --input IN --out OUT`, run in `cwd`.
fn impute(run: &Path, input: &Path, out: &Path, cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .current_dir(cwd)
        .args(["impute", run.to_str().unwrap(), "--input"])
        .args([input, Path::new("--out"), out])
        .output()
        .unwrap()
}

/// The data rows of an output file (LF, no quotes needed for numbers), skipping a header.
fn rows_of(text: &str, header: bool) -> Vec<Vec<String>> {
    text.lines()
        .skip(usize::from(header))
        .map(|l| {
            l.split(',')
                .map(|c| c.trim_matches('"').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn class_codes_of_any_integers_are_reindexed_and_written_back() {
    let dir = scratch("hivae-codes");
    let run = train(&dir);
    let input = write(&dir, "gaps.csv", "0.5,,,\n,3,7,\n-1.0,0,,2\n,,,\n");
    let out = dir.join("filled.csv");
    let o = impute(&run, &input, &out, &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("filled 10 missing cells"),
        "{}",
        stderr(&o)
    );
    let rows = rows_of(&std::fs::read_to_string(&out).unwrap(), false);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let cat: i64 = r[2].parse().unwrap();
        assert!(
            CAT_CODES.contains(&cat),
            "cat {cat} is not one of the table's codes"
        );
        let ord: i64 = r[3].parse().unwrap();
        assert!(
            (0..=3).contains(&ord),
            "ordinal {ord} is not one of the table's levels"
        );
        let count: i64 = r[1].parse().unwrap();
        assert!(count >= 0);
    }
    assert_eq!(rows[1][2], "7", "an observed code changed");
    // Samples come back in the table's own codes too.
    let samples = dir.join("samples.csv");
    let o = flowlab(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "200",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for r in rows_of(&std::fs::read_to_string(&samples).unwrap(), true) {
        let cat = r[2].parse::<f64>().unwrap() as i64;
        assert!(CAT_CODES.contains(&cat), "sampled cat {cat}");
    }
    // A code the training table never used is named, not guessed.
    let bad = write(&dir, "bad.csv", "0.5,1,-1,2\n0.1,2,3,1\n");
    let o = impute(&run, &bad, &dir.join("never.csv"), &dir);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("row 2, column 3") && err.contains("class code 3"),
        "{err}"
    );
    assert!(!dir.join("never.csv").exists());
}

#[test]
fn impute_writes_every_missing_cell_whatever_the_line_endings() {
    let dir = scratch("hivae-endings");
    let run = train(&dir);
    let rows = ["0.5,,,", ",3,7,", "-1.0,0,,2", "1.5,2,0,NaN"];
    let missing = 7;
    let variants: Vec<(&str, String, bool)> = vec![
        ("lf", rows.join("\n") + "\n", false),
        ("crlf", rows.join("\r\n") + "\r\n", false),
        ("cr", rows.join("\r") + "\r", false),
        ("no-final-newline", rows.join("\n"), false),
        ("blank-lines", format!("\n{}\n\n", rows.join("\n\n")), false),
        ("header", format!("a,b,c,d\r{}", rows.join("\r")), true),
        (
            "quoted",
            "\"a\",\"b\",\"c\",\"d\"\n\"0.5\",\"\",,\n,\"3\",7,\"\"\n-1.0,0,,2\n1.5,2,0,NaN\n"
                .into(),
            true,
        ),
        ("bom", format!("\u{feff}{}\n", rows.join("\n")), false),
        (
            "bom-header",
            format!("\u{feff}a,b,c,d\n{}\n", rows.join("\n")),
            true,
        ),
    ];
    for (name, text, header) in variants {
        let input = write(&dir, &format!("{name}.csv"), &text);
        let out = dir.join(format!("{name}-filled.csv"));
        let o = impute(&run, &input, &out, &dir);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("filled {missing} missing cells")),
            "{name}: {}",
            stderr(&o)
        );
        let written = std::fs::read_to_string(&out).unwrap();
        let got = rows_of(&written, header);
        assert_eq!(got.len(), 4, "{name}: {written:?}");
        for (r, orig) in got.iter().zip(rows) {
            assert_eq!(r.len(), 4, "{name}: {r:?}");
            for (cell, o) in r.iter().zip(orig.split(',')) {
                assert!(
                    !cell.is_empty() && cell.parse::<f64>().is_ok_and(f64::is_finite),
                    "{name}: cell {cell:?} in {r:?}"
                );
                if !o.is_empty() && o != "NaN" {
                    assert_eq!(cell, o, "{name}: an observed cell changed");
                }
            }
        }
        if header {
            assert!(written.starts_with("a,b,c,d\n"), "{name}: {written:?}");
        }
    }
}

#[test]
fn a_run_folder_imputes_from_anywhere_without_its_training_files() {
    let dir = scratch("hivae-moved");
    let run = train(&dir);
    assert!(run.join("table.json").is_file());
    let moved = scratch("hivae-moved-elsewhere").join("coded");
    let o = std::process::Command::new("cp")
        .args(["-r", run.to_str().unwrap(), moved.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    for f in ["data.csv", "types.csv", "mask.csv"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let input = write(&dir, "gaps.csv", "0.5,,,\n,3,7,\n");
    let out = dir.join("filled.csv");
    // From the filesystem root: no relative path of the training config can resolve.
    let o = impute(&moved, &input, &out, Path::new("/"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("filled 5 missing cells"));
    let o = flowlab(&[
        "sample",
        moved.to_str().unwrap(),
        "-n",
        "5",
        "--out",
        dir.join("s.csv").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_per_column_error_is_the_releases_measure() {
    let t = |v: &[f64]| Tensor::from_slice(v).to_kind(DType::Float);
    let col = |kind, classes| ColumnType { kind, classes };
    let x = t(&[1.0, 2.0, 3.0, 10.0]);
    let x_hat = t(&[1.5, 2.0, 2.0, 0.0]);
    let cells = t(&[1.0, 1.0, 1.0, 0.0]);
    // Numerical: RMSE over the imputed cells / (max − min of the true values).
    let e = column_error(&col(Kind::Real, 1), &x, &x_hat, &cells, 9.0).unwrap();
    let want = ((0.25 + 0.0 + 1.0) / 3.0f64).sqrt() / 9.0;
    assert!((e - want).abs() < 1e-9, "{e} against {want}");
    // Categorical: the share of wrong classes.
    let e = column_error(&col(Kind::Categorical, 4), &x, &x_hat, &cells, 9.0).unwrap();
    assert!((e - 2.0 / 3.0).abs() < 1e-9, "{e}");
    // Ordinal: mean |x − x̂| / levels.
    let e = column_error(&col(Kind::Ordinal, 5), &x, &x_hat, &cells, 9.0).unwrap();
    assert!((e - 1.5 / 3.0 / 5.0).abs() < 1e-9, "{e}");
    // No imputed cell: no error.
    assert!(column_error(&col(Kind::Real, 1), &x, &x_hat, &cells.zeros_like(), 9.0).is_none());
}

/// The parts of a head's parameters that locate the value (means, rate, class probabilities)
/// and that spread it (variances; none for counts and classes).
fn parts(p: &Params) -> (Tensor, Option<Tensor>) {
    match p {
        Params::Normal { mean, var } => (mean.shallow_clone(), Some(var.shallow_clone())),
        Params::Poisson { rate } => (rate.shallow_clone(), None),
        Params::Classes { log_p } => (log_p.shallow_clone(), None),
    }
}

#[test]
fn decoder_heads_read_y_and_s_as_the_release_does() {
    tch::manual_seed(4);
    let stats = Stats {
        mean: 0.5,
        std: 2.0,
    };
    let y = Tensor::randn([6, 3], (DType::Float, tch::Device::Cpu));
    let y2 = &y + 1.0;
    let s_of = |k: i64| {
        Tensor::full([6], k, (DType::Int64, tch::Device::Cpu))
            .one_hot(4)
            .to_kind(DType::Float)
    };
    let (s, s2) = (s_of(0), s_of(2));
    let differ = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) > 1e-6;
    for (kind, classes) in [
        (Kind::Real, 1),
        (Kind::Positive, 1),
        (Kind::Count, 1),
        (Kind::Categorical, 3),
        (Kind::Ordinal, 4),
    ] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let h = Head::new(&vs.root(), ColumnType { kind, classes }, stats, 3, 4);
        let (loc, spread) = parts(&h.params(&y, &s));
        let (loc_s2, spread_s2) = parts(&h.params(&y, &s2));
        let (loc_y2, spread_y2) = parts(&h.params(&y2, &s));
        // The location reads both y_d and s.
        assert!(differ(&loc, &loc_s2), "{kind:?}: location ignores s");
        assert!(differ(&loc, &loc_y2), "{kind:?}: location ignores y");
        // The variance reads s alone.
        if let (Some(v), Some(v_s2), Some(v_y2)) = (spread, spread_s2, spread_y2) {
            assert!(differ(&v, &v_s2), "{kind:?}: variance ignores s");
            assert!(!differ(&v, &v_y2), "{kind:?}: variance reads y");
        }
    }
    // Positive columns: the mode max(e^{μ − v} − 1, 0) by default, the mean e^{μ + v/2} − 1 on
    // request (μ, v of ln(1 + x) in the column's units: m + σ·mean, σ²·var).
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let h = Head::new(
        &vs.root(),
        ColumnType {
            kind: Kind::Positive,
            classes: 1,
        },
        stats,
        3,
        4,
    );
    let p = Params::Normal {
        mean: Tensor::from_slice(&[0.3f32, -0.4]),
        var: Tensor::from_slice(&[0.2f32, 0.5]),
    };
    let mode = Vec::<f64>::try_from(h.impute(&p, Imputation::Mode).to_kind(DType::Double)).unwrap();
    let mean = Vec::<f64>::try_from(h.impute(&p, Imputation::Mean).to_kind(DType::Double)).unwrap();
    for (i, (m, v)) in [(0.3f64, 0.2f64), (-0.4, 0.5)].into_iter().enumerate() {
        let (mu, var) = (0.5 + 2.0 * m, 4.0 * v);
        let want_mode = f64::max((mu - var).exp() - 1.0, 0.0);
        let want_mean = (mu + var / 2.0).exp() - 1.0;
        assert!(
            (mode[i] - want_mode).abs() < 1e-4 * (1.0 + want_mode),
            "{mode:?}"
        );
        assert!(
            (mean[i] - want_mean).abs() < 1e-4 * (1.0 + want_mean),
            "{mean:?}"
        );
    }
}
