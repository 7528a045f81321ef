//! Each HI-VAE decoder head's single imputation against a hand computation (the release's mode
//! by default, the mean on request), and its draws against the likelihood they come from:
//! moments over many draws, class frequencies, and every draw inside the column's support.
use flowlab::data::hetero::{ColumnType, Kind};
use flowlab::model::hivae_lik::{Head, Imputation, Params, Stats};
use tch::{Device, Kind as DType, Tensor};

const ST: Stats = Stats {
    mean: 2.0,
    std: 3.0,
};

fn head(kind: Kind, classes: i64) -> Head {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    Head::new(&vs.root(), ColumnType { kind, classes }, ST, 3, 4)
}

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(DType::Float)
}

fn vals(x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(x.to_kind(DType::Double)).unwrap()
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
}

fn classes(log_p: &[[f64; 3]]) -> Params {
    let rows: Vec<Tensor> = log_p.iter().map(|r| t(r)).collect();
    Params::Classes {
        log_p: Tensor::stack(&rows, 0).log_softmax(1, DType::Float),
    }
}

#[test]
fn each_head_imputes_the_releases_point() {
    use Imputation::{Mean, Mode};
    // real: the Gaussian's mode and mean are both m + σμ.
    let p = Params::Normal {
        mean: t(&[0.5, -1.0]),
        var: t(&[0.8, 0.3]),
    };
    for how in [Mode, Mean] {
        assert_eq!(vals(&head(Kind::Real, 1).impute(&p, how)), [3.5, -1.0]);
    }
    // count: the Poisson mode ⌊λ⌋, or λ rounded.
    let p = Params::Poisson {
        rate: t(&[2.6, 0.7, 3.0]),
    };
    assert_eq!(
        vals(&head(Kind::Count, 1).impute(&p, Mode)),
        [2.0, 0.0, 3.0]
    );
    assert_eq!(
        vals(&head(Kind::Count, 1).impute(&p, Mean)),
        [3.0, 1.0, 3.0]
    );
    // cat and ordinal: the most likely class, counted from 1, whichever point.
    let p = classes(&[[0.0, 1.0, -0.5], [2.0, 0.0, 1.0], [-1.0, 0.0, 3.0]]);
    for kind in [Kind::Categorical, Kind::Ordinal] {
        for how in [Mode, Mean] {
            assert_eq!(vals(&head(kind, 3).impute(&p, how)), [2.0, 1.0, 3.0]);
        }
    }
}

#[test]
fn each_head_imputes_its_median_on_request() {
    use Imputation::Median;
    // real: the Gaussian's median is its mean m + σμ.
    let p = Params::Normal {
        mean: t(&[0.5, -1.0]),
        var: t(&[0.8, 0.3]),
    };
    assert_eq!(vals(&head(Kind::Real, 1).impute(&p, Median)), [3.5, -1.0]);
    // pos: ln(1 + x) ~ N(m + σμ, ·), so the median is e^{m + σμ} − 1 whatever the variance
    // (kept in the support: e^{−1} − 1 < 0 becomes 0).
    let got = vals(&head(Kind::Positive, 1).impute(&p, Median));
    for (g, want) in got.iter().zip([3.5f64.exp() - 1.0, 0.0]) {
        assert!((g - want).abs() < 1e-4 * want.abs().max(1.0), "{got:?}");
    }
    // count: the Poisson median; P(X ≤ 2 | λ = 2.6) = 0.518, P(X ≤ 0 | 0.7) = 0.497 < 1/2 ≤
    // P(X ≤ 1 | 0.7) = 0.844, P(X ≤ 2 | 3) = 0.423 < 1/2 ≤ P(X ≤ 3 | 3) = 0.647.
    let p = Params::Poisson {
        rate: t(&[2.6, 0.7, 3.0]),
    };
    assert_eq!(
        vals(&head(Kind::Count, 1).impute(&p, Median)),
        [2.0, 1.0, 3.0]
    );
    // ordinal: the first level whose cumulative probability reaches 1/2; categorical: the mode.
    let p = Params::Classes {
        log_p: t(&[0.4, 0.2, 0.4, 0.1, 0.3, 0.6, 0.45, 0.1, 0.45])
            .reshape([3, 3])
            .log(),
    };
    assert_eq!(
        vals(&head(Kind::Ordinal, 3).impute(&p, Median)),
        [2.0, 3.0, 2.0]
    );
    assert_eq!(
        vals(&head(Kind::Categorical, 3).impute(&p, Median)),
        [1.0, 3.0, 1.0]
    );
}

#[test]
fn each_head_draws_from_its_likelihood() {
    tch::manual_seed(0);
    let n = 40_000;
    let full = |v: f64| Tensor::full([n], v, (DType::Float, Device::Cpu));
    // real: N(m + σμ, σ²v) = N(3.5, 7.2).
    let x = vals(&head(Kind::Real, 1).sample(&Params::Normal {
        mean: full(0.5),
        var: full(0.8),
    }));
    let (m, v) = mean_var(&x);
    assert!((m - 3.5).abs() < 0.06 && (v - 7.2).abs() < 0.3, "{m} {v}");
    // pos: ln(1 + x) ~ N(m + σμ, σ²v) = N(5, 1.8); draws are never negative.
    let x = vals(&head(Kind::Positive, 1).sample(&Params::Normal {
        mean: full(1.0),
        var: full(0.2),
    }));
    assert!(x.iter().all(|&v| v >= 0.0));
    let (m, v) = mean_var(&x.iter().map(|v| v.ln_1p()).collect::<Vec<_>>());
    assert!((m - 5.0).abs() < 0.03 && (v - 1.8).abs() < 0.08, "{m} {v}");
    // count: Poisson(3): mean and variance 3, non-negative integers.
    let x = vals(&head(Kind::Count, 1).sample(&Params::Poisson { rate: full(3.0) }));
    assert!(x.iter().all(|&v| v >= 0.0 && v.fract() == 0.0));
    let (m, v) = mean_var(&x);
    assert!((m - 3.0).abs() < 0.05 && (v - 3.0).abs() < 0.15, "{m} {v}");
    // cat and ordinal: classes 1..=3 at the softmax's frequencies.
    let logits = [0.0, 1.0, -0.5];
    let z: f64 = logits.iter().map(|l: &f64| l.exp()).sum();
    for kind in [Kind::Categorical, Kind::Ordinal] {
        let p = classes(&vec![logits; n as usize]);
        let x = vals(&head(kind, 3).sample(&p));
        for (c, l) in logits.iter().enumerate() {
            let freq = x.iter().filter(|&&v| v == (c + 1) as f64).count() as f64 / n as f64;
            assert!(
                (freq - l.exp() / z).abs() < 0.01,
                "{kind:?} class {c}: {freq}"
            );
        }
        assert!(x.iter().all(|&v| [1.0, 2.0, 3.0].contains(&v)));
    }
}
