//! HI-VAE's masked decoder: column d's likelihood parameters read no input of column d or of any
//! column after it in its row's order (for every column type, fixed and per-row random orders),
//! imputation puts each row's observed columns first, and a trained run imputes and samples.
mod common;
use common::hivae_table::{config, synthetic};
use common::*;
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::model::hivae::Hivae;
use flowlab::model::hivae_heads::pool;
use flowlab::model::hivae_lik::{input_width, Params};
use flowlab::model::hivae_masked::{MaskedDecoder, MaskedDecoderConfig, Visible};
use flowlab::model::Model;
use tch::{Device, Kind, Tensor};

fn model(order: &str) -> Hivae {
    let dir = scratch(&format!("hivae-masked-{order}"));
    synthetic(&dir);
    let extra = format!(r#", "masked_decoder": {{ "hidden": [16, 12], "order": "{order}" }}"#);
    let cfg = ExperimentConfig::parse(&config(&dir, "m", 1, &extra)).unwrap();
    let ModelConfig::Hivae(c) = cfg.model else {
        panic!("not a HI-VAE config")
    };
    let m = Hivae::new(c, Device::Cpu).unwrap();
    // The masked decoder's output layer starts at zero, which would pass any mask test: give
    // every weight of the model a random value.
    tch::manual_seed(3);
    tch::no_grad(|| {
        for (_, mut v) in m.var_store().variables() {
            v.copy_(&(v.randn_like() * 0.5));
        }
    });
    m
}

/// Σ of all of a column's likelihood parameters (each depends on the same inputs).
fn total(p: &Params) -> Tensor {
    match p {
        Params::Normal { mean, var } => mean.sum(Kind::Float) + var.sum(Kind::Float),
        Params::Poisson { rate } => rate.sum(Kind::Float),
        Params::Classes { log_p } => log_p.sum(Kind::Float),
    }
}

/// Positions `[n, d]` of a random order per row (1-based), or the table's order.
fn positions(n: i64, d: i64, random: bool) -> Tensor {
    if random {
        let order = Tensor::rand([n, d], (Kind::Float, Device::Cpu)).argsort(1, false);
        (order.argsort(1, false) + 1).to_kind(Kind::Float)
    } else {
        Tensor::arange_start(1, d + 1, (Kind::Float, Device::Cpu))
            .unsqueeze(0)
            .repeat([n, 1])
    }
}

#[test]
fn each_column_reads_only_the_observed_cells_before_it() {
    for (order, random) in [("fixed", false), ("random", true)] {
        let m = model(order);
        let n = 24;
        let d = m.types.len() as i64;
        let x = m.x.narrow(0, 0, n);
        // Some cells unobserved, so the indicators vary.
        let seen = Tensor::rand([n, d], (Kind::Float, Device::Cpu))
            .ge(0.25)
            .to_kind(Kind::Float);
        let coded = m.encode_input(&x, &seen).set_requires_grad(true);
        let seen_in = seen.set_requires_grad(true);
        let z = Tensor::randn([n, m.config.z_dim], (Kind::Float, Device::Cpu));
        let s =
            Tensor::randn([n, m.config.s_dim], (Kind::Float, Device::Cpu)).softmax(1, Kind::Float);
        let pos = positions(n, d, random);
        // The column of each coded input unit.
        let unit_column: Vec<usize> = (m.types.iter().enumerate())
            .flat_map(|(j, t)| std::iter::repeat_n(j, input_width(t) as usize))
            .collect();
        let pos_v: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(pos.to_kind(Kind::Double)).unwrap();
        for col in 0..d as usize {
            let visible = Visible {
                coded: &coded,
                seen: &seen_in,
                pos: pos.shallow_clone(),
            };
            let params = m.column_params(&z, &s, &visible);
            let (group, p) = (m.heads.groups.iter().zip(&params))
                .find(|(g, _)| g.columns.contains(&col))
                .expect("every column has a head");
            let position = group.columns.iter().position(|&j| j == col).unwrap();
            let mine = p.column(position as i64);
            let g = Tensor::run_backward(&[total(&mine)], &[&coded, &seen_in], false, false);
            let g_coded = Vec::<Vec<f64>>::try_from(g[0].to_kind(Kind::Double)).unwrap();
            let g_seen = Vec::<Vec<f64>>::try_from(g[1].to_kind(Kind::Double)).unwrap();
            let mut earlier = 0.0;
            for b in 0..n as usize {
                let here = pos_v[b][col];
                let units = (unit_column.iter().enumerate())
                    .map(|(i, &j)| (j, g_coded[b][i]))
                    .chain((0..d as usize).map(|j| (j, g_seen[b][j])));
                for (j, gv) in units {
                    if pos_v[b][j] >= here {
                        assert_eq!(
                            gv, 0.0,
                            "{order} order, row {b}: column {col} ({}) reads column {j} at position {} ≥ its own {here}",
                            m.types[col].name(),
                            pos_v[b][j]
                        );
                    } else {
                        earlier += gv.abs();
                    }
                }
            }
            // Not vacuous: a column placed after others does read them.
            let first_everywhere = (0..n as usize).all(|b| pos_v[b][col] == 1.0);
            assert!(
                first_everywhere || earlier > 0.0,
                "{order} order: column {col} reads none of the columns before it"
            );
        }
    }
}

/// Asserts each row of `pos` is a permutation of 1..=5 with the row's `seen` columns first.
fn assert_seen_first(pos: &Tensor, seen: &Tensor) {
    let pos = Vec::<Vec<f64>>::try_from(pos.to_kind(Kind::Double)).unwrap();
    let seen = Vec::<Vec<f64>>::try_from(seen.to_kind(Kind::Double)).unwrap();
    for (p, o) in pos.iter().zip(&seen) {
        let mut sorted = p.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(
            sorted,
            vec![1.0, 2.0, 3.0, 4.0, 5.0],
            "not a permutation: {p:?}"
        );
        let observed = o.iter().filter(|&&v| v == 1.0).count() as f64;
        for (pj, oj) in p.iter().zip(o) {
            assert_eq!(*oj == 1.0, *pj <= observed, "row {o:?} got positions {p:?}");
        }
    }
}

fn decoder(order: &str) -> MaskedDecoder {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let cfg: MaskedDecoderConfig =
        serde_json::from_str(&format!(r#"{{"hidden": [8], "order": "{order}"}}"#)).unwrap();
    MaskedDecoder::new(&vs.root(), &cfg, &[1, 3, 1, 2, 1], 4, 2)
}

fn some_seen() -> Tensor {
    Tensor::from_slice(&[
        1.0f32, 0.0, 1.0, 0.0, 1.0, //
        0.0, 0.0, 0.0, 0.0, 1.0, //
        1.0, 1.0, 1.0, 1.0, 1.0, //
        0.0, 1.0, 0.0, 1.0, 0.0,
    ])
    .reshape([4, 5])
}

#[test]
fn imputation_puts_each_rows_observed_columns_first() {
    for order in ["random", "shown_first"] {
        let seen = some_seen();
        assert_seen_first(&decoder(order).imputation_positions(&seen, false), &seen);
    }
}

/// `shown_first` trains in the condition of imputation: shown cells first, in an order that
/// changes from step to step (so every prefix of the shown cells is trained).
#[test]
fn shown_first_training_puts_the_shown_cells_first_in_random_orders() {
    let dec = decoder("shown_first");
    let seen = some_seen().repeat([50, 1]);
    let first = dec.training_positions(&seen);
    assert_seen_first(&first, &seen);
    let second = dec.training_positions(&seen);
    assert_seen_first(&second, &seen);
    assert!(
        first.ne_tensor(&second).any().int64_value(&[]) == 1,
        "two training steps drew the same orders"
    );
    // Rows with three shown cells: each of them comes first in some row.
    let mut leaders = Vec::new();
    for r in (0..200).step_by(4) {
        let row = first.get(r);
        leaders.push(i64::try_from(row.argmin(0, false)).unwrap());
    }
    for c in [0, 2, 4] {
        assert!(leaders.contains(&c), "column {c} never led: {leaders:?}");
    }
}

#[test]
fn a_masked_decoder_run_imputes_and_samples() {
    let dir = scratch("hivae-masked-run");
    synthetic(&dir);
    let extra =
        r#", "masked_decoder": { "hidden": [32], "imputation_orders": 4 }, "hide_inputs": 0.2"#;
    let o = run_config(&dir, "c.json", &config(&dir, "md", 30, extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("runs/md");
    let m = metrics(&run);
    let (err, base) = (
        m["test_imputation_error"].as_f64().unwrap(),
        m["test_mean_mode_error"].as_f64().unwrap(),
    );
    assert!(
        err.is_finite() && err < base,
        "error {err} vs mean/mode {base}"
    );
    // Re-evaluated with one order, with 16 pooled, and with a round of chained refinement: each
    // beats mean/mode imputation.
    let eval_error = |r: &str| {
        let o = flowlab(&["eval", run.to_str().unwrap(), "--samples", r]);
        assert!(o.status.success(), "{}", stderr(&o));
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        e["test_imputation_error"].as_f64().unwrap()
    };
    for r in ["1", "16"] {
        let e = eval_error(r);
        assert!(e.is_finite() && e < base, "R = {r}: error {e} vs {base}");
    }
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["model"]["hivae"]["imputation_rounds"] = 1.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = eval_error("4");
    assert!(
        e.is_finite() && e < base,
        "one refinement round: error {e} vs {base}"
    );
    let input = write(&dir, "gaps.csv", "1.5,,3,,2\n,7.1,,1,\n");
    let out = dir.join("filled.csv");
    let o = flowlab(&[
        "impute",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let filled = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<f64>> = (filled.lines())
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0][0], rows[0][2], rows[0][4]),
        (1.5, 3.0, 2.0),
        "observed cells changed"
    );
    assert!(rows.iter().flatten().all(|v| v.is_finite()));
    let samples = dir.join("rows.csv");
    let o = flowlab(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "200",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&samples).unwrap();
    let drawn: Vec<Vec<f64>> = (text.lines().skip(1))
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(drawn.len(), 200);
    for r in &drawn {
        assert!(r[1] >= 0.0 && r[2] >= 0.0 && r[2].fract() == 0.0, "{r:?}");
        assert!(
            (1.0..=3.0).contains(&r[3]) && (1.0..=4.0).contains(&r[4]),
            "{r:?}"
        );
    }
}

/// Pooling over orders is the equally weighted mixture: class probabilities averaged, a Gaussian
/// with the mixture's mean and variance (the spread of the means included), the mean rate.
#[test]
fn pooled_likelihoods_are_the_mixtures_moments() {
    let t = |v: &[f64]| Tensor::from_slice(v).reshape([1, -1]);
    let normal = |m: &[f64], v: &[f64]| Params::Normal {
        mean: t(m),
        var: t(v),
    };
    let Params::Normal { mean, var } = pool(vec![
        normal(&[1.0, 0.0], &[1.0, 2.0]),
        normal(&[3.0, 0.0], &[3.0, 2.0]),
    ]) else {
        panic!("a Gaussian pools to a Gaussian")
    };
    assert!(mean.allclose(&t(&[2.0, 0.0]), 0.0, 1e-12, false), "{mean}");
    // (1 + 3)/2 + ((3 − 1)/2)² = 3; equal means keep the variance.
    assert!(var.allclose(&t(&[3.0, 2.0]), 0.0, 1e-12, false), "{var}");
    let Params::Poisson { rate } = pool(vec![
        Params::Poisson { rate: t(&[1.0]) },
        Params::Poisson { rate: t(&[4.0]) },
    ]) else {
        panic!("a Poisson pools to a Poisson")
    };
    assert!(rate.allclose(&t(&[2.5]), 0.0, 1e-12, false), "{rate}");
    let classes = |p: &[f64]| Params::Classes {
        log_p: t(p).log().unsqueeze(0),
    };
    let Params::Classes { log_p } =
        pool(vec![classes(&[0.9, 0.1, 0.0]), classes(&[0.1, 0.5, 0.4])])
    else {
        panic!("classes pool to classes")
    };
    let p = log_p.exp().squeeze();
    assert!(
        p.allclose(&Tensor::from_slice(&[0.5, 0.3, 0.2]), 0.0, 1e-12, false),
        "{p}"
    );
}
