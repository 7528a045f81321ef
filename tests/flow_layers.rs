//! Flow layers for density models: MADE, MAF/IAF, coupling (on vectors), batch normalization,
//! invertible linear maps and ActNorm, each through the three checks, plus their structure
//! (MADE's triangular Jacobian, MAF's sampler, batch-norm modes, LU against plain).
use flowlab::bijector::checks::{log_det_error, round_trip};
use flowlab::bijector::Bijector;
use flowlab::distribution::{Distribution, StandardNormal, TransformedDistribution};
use flowlab::flow::{Flow, LayerConfig};
use flowlab::nn::made::Made;
use tch::{nn, Device, Kind, Tensor};

mod common;

/// Builds a flow from layer configs in float64 with every parameter perturbed away from its
/// (identity) initialization, so the checks see a non-trivial map.
fn random_flow(layers: &[LayerConfig], dim: i64, seed: i64) -> (nn::VarStore, Flow) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let flow = Flow::build(layers, &(vs.root() / "flow"), dim, None).unwrap();
    vs.double();
    tch::no_grad(|| {
        // Trainable parameters only: fixed ones (an LU permutation, signs) stay what they are.
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, v)| v.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0)); // a fixed order: the same perturbation every run
        for (_, mut v) in vars {
            let _ = v.g_add_(&(v.randn_like() * 0.3));
        }
    });
    (vs, flow)
}

fn layer(json: &str) -> LayerConfig {
    serde_json::from_str(json).unwrap()
}

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
fn batchnorm_in_evaluation_passes_the_three_checks_and_in_training_normalizes_the_batch() {
    let _rng = common::rng_lock();
    use flowlab::flow::batchnorm::{BatchNorm, EPS};
    let f64s = (Kind::Double, Device::Cpu);
    let (log_gamma, beta) = (
        Tensor::from_slice(&[0.3, -0.2]),
        Tensor::from_slice(&[0.5, -1.0]),
    );
    let (rm, rv) = (
        Tensor::from_slice(&[1.0, -2.0]),
        Tensor::from_slice(&[4.0, 0.25]),
    );
    let eval = BatchNorm::new(
        log_gamma.shallow_clone(),
        beta.shallow_clone(),
        rm.copy(),
        rv.copy(),
        0.1,
        false,
    );
    common::three_checks(&eval, 100_000, 1000);

    // Training: the density pass normalizes with the batch's statistics, reports
    // Σ(log γ − ½ ln(v + ε)), and moves the running averages by the momentum.
    let (run_mean, run_var) = (rm.copy(), rv.copy());
    let train = BatchNorm::new(
        log_gamma.shallow_clone(),
        beta.shallow_clone(),
        run_mean.shallow_clone(),
        run_var.shallow_clone(),
        0.1,
        true,
    );
    tch::manual_seed(8);
    let x = Tensor::randn([4096, 2], f64s) * Tensor::from_slice(&[3.0, 0.5])
        + Tensor::from_slice(&[7.0, -3.0]);
    let (u, ld) = train.inverse(&x, None).unwrap();
    let standardized = (&u - &beta) * (-&log_gamma).exp();
    let m = Vec::<f64>::try_from(standardized.mean_dim(0, false, Kind::Double)).unwrap();
    let v = Vec::<f64>::try_from(standardized.var_dim(0, false, false)).unwrap();
    assert!(
        m.iter().all(|x| x.abs() < 1e-10) && v.iter().all(|x| (x - 1.0).abs() < 1e-4),
        "{m:?} {v:?}"
    );
    let var = x.var_dim(0, false, false);
    let expected = (&log_gamma - (&var + EPS).log() * 0.5)
        .sum(Kind::Double)
        .double_value(&[]);
    assert!((ld.double_value(&[0]) - expected).abs() < 1e-12);
    let batch_mean = x.mean_dim(0, false, Kind::Double);
    let moved = &rm * 0.9 + batch_mean * 0.1;
    assert!(
        run_mean.allclose(&moved, 1e-12, 1e-12, false),
        "running mean {run_mean:?} vs {moved:?}"
    );
    assert!(run_var.allclose(&(&rv * 0.9 + &var * 0.1), 1e-12, 1e-12, false));
}

#[test]
fn maf_block_with_batchnorm_keeps_its_orders_and_normalizes_after_each_made() {
    let _rng = common::rng_lock();
    let with_bn = layer(r#"{"maf": {"length": 2, "hidden": [16], "batchnorm": true}}"#);
    let plain = layer(r#"{"maf": {"length": 2, "hidden": [16]}}"#);
    let (_vs, flow) = random_flow(std::slice::from_ref(&with_bn), 2, 5);
    let names: Vec<&str> = flow.layer_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.maf.0.batchnorm",
            "0.maf.0",
            "0.maf.1.batchnorm",
            "0.maf.1"
        ]
    );
    assert!(flow.has_batch_statistics());
    // Evaluation mode (running statistics) is a bijector like any other.
    common::three_checks(&flow.bijector(), 100_000, 1000);

    // The MADEs are those of the same block without batch normalization (same seed): the
    // block's reversed orders are kept between layers.
    let build = |cfg: &LayerConfig| {
        tch::manual_seed(9);
        let vs = nn::VarStore::new(Device::Cpu);
        let f = Flow::build(std::slice::from_ref(cfg), &(vs.root() / "flow"), 2, None).unwrap();
        (vs, f)
    };
    let ((_a, bn), (_b, no_bn)) = (build(&with_bn), build(&plain));
    let x = Tensor::randn([64, 2], (Kind::Float, Device::Cpu));
    let (bn_chain, plain_chain) = (bn.bijector(), no_bn.bijector());
    for j in 0..2 {
        let (a, _) = bn_chain.layers()[2 * j + 1].inverse(&x, None).unwrap();
        let (b, _) = plain_chain.layers()[j].inverse(&x, None).unwrap();
        assert!(a.equal(&b), "MADE {j} differs");
    }

    // Training mode: the batch normalizations standardize with the batch's own statistics, so
    // a shifted and scaled batch comes out the same; in evaluation mode it does not.
    let (_vs, flow) = random_flow(&[with_bn], 2, 6);
    let h = Tensor::randn([512, 2], (Kind::Double, Device::Cpu));
    let moved = &h * 5.0 + 2.0;
    let (training, evaluation) = (flow.training_bijector(), flow.bijector());
    // How far apart the outputs of layer `l` of `chain` are for the two batches.
    let gap = |chain: &flowlab::bijector::Chain, l: usize| {
        let layer = &chain.layers()[l];
        let (a, _) = layer.inverse(&h, None).unwrap();
        let (b, _) = layer.inverse(&moved, None).unwrap();
        (a - b).abs().max().double_value(&[])
    };
    for j in 0..2 {
        assert!(gap(&training, 2 * j) < 1e-4, "batchnorm {j}");
        assert!(gap(&evaluation, 2 * j) > 0.1, "batchnorm {j}");
    }
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

#[test]
fn batchnorm_can_record_the_training_sets_statistics_through_the_whole_flow() {
    let _rng = common::rng_lock();
    let blocks = [
        layer(r#"{"batchnorm": {}}"#),
        layer(r#"{"maf": {"length": 2, "hidden": [16], "batchnorm": true}}"#),
        layer(r#"{"batchnorm": {}}"#),
    ];
    let (_vs, flow) = random_flow(&blocks, 2, 11);
    let x = Tensor::randn([2000, 2], (Kind::Double, Device::Cpu)) * 3.0 + 1.5;
    // Each batch normalization in evaluation mode normalizes its input on `x` exactly as the
    // batch's own statistics would: true after recording, not before.
    let max_gap = |flow: &Flow| {
        let evaluation = flow.bijector();
        let training = flow.training_bijector();
        let (eval_layers, train_layers) = (evaluation.layers(), training.layers());
        let mut h = x.shallow_clone();
        let mut gap: f64 = 0.0;
        for l in (0..eval_layers.len()).rev() {
            let (next, _) = eval_layers[l].inverse(&h, None).unwrap();
            if eval_layers[l].name() == "batchnorm" {
                // (Training mode also moves this layer's running averages, after `next`.)
                let (batch, _) = train_layers[l].inverse(&h, None).unwrap();
                gap = gap.max((&next - batch).abs().max().double_value(&[]));
            }
            h = next;
        }
        gap
    };
    assert!(
        max_gap(&flow) > 0.1,
        "running averages at their start differ"
    );
    flow.record_statistics(&x).unwrap();
    let after = max_gap(&flow);
    assert!(after < 1e-9, "after recording: {after}");
}
