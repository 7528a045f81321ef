//! HI-VAE: each likelihood against its closed form, masks that really hide cells, `impute`
//! leaving observed cells untouched, type errors named by row and column, and a short run on the
//! release's Breast table that beats mean/mode imputation.
mod common;
use common::hivae_table::{config, synthetic};
use common::*;
use flowlab::data::hetero::{ColumnType, Kind};
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::model::hivae::Hivae;
use flowlab::model::hivae_lik::{Head, Params, Stats};
use flowlab::model::{Model, StepContext};
use tch::{Device, Kind as DType, Tensor};

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(DType::Float)
}

fn head(kind: Kind, classes: i64, stats: Stats) -> Head {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    Head::new(&vs.root(), ColumnType { kind, classes }, stats, 3, 4)
}

fn close(a: &Tensor, b: &[f64]) {
    let a = Vec::<f64>::try_from(a.to_kind(DType::Double)).unwrap();
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn each_likelihood_matches_its_closed_form() {
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let normal = |x: f64, m: f64, v: f64| -0.5 * ((x - m).powi(2) / v + v.ln() + ln2pi);
    let st = Stats {
        mean: 2.0,
        std: 3.0,
    };
    // real: N(x; m + σμ, σ²v).
    let p = Params::Normal {
        mean: t(&[0.5, -1.0]),
        var: t(&[0.8, 0.3]),
    };
    let lp = head(Kind::Real, 1, st).log_prob(&p, &t(&[4.0, -3.0]));
    close(
        &lp,
        &[normal(4.0, 3.5, 9.0 * 0.8), normal(-3.0, -1.0, 9.0 * 0.3)],
    );
    // pos: log-normal on ln(1 + x), with the Jacobian 1/(1 + x).
    let lp = head(Kind::Positive, 1, st).log_prob(&p, &t(&[4.0, 0.0]));
    let l = 5f64.ln();
    close(&lp, &[normal(l, 3.5, 7.2) - l, normal(0.0, -1.0, 2.7)]);
    // count: Poisson.
    let lp = head(Kind::Count, 1, st).log_prob(
        &Params::Poisson {
            rate: t(&[2.5, 0.7]),
        },
        &t(&[3.0, 0.0]),
    );
    close(&lp, &[3.0 * 2.5f64.ln() - 2.5 - 6f64.ln(), -0.7]);
    // cat: the class's log-softmax probability (classes from 1).
    let logits = [0.0, 1.0, -0.5];
    let z: f64 = logits.iter().map(|v: &f64| v.exp()).sum();
    let log_p = t(&logits)
        .log_softmax(0, DType::Float)
        .unsqueeze(0)
        .repeat([2, 1]);
    let lp = head(Kind::Categorical, 3, st).log_prob(&Params::Classes { log_p }, &t(&[2.0, 3.0]));
    close(&lp, &[1.0 - z.ln(), -0.5 - z.ln()]);
    // ordinal: cumulative link; level probabilities are positive and sum to one.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let ord = Head::new(
        &vs.root(),
        ColumnType {
            kind: Kind::Ordinal,
            classes: 4,
        },
        st,
        3,
        4,
    );
    tch::manual_seed(0);
    let Params::Classes { log_p } = ord.params(
        &Tensor::randn([5, 3], (DType::Float, Device::Cpu)),
        &Tensor::randn([5, 4], (DType::Float, Device::Cpu)),
    ) else {
        panic!("ordinal heads give class probabilities")
    };
    close(
        &log_p.exp().sum_dim_intlist(1, false, DType::Float),
        &[1.0; 5],
    );
    assert!(log_p.exp().min().double_value(&[]) > 0.0);
}

#[test]
fn masked_cells_do_not_enter_the_loss_but_observed_ones_do() {
    let dir = scratch("hivae-mask");
    synthetic(&dir);
    for extra in [
        "",
        r#", "posterior": {"planar": {"length": 2}}, "prior_flow": [{"maf": {"length": 1, "hidden": [8]}}]"#,
    ] {
        // No validation cells here: every unmasked cell is a training cell.
        let text = config(&dir, "m", 1, extra)
            .replace(r#""missing""#, r#""val_fraction": 0.0, "missing""#);
        let cfg = ExperimentConfig::parse(&text).unwrap();
        let ModelConfig::Hivae(c) = cfg.model else {
            panic!()
        };
        let mut m = Hivae::new(c, Device::Cpu).unwrap();
        let ctx = StepContext {
            step: 0,
            beta: 1.0,
            batch_size: 300,
            diagnostics: false,
        };
        let loss = |m: &mut Hivae| {
            tch::manual_seed(7);
            m.loss(&ctx).unwrap().loss.double_value(&[])
        };
        let before = loss(&mut m);
        // Row 4, column 5 is masked: a wild value there changes nothing.
        let _ = m.x.get(3).get(4).fill_(1e6);
        assert_eq!(
            loss(&mut m),
            before,
            "a masked cell changed the loss ({extra})"
        );
        // Row 1, column 1 is observed: changing it does change the loss.
        let _ = m.x.get(0).get(0).fill_(5.0);
        assert_ne!(loss(&mut m), before);
    }
}

#[test]
fn impute_fills_gaps_and_keeps_observed_cells() {
    let dir = scratch("hivae-impute");
    synthetic(&dir);
    let o = run_config(
        &dir,
        "c.json",
        &config(
            &dir,
            "imp",
            20,
            r#", "posterior": {"iaf": {"length": 2, "hidden": [16], "context": 4}}"#,
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("runs/imp");
    let scalars = std::fs::read_to_string(run.join("scalars.csv")).unwrap();
    for tag in [
        "train/elbo",
        "train/kl_z",
        "train/kl_s",
        "train/log_det",
        "train/recon_real",
        "train/recon_ordinal",
        "val/imputation_error",
    ] {
        assert!(scalars.contains(tag), "{tag} not logged");
    }
    let input = "header_a,b,c,d,e\r\n1.50,,3,NaN,2\r\n-0.25,7.125,,1,\r\n,,,,\r\n";
    let path = write(&dir, "gaps.csv", input);
    let out = dir.join("filled.csv");
    let o = flowlab(&[
        "impute",
        run.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let filled = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = filled.lines().collect();
    assert_eq!(lines[0], "header_a,b,c,d,e");
    for (orig, new) in input
        .split("\r\n")
        .zip(&lines)
        .skip(1)
        .filter(|(o, _)| !o.is_empty())
    {
        for (a, b) in orig.split(',').zip(new.split(',')) {
            if a.is_empty() || a == "NaN" {
                let v: f64 = b
                    .parse()
                    .unwrap_or_else(|_| panic!("{b:?} is not a number"));
                assert!(v.is_finite());
            } else {
                assert_eq!(a, b, "an observed cell changed");
            }
        }
    }
    let cat: Vec<i64> = lines[1..4]
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert!(cat.iter().all(|c| (1..=3).contains(c)), "{cat:?}");
    let o = flowlab(&[
        "impute",
        run.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--samples",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("filled_3.csv").exists());
}

#[test]
fn values_that_do_not_fit_their_type_are_named() {
    let dir = scratch("hivae-bad");
    synthetic(&dir);
    let good = std::fs::read_to_string(dir.join("data.csv")).unwrap();
    let cases = [
        ("1,2,three,1,1", "row 2, column 3 (count)", "not a number"),
        ("1,-2,3,1,1", "row 2, column 2 (pos)", "negative"),
        (
            "1,2,3,4,1",
            "column 4 (cat)",
            "4 distinct codes [1, 2, 3, 4]",
        ),
        (
            "1,2,2.5,1,1",
            "row 2, column 3 (count)",
            "non-negative integer",
        ),
    ];
    for (row, at, what) in cases {
        let mut lines: Vec<&str> = good.lines().collect();
        lines[1] = row;
        std::fs::write(dir.join("data.csv"), lines.join("\n")).unwrap();
        let o = run_config(&dir, "bad.json", &config(&dir, "bad", 1, ""));
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(at) && err.contains(what),
            "expected {at:?} / {what:?} in {err}"
        );
    }
}

#[test]
fn on_the_release_breast_table_hivae_beats_mean_and_mode_imputation() {
    let dir = scratch("hivae-breast");
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = format!(
        r#"{{ "name": "breast",
  "model": {{ "hivae": {{ "data": {{ "csv": "{root}/data/hivae/Breast/data.csv", "types": "{root}/data/hivae/Breast/data_types.csv",
                                   "missing": {{ "mask": "{root}/data/hivae/Breast/Missing20_1.csv" }} }} }} }},
  "train": {{ "epochs": 60, "batch_size": 100, "optimizer": {{ "lr": 0.003 }}, "beta": {{ "start": 1.0, "end": 1.0, "anneal_steps": 0 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }}, "logging": {{ "every_epoch": true }} }}"#
    );
    let o = run_config(&dir, "b.json", &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&dir.join("runs/breast"));
    let (e, base) = (
        m["test_imputation_error"].as_f64().unwrap(),
        m["test_mean_mode_error"].as_f64().unwrap(),
    );
    assert!(e < 0.9 * base, "HI-VAE {e} vs mean/mode {base}");
}
