//! Flow layers for density models: MADE, MAF/IAF, coupling (on vectors), invertible linear maps
//! and ActNorm, each through the three checks, plus their structure (MADE's triangular Jacobian,
//! MAF's sampler, LU against plain). Batch normalization has its own file, `batchnorm.rs`.
use flowlab::bijector::checks::{log_det_error, round_trip};
use flowlab::bijector::Bijector;
use flowlab::distribution::{Distribution, StandardNormal, TransformedDistribution};
use flowlab::flow::{Flow, LayerConfig};
use flowlab::nn::made::Made;
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::{layer, random_flow};

#[test]
fn every_layer_kind_passes_the_three_checks_with_free_parameters() {
    let _rng = common::rng_lock();
    for (json, _) in common::EVERY_LAYER {
        // The whole block: each of its layers is exercised through it.
        let (_vs, flow) = random_flow(&[layer(json)], 2, 3);
        common::three_checks(&flow.bijector(), 50_000, 500);
    }
}

#[test]
fn every_layer_kind_is_in_the_test_list() {
    let _rng = common::rng_lock();
    // Each config kind the registry accepts appears in the list the checks run over.
    let listed: Vec<String> = common::EVERY_LAYER
        .iter()
        .map(|(j, _)| {
            let v: serde_json::Value = serde_json::from_str(j).unwrap();
            match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Object(m) => m.keys().next().unwrap().clone(),
                _ => unreachable!(),
            }
        })
        .collect();
    // Every kind the registry knows, read from serde's own list of variants.
    let err = serde_json::from_str::<LayerConfig>(r#"{"no_such_layer": {}}"#)
        .unwrap_err()
        .to_string();
    let known: Vec<&str> = err
        .split("expected one of ")
        .nth(1)
        .expect("serde lists the variants")
        .split(", ")
        .map(|k| k.trim_matches(|c: char| c == '`' || c.is_whitespace() || c == '.'))
        .map(|k| k.split('`').next().unwrap_or(k))
        .collect();
    assert!(known.len() >= 15, "{err}");
    // Checked elsewhere: the fixed sigmoid and exp map onto half-spaces (tests/bijectors.rs
    // integrates them on adapted grids); multiscale needs images (tests/images.rs).
    for kind in known {
        if ["sigmoid", "exp", "multiscale"].contains(&kind) {
            continue;
        }
        assert!(
            listed.iter().any(|k| k == kind),
            "layer kind {kind} is not in EVERY_LAYER"
        );
    }
}

#[test]
fn made_jacobian_is_strictly_triangular_in_its_order() {
    let _rng = common::rng_lock();
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let order = [3i64, 1, 5, 2, 4];
    let made = Made::new(&vs.root(), &order, &[32, 32], 2, 0);
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let _ = v.g_add_(&(v.randn_like() * 0.5));
        }
    });
    let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let out = made.forward(&x, None); // [4, 2, 5]
    for p in 0..2 {
        for o in 0..5usize {
            let g = Tensor::run_backward(
                &[&out.select(1, p).select(1, o as i64).sum(Kind::Float)],
                &[&x],
                true,
                false,
            )[0]
            .shallow_clone();
            for j in 0..5usize {
                let dep = g.select(1, j as i64).abs().max().double_value(&[]);
                if order[j] >= order[o] {
                    assert_eq!(
                        dep, 0.0,
                        "output {o} (degree {}) depends on input {j} (degree {})",
                        order[o], order[j]
                    );
                }
            }
        }
    }
    // And it is not trivially zero: the last output in the order sees every other input.
    let last = order.iter().position(|&d| d == 5).unwrap();
    let g = Tensor::run_backward(
        &[&out.select(1, 0).select(1, last as i64).sum(Kind::Float)],
        &[&x],
        false,
        false,
    )[0]
    .shallow_clone();
    for j in (0..5).filter(|&j| j != last) {
        assert!(g.select(1, j as i64).abs().max().double_value(&[]) > 0.0);
    }
}

#[test]
fn maf_samples_score_what_the_sampler_reported() {
    let _rng = common::rng_lock();
    let (_vs, flow) = random_flow(
        &[layer(
            r#"{"maf": {"length": 3, "hidden": [16, 16], "order": "random"}}"#,
        )],
        2,
        5,
    );
    let q = TransformedDistribution::new(
        Box::new(StandardNormal::new(vec![2], Kind::Double, Device::Cpu)),
        Box::new(flow.bijector()),
    );
    tch::manual_seed(6);
    let (x, lp_sampler) = tch::no_grad(|| q.rsample_with_log_prob(1000)).unwrap();
    let lp = tch::no_grad(|| q.log_prob(&x)).unwrap();
    let err = (lp - lp_sampler).abs().max().double_value(&[]);
    assert!(err < 1e-8, "max |log_prob(sample) − reported| = {err}");
}

#[test]
fn invertible_linear_in_both_forms_passes_the_checks_and_lu_equals_plain_at_init() {
    let _rng = common::rng_lock();
    for json in [
        r#"{"linear": {"lu": true}}"#,
        r#"{"linear": {"lu": false}}"#,
    ] {
        let (_vs, flow) = random_flow(&[layer(json)], 2, 9);
        common::three_checks(&flow.bijector(), 100_000, 1000);
    }
    // Same seed: the LU form and the plain form start as the same rotation.
    let build = |lu: bool| {
        tch::manual_seed(10);
        let vs = nn::VarStore::new(Device::Cpu);
        let flow = Flow::build(
            &[LayerConfig::Linear(flowlab::flow::linear::LinearConfig {
                lu,
            })],
            &(vs.root() / "flow"),
            5,
            None,
        )
        .unwrap();
        let x = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let (y, ld) = flow.bijector().forward(&x, None).unwrap();
        (vs, y, ld)
    };
    let (_a, y_lu, ld_lu) = build(true);
    let (_b, y_plain, ld_plain) = build(false);
    assert!(y_lu.allclose(&y_plain, 1e-5, 1e-5, false));
    assert!(
        ld_lu.abs().max().double_value(&[]) < 1e-5,
        "a rotation has ln|det| = 0"
    );
    assert!(ld_plain.abs().max().double_value(&[]) < 1e-5);
}

#[test]
fn linear_log_det_equals_slogdet_in_5_d() {
    let _rng = common::rng_lock();
    use flowlab::flow::linear::{InvertibleLinear, LinearWeight};
    tch::manual_seed(12);
    let w = Tensor::randn([5, 5], (Kind::Double, Device::Cpu));
    let f = InvertibleLinear::new(LinearWeight::Plain(w.shallow_clone()));
    let x = Tensor::randn([3, 5], (Kind::Double, Device::Cpu));
    let (_, ld) = f.forward(&x, None).unwrap();
    let (_, logabsdet) = w.slogdet();
    assert!((ld.double_value(&[0]) - logabsdet.double_value(&[])).abs() < 1e-12);
    assert!(log_det_error(&f, &x, None).unwrap() < 1e-10);
    let rt = round_trip(&f, &x, None).unwrap();
    assert!(rt.max_abs_error < 1e-10);
}

#[test]
fn actnorm_initializes_from_the_first_batch() {
    let _rng = common::rng_lock();
    tch::manual_seed(13);
    let vs = nn::VarStore::new(Device::Cpu);
    let layers = [
        layer(r#"{"actnorm": {}}"#),
        layer(r#"{"linear": {}}"#),
        layer(r#"{"actnorm": {}}"#),
    ];
    let flow = Flow::build(&layers, &(vs.root() / "flow"), 3, None).unwrap();
    let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu))
        * Tensor::from_slice(&[5.0f32, 0.1, 2.0])
        + Tensor::from_slice(&[-3.0f32, 8.0, 0.5]);
    assert_eq!(flow.data_init(&x).unwrap(), 2);
    // Each ActNorm standardizes what it passes towards the base, so the base side does too.
    let (u, _) = tch::no_grad(|| flow.bijector().inverse(&x, None)).unwrap();
    let m = Vec::<f64>::try_from(u.mean_dim(0, false, Kind::Double)).unwrap();
    let v = Vec::<f64>::try_from(u.to_kind(Kind::Double).var_dim(0, false, false)).unwrap();
    assert!(
        m.iter().all(|x| x.abs() < 1e-4) && v.iter().all(|x| (x - 1.0).abs() < 1e-3),
        "mean {m:?} var {v:?}"
    );
    // Saved with the weights: a second call (or a reloaded model) does not re-initialize.
    assert_eq!(flow.data_init(&(x * 3.0)).unwrap(), 0);
    assert_eq!(vs.variables()["flow.0.initialized"].double_value(&[0]), 1.0);
}

/// A conditioner with only `forward`: the coupling reaches it through the trait's zero-filling
/// default, i.e. literally the masked input of the papers.
struct MaskedInputOnly(flowlab::nn::mlp::Mlp);

impl flowlab::bijector::conditioner::Conditioner for MaskedInputOnly {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x)
    }
}

#[test]
fn vector_couplings_on_the_halves_equal_the_masked_formula() {
    let _rng = common::rng_lock();
    use flowlab::bijector::law::Law;
    use flowlab::bijector::law::LOG_SCALE_BOUND as SCALE_BOUND;
    use flowlab::flow::coupling::{alternating_mask, Coupling};
    use flowlab::nn::mlp::Mlp;
    let d = 7;
    for (law, seed) in [
        (Law::Affine, 1),
        (Law::Additive, 2),
        (
            Law::Spline {
                bins: 6,
                bound: 2.5,
            },
            3,
        ),
    ] {
        tch::manual_seed(seed);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), d, &[16, 16], law.params_per_dim() * d, true);
        vs.double();
        tch::no_grad(|| {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0)); // a fixed order: the same weights every run
            for (_, mut v) in vars {
                let _ = v.g_add_(&(v.randn_like() * 0.5));
            }
        });
        let x = Tensor::randn([32, d], (Kind::Double, Device::Cpu)) * 2.0;
        for layer in 0..2 {
            let mask = alternating_mask(d, layer, Device::Cpu).to_kind(Kind::Double);
            let halves = Coupling::new(mask.shallow_clone(), Box::new(mlp.shallow_clone()), law);
            let (y, ld) = halves.forward(&x, None).unwrap();
            // The zero-filled input through the whole network, outputs selected.
            let masked = Coupling::new(
                mask.shallow_clone(),
                Box::new(MaskedInputOnly(mlp.shallow_clone())),
                law,
            );
            let (y2, ld2) = masked.forward(&x, None).unwrap();
            assert!(y.allclose(&y2, 1e-10, 1e-10, false), "{law:?}");
            assert!(ld.allclose(&ld2, 1e-10, 1e-10, false), "{law:?}");
            if law == Law::Affine {
                // RealNVP eq. 59–60 with the mask b: y = b⊙x + (1−b)⊙(x⊙exp(s) + t).
                let out = mlp.forward(&(&x * &mask));
                let free = 1.0 - &mask;
                let s = (out.narrow(1, d, d) / SCALE_BOUND).tanh() * SCALE_BOUND * &free;
                let t = out.narrow(1, 0, d) * &free;
                let expected = &x * &mask + (&x * s.exp() + t) * &free;
                assert!(y.allclose(&expected, 1e-10, 1e-10, false));
                assert!(ld.allclose(
                    &s.sum_dim_intlist(1, false, Kind::Double),
                    1e-10,
                    1e-10,
                    false
                ));
            }
            // The kept coordinates pass through untouched, and the inverse undoes the layer.
            let kept = mask.gt(0.5).nonzero().view([-1]);
            assert!(y.index_select(1, &kept).equal(&x.index_select(1, &kept)));
            let (back, ld_inv) = halves.inverse(&y, None).unwrap();
            assert!(back.allclose(&x, 1e-9, 1e-9, false), "{law:?}");
            assert!((ld + ld_inv).abs().max().double_value(&[]) < 1e-9);
        }
    }
}

#[test]
fn maf_sampling_one_coordinate_at_a_time_equals_d_full_passes() {
    use flowlab::bijector::law::Law;
    use flowlab::flow::autoregressive::MaskedAutoregressive;
    let _rng = common::rng_lock();
    let d = 7;
    let spline = Law::Spline {
        bins: 5,
        bound: 2.5,
    };
    // Hidden layers wider and narrower than D − 1 (some degrees without units), none at all,
    // with and without a context, a random order.
    for (law, hidden, ctx) in [
        (Law::Affine, vec![16, 16], 0),
        (Law::Additive, vec![3], 4),
        (spline, vec![12, 5], 4),
        (Law::Affine, vec![], 3),
    ] {
        tch::manual_seed(11);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let order = [4i64, 7, 1, 3, 6, 2, 5];
        let made = Made::new(&vs.root(), &order, &hidden, law.params_per_dim(), ctx);
        vs.double();
        tch::no_grad(|| {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, mut v) in vars {
                v.copy_(&(v.randn_like() * 0.2));
            }
        });
        let maf = MaskedAutoregressive::with_law(made, law);
        let u = Tensor::randn([64, d], (Kind::Double, Device::Cpu));
        let c = (ctx > 0).then(|| Tensor::randn([64, ctx], (Kind::Double, Device::Cpu)));
        let (x, ld) = maf.forward(&u, c.as_ref()).unwrap();
        let (x_ref, ld_ref) = maf.forward_by_passes(&u, c.as_ref()).unwrap();
        let what = format!("{law:?} hidden {hidden:?} context {ctx}");
        assert!(
            bool::try_from(x.isfinite().all()).unwrap(),
            "{what}: samples not finite"
        );
        assert!(x.allclose(&x_ref, 1e-10, 1e-10, false), "{what}: samples");
        assert!(ld.allclose(&ld_ref, 1e-10, 1e-10, false), "{what}: log-det");
        // And the density direction undoes it.
        let (back, ld_inv) = maf.inverse(&x, c.as_ref()).unwrap();
        let err = (&back - &u).abs().max().double_value(&[]);
        assert!(
            err < 1e-8,
            "{what}: inverse off by {err} (largest |x| {})",
            x.abs().max().double_value(&[])
        );
        assert!((ld + ld_inv).abs().max().double_value(&[]) < 1e-8, "{what}");
    }
}
