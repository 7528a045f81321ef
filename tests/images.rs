//! Image flows: squeeze, per-pixel maps, checkerboard and channel couplings, and the Glow and
//! RealNVP multi-scale architectures — round trips and log-dets against autograd on small images,
//! ActNorm's data-dependent initialization per channel, and a short MNIST run with bits/dim.
mod common;
use common::*;
use flowlab::bijector::checks::{log_det_error, round_trip};
use flowlab::bijector::law::Law;
use flowlab::bijector::{Bijector, Chain, Invert};
use flowlab::flow::coupling::Coupling;
use flowlab::flow::image::{channel_mask, checkerboard_mask, PerPixel, Reshape, Squeeze};
use flowlab::flow::linear::{InvertibleLinear, LinearWeight};
use flowlab::flow::multiscale_layer::{MultiScaleConfig, MultiScaleKind, MultiScaleParams};
use flowlab::nn::convnet::ConvNet;
use tch::{nn, Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Flat in, flat out: the image bijector between two reshapes, so the checks see vectors.
fn flat(shape: [i64; 3], b: Box<dyn Bijector>) -> Chain {
    Chain::new(vec![
        Box::new(Reshape { shape }),
        b,
        Box::new(Invert(Box::new(Reshape { shape }))),
    ])
}

fn randomize(vs: &mut nn::VarStore, scale: f64) {
    vs.double();
    tch::no_grad(|| {
        // A fixed order (the var store's map has none): the same weights every run.
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut v) in vars {
            if !name.ends_with("initialized") && !name.contains("sign_s") && !name.ends_with(".p") {
                v.copy_(&(&v + Tensor::randn(v.size(), F64) * scale));
            }
        }
    });
}

fn assert_exact(b: &dyn Bijector, x: &Tensor, what: &str) {
    let rt = round_trip(b, x, None).unwrap();
    assert!(
        rt.max_abs_error < 1e-8 && rt.max_log_det_error < 1e-8,
        "{what}: {rt:?}"
    );
    let ld = log_det_error(b, x, None).unwrap();
    assert!(ld < 1e-8, "{what}: log-det differs from autograd by {ld}");
}

#[test]
fn squeeze_is_a_permutation_with_the_right_shapes() {
    let _rng = common::rng_lock();
    let x = Tensor::arange(2 * 3 * 4 * 6, (Kind::Float, Device::Cpu)).reshape([2, 3, 4, 6]);
    let (y, ld) = Squeeze.forward(&x, None).unwrap();
    assert_eq!(y.size(), vec![2, 12, 2, 3]);
    assert_eq!(ld.size(), vec![2]);
    // The 2×2 block at the top left of channel 0 becomes channels 0..4 of pixel (0, 0).
    let block: Vec<f32> =
        Vec::try_from(y.select(0, 0).select(1, 0).select(1, 0).narrow(0, 0, 4)).unwrap();
    assert_eq!(block, vec![0.0, 1.0, 6.0, 7.0]);
    assert!(Squeeze.inverse(&y, None).unwrap().0.equal(&x));
    assert!(
        Squeeze.forward(&x.narrow(3, 0, 5), None).is_err(),
        "odd widths are refused"
    );
}

#[test]
fn per_pixel_linear_and_conv_couplings_are_exact() {
    let _rng = common::rng_lock();
    tch::manual_seed(0);
    let shape = [4, 2, 2];
    let x = Tensor::randn([6, 16], F64);
    let w = Tensor::randn([4, 4], F64);
    let lin = PerPixel(Box::new(InvertibleLinear::new(LinearWeight::Plain(
        w.shallow_clone(),
    ))));
    assert_exact(&flat(shape, Box::new(lin)), &x, "1×1 convolution");
    // Its log-det is H·W·ln|det W|.
    let img = x.reshape([6, 4, 2, 2]);
    let (_, ld) = PerPixel(Box::new(InvertibleLinear::new(LinearWeight::Plain(
        w.shallow_clone(),
    ))))
    .forward(&img, None)
    .unwrap();
    let expected = 4.0 * w.slogdet().1.double_value(&[]);
    assert!((ld.double_value(&[0]) - expected).abs() < 1e-9);
    for (mask, what) in [
        (checkerboard_mask(shape, 0, Device::Cpu), "checkerboard"),
        (channel_mask(shape, 1, Device::Cpu), "channel"),
    ] {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = ConvNet::new(&vs.root(), 4, 8, 8);
        randomize(&mut vs, 0.3);
        let c = Coupling::new(mask.to_kind(Kind::Double), Box::new(net), Law::Affine);
        assert_exact(&flat(shape, Box::new(c)), &x, what);
    }
}

/// A multi-scale config with 8 hidden channels and the LU 1×1 convolution.
fn config(kind: MultiScaleKind, levels: i64, steps: i64, law: Law) -> MultiScaleConfig {
    MultiScaleConfig {
        kind,
        levels,
        steps,
        hidden: 8,
        lu: true,
        law,
        shape: None,
    }
}

#[test]
fn glow_and_realnvp_multiscale_flows_are_exact_and_lay_out_the_base() {
    let _rng = common::rng_lock();
    tch::manual_seed(1);
    let spline = Law::Spline {
        bins: 4,
        bound: 2.0,
    };
    for (kind, law) in [
        (MultiScaleKind::Glow, Law::Affine),
        (MultiScaleKind::Realnvp, Law::Affine),
        (MultiScaleKind::Glow, Law::Additive),
        (MultiScaleKind::Glow, spline),
        (MultiScaleKind::Realnvp, spline),
    ] {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let params =
            MultiScaleParams::build(&vs.root(), [1, 4, 4], &config(kind, 2, 2, law)).unwrap();
        randomize(&mut vs, 0.2);
        let flow = params.bijector();
        let x = Tensor::randn([5, 16], F64);
        assert_exact(&flow, &x, &format!("{kind:?} {law:?}"));
        // Half of level 1's channels are factored out, the rest goes to the top.
        let total: i64 = flow
            .pieces()
            .iter()
            .map(|p| p.iter().product::<i64>())
            .sum();
        assert_eq!(total, 16);
        assert_eq!(flow.pieces().len(), 2);
    }
    // A side that cannot be squeezed again is named.
    let vs = nn::VarStore::new(Device::Cpu);
    let glow = |levels, steps| config(MultiScaleKind::Glow, levels, steps, Law::Affine);
    let err = MultiScaleParams::build(&vs.root(), [1, 28, 28], &glow(3, 1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot squeeze a 7×7 image"), "{err}");
}

#[test]
fn actnorm_initialization_standardizes_each_channel_of_the_first_batch() {
    let _rng = common::rng_lock();
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let params = MultiScaleParams::build(
        &vs.root(),
        [1, 4, 4],
        &config(MultiScaleKind::Glow, 1, 1, Law::Affine),
    )
    .unwrap();
    let x = Tensor::randn([64, 16], (Kind::Float, Device::Cpu)) * 3.0 + 1.5;
    assert_eq!(params.data_init(&x).unwrap(), 1);
    let (shift, log_scale) = params.actnorms().remove(0);
    let (squeezed, _) = Squeeze.forward(&x.reshape([64, 1, 4, 4]), None).unwrap();
    let u = (&squeezed - shift.reshape([1, 4, 1, 1])) * (-log_scale.reshape([1, 4, 1, 1])).exp();
    let dims = [0i64, 2, 3];
    let mean = u
        .mean_dim(dims.as_slice(), false, Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    let std = (u.std_dim(dims.as_slice(), false, false) - 1.0)
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        mean < 1e-5 && std < 1e-4,
        "per-channel mean {mean}, std error {std}"
    );
    assert_eq!(
        params.data_init(&x).unwrap(),
        0,
        "initialization happens once"
    );
}

#[test]
fn a_small_glow_on_mnist_learns_and_reports_bits_per_dim() {
    let _rng = common::rng_lock();
    let dir = scratch("glow-mnist");
    let cfg = r#"{ "name": "glow",
  "model": { "density": { "data": { "mnist": { "images": { "binarize": "none", "max_train": 256, "max_eval": 64 } } },
                           "flow": [{ "multiscale": { "kind": "glow", "levels": 2, "steps": 1, "hidden": 16 } }] } },
  "train": { "steps": 60, "batch_size": 32, "optimizer": { "lr": 0.002 }, "seed": 0 },
  "runtime": { "threads": 1, "device": "cpu" },
  "logging": { "log_every": 20, "image_every": 60, "checkpoint_every": 60 } }"#;
    let o = run_config(&dir, "g.json", cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("runs/glow");
    let m = metrics(&run);
    let bpd = m["test_bits_per_dim"].as_f64().unwrap();
    assert!((bpd - m["test_nll"].as_f64().unwrap() / (784.0 * 2f64.ln())).abs() < 1e-9);
    // Uniform noise on [0, 256) is 8 bits/dim; anything learned is below it. And a density of
    // dequantized pixels lower-bounds a probability (Theis et al. 2016), so bits/dim ≥ 0 on
    // real images: a negative value would mean a Jacobian counted wrongly.
    assert!(bpd < 6.0 && bpd > 0.0, "bits/dim {bpd}");
    let scalars = std::fs::read_to_string(run.join("scalars.csv")).unwrap();
    for tag in [
        "train/bits_per_dim",
        "val/bits_per_dim",
        "test/nll",
        "test/bits_per_dim",
    ] {
        assert!(scalars.contains(tag), "{tag}");
    }
    for t in ["0.5", "0.7", "1"] {
        assert!(
            run.join(format!("figures/samples_t{t}.png")).exists(),
            "samples at T = {t}"
        );
    }
    let bad = cfg
        .replace(r#""levels": 2"#, r#""levels": 3"#)
        .replace(r#""name": "glow""#, r#""name": "glow3""#);
    let o = run_config(&dir, "g3.json", &bad);
    assert!(
        !o.status.success() && stderr(&o).contains("cannot squeeze a 7×7 image"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn image_layers_on_a_two_pixel_image_integrate_to_one() {
    let _rng = common::rng_lock();
    use flowlab::bijector::checks::density_integral;
    use flowlab::grid::Grid2d;
    tch::manual_seed(3);
    let shape = [2, 1, 1];
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = ConvNet::new(&(vs.root() / "affine"), 2, 8, 4);
    let spline = Law::Spline {
        bins: 4,
        bound: 2.5,
    };
    randomize(&mut vs, 0.5);
    // Bent, but not so sharply that a 1000² grid misses 1e-3 of the mass.
    let mut spline_vs = nn::VarStore::new(Device::Cpu);
    let spline_net = ConvNet::new(&spline_vs.root(), 2, 8, 2 * spline.params_per_dim());
    randomize(&mut spline_vs, 0.3);
    let layers: Vec<(Box<dyn Bijector>, &str)> = vec![
        (
            Box::new(Coupling::new(
                channel_mask(shape, 0, Device::Cpu).to_kind(Kind::Double),
                Box::new(net),
                Law::Affine,
            )),
            "channel coupling",
        ),
        (
            Box::new(Coupling::new(
                channel_mask(shape, 1, Device::Cpu).to_kind(Kind::Double),
                Box::new(spline_net),
                spline,
            )),
            "spline channel coupling",
        ),
        (
            Box::new(PerPixel(Box::new(InvertibleLinear::new(
                LinearWeight::Plain(Tensor::from_slice(&[1.5, 0.4, -0.3, 0.8]).reshape([2, 2])),
            )))),
            "1×1 convolution",
        ),
    ];
    for (b, what) in layers {
        let f = flat(shape, b);
        assert_exact(&f, &Tensor::randn([64, 2], F64), what);
        let (y, _) = tch::no_grad(|| f.forward(&Tensor::randn([100_000, 2], F64), None)).unwrap();
        let integral = density_integral(&f, &Grid2d::from_samples(&y, 1000)).unwrap();
        assert!((integral - 1.0).abs() < 1e-3, "{what}: ∫q = {integral}");
    }
}

/// The image data transform z = logit(α + (1 − 2α) ỹ/256) against its closed form: z itself and
/// ln|dz/dỹ| = ln(1 − 2α) − ln 256 − ln p − ln(1 − p) per pixel, p = α + (1 − 2α) ỹ/256, summed
/// over the pixels; and the sampling direction inverts it.
#[test]
fn dequantization_and_logit_have_the_closed_form_jacobian() {
    use flowlab::model::preprocess::Preprocess;
    let alpha = 0.05;
    let pre = Preprocess::Dequantize {
        alpha,
        shape: [1, 2, 3],
    };
    tch::manual_seed(4);
    let y = Tensor::rand([50, 6], (Kind::Double, tch::Device::Cpu)) * 256.0;
    let (z, ld) = pre
        .chain(Kind::Double, tch::Device::Cpu)
        .inverse(&y, None)
        .unwrap();
    let p = (&y / 256.0) * (1.0 - 2.0 * alpha) + alpha;
    let q: Tensor = 1.0 - &p;
    let z_ref = (&p / &q).log();
    let ld_ref = (-p.log() - q.log() + ((1.0 - 2.0 * alpha) / 256.0f64).ln()).sum_dim_intlist(
        1,
        false,
        Kind::Double,
    );
    let err = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    assert!(err(&z, &z_ref) < 1e-9, "z off by {}", err(&z, &z_ref));
    assert!(
        err(&ld, &ld_ref) < 1e-9,
        "log-det off by {}",
        err(&ld, &ld_ref)
    );
    let (back, ld_fwd) = pre
        .chain(Kind::Double, tch::Device::Cpu)
        .forward(&z, None)
        .unwrap();
    assert!(err(&back, &y) < 1e-9 && err(&ld_fwd, &(-&ld_ref)) < 1e-9);
}

/// Every constant of a data transform lives in the model's kind on the model's device: a float32
/// model gets a float32 log-det from each transform, in both directions (a 0-dim float64 constant
/// expanded to `[B, D]` once made it float64, and on CUDA a CPU tensor added to the flow's).
#[test]
fn data_transforms_return_the_model_kind() {
    use flowlab::model::preprocess::Preprocess;
    let dev = tch::Device::Cpu;
    let transforms = [
        Preprocess::Dequantize {
            alpha: 0.05,
            shape: [1, 2, 3],
        },
        Preprocess::Standardize {
            mean: Tensor::from_slice(&[0.5f64, -1.0, 2.0, 0.0, 1.0, 3.0]),
            std: Tensor::from_slice(&[2.0f64, 0.5, 1.0, 1.5, 3.0, 0.25]),
        },
    ];
    for pre in &transforms {
        for kind in [Kind::Float, Kind::Double] {
            let y = Tensor::rand([4, 6], (kind, dev)) * 200.0 + 10.0;
            let chain = pre.chain(kind, dev);
            let (z, ld) = chain.inverse(&y, None).unwrap();
            let (back, ld_fwd) = chain.forward(&z, None).unwrap();
            // Each layer's own log-det too: the chain's in-place sum would hide a float64 one.
            for layer in chain.layers() {
                let (_, ld_layer) = layer.forward(&z, None).unwrap();
                assert_eq!(ld_layer.kind(), kind, "log-det of {}", layer.name());
                assert_eq!(ld_layer.device(), dev, "log-det of {}", layer.name());
            }
            for (what, t) in [
                ("z", &z),
                ("inverse log-det", &ld),
                ("x", &back),
                ("forward log-det", &ld_fwd),
            ] {
                assert_eq!(t.kind(), kind, "{what} of a {kind:?} model");
                assert_eq!(t.device(), dev, "{what}");
            }
        }
    }
}
