//! Batch normalization as a flow layer (Dinh et al. 2017, §3.7; Papamakarios et al. 2017, §3.4):
//! the three checks in evaluation, batch statistics in training, inside a MAF block after each
//! MADE, and the training set's statistics recorded through a whole flow.
use flowlab::bijector::Bijector;
use flowlab::flow::{Flow, LayerConfig};
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::{layer, random_flow};

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
