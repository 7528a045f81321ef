//! The VAE family end to end on real MNIST digits (the split `make mnist` fetches; `make test`
//! fetches it first): training raises the validation ELBO and writes every artifact, the
//! importance-weighted bound behaves as a bound, weights carry over from a VAE to a flow VAE,
//! and bad input fails clearly.
mod common;
use common::*;
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::model::vae::Vae;
use flowlab::model::vae_eval::importance_log_px;
use flowlab::model::Model;
use tch::Kind;

/// A small VAE config on a few hundred digits: 784–64–z MLP, β warm-up over 2 epochs.
fn vae_config(name: &str, posterior: &str, latent: i64, epochs: i64) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "model": {{ "vae": {{
    "data": {{ "max_train": 400, "max_eval": 100 }},
    "latent_dim": {latent},
    "architecture": {{ "mlp": {{ "hidden": [64] }} }},
    "posterior": {posterior},
    "evaluation": {{ "importance_samples": 20, "sweep_steps": 8 }}
  }} }},
  "train": {{ "epochs": {epochs}, "batch_size": 50, "optimizer": {{ "lr": 0.003 }},
             "beta": {{ "start": 0.0, "end": 1.0, "anneal_epochs": 2 }},
             "early_stopping": {{ "patience": 50 }}, "seed": 2 }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "every_epoch": true, "checkpoint_every": 1000 }}
}}"#
    )
}

/// `val/elbo` values in logging order, from the run's scalars.csv.
fn val_elbo(run: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("scalars.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("val/elbo"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_flow_vae_learns_and_writes_every_artifact() {
    let dir = scratch("vae-e2e");
    let o = run_config(
        &dir,
        "iaf.json",
        &vae_config(
            "iaf",
            r#"{"iaf": {"length": 2, "hidden": [32], "context": 8}}"#,
            5,
            12,
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("runs/iaf");
    let v = val_elbo(&run);
    assert_eq!(v.len(), 12, "one validation per epoch");
    assert!(v[11] > v[0] + 20.0, "validation ELBO did not rise: {v:?}");
    let m = metrics(&run);
    for k in [
        "test_elbo",
        "test_nll",
        "val_elbo",
        "best_val",
        "steps_per_sec",
        "train_seconds",
    ] {
        assert!(
            m[k].as_f64().is_some_and(f64::is_finite),
            "metrics.json lacks {k}: {m}"
        );
    }
    // −ln p(x) ≤ −ELBO up to the noise of a one-sample ELBO.
    assert!(m["test_nll"].as_f64().unwrap() < -m["test_elbo"].as_f64().unwrap() + 2.0);
    for f in [
        "posterior_samples",
        "latent_sweep",
        "reconstructions",
        "prior_samples",
    ] {
        let img = image::open(run.join(format!("figures/{f}.png"))).unwrap();
        assert!(img.width() > 28, "{f}");
    }
    // Fig. 2a: 16×16 tiles of 28 px with 1-px gaps; Fig. 2b: 3 rows of 8 tiles, drawn twice as
    // large (grids narrower than 360 px are enlarged); each under a 42-px title band.
    let fig2a = image::open(run.join("figures/posterior_samples.png")).unwrap();
    assert_eq!(fig2a.height(), 16 * 29 + 1 + 42);
    let fig2b = image::open(run.join("figures/latent_sweep.png")).unwrap();
    assert_eq!(fig2b.height(), 2 * (3 * 29 + 1) + 42);
    for f in [
        "model.safetensors",
        "best.safetensors",
        "config.json",
        "scalars.csv",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let scalars = std::fs::read_to_string(run.join("scalars.csv")).unwrap();
    for tag in [
        "train/elbo",
        "train/recon",
        "train/kl_z",
        "train/log_det",
        "train/beta",
        "train/grad_norm",
        "layers/0.iaf.1/log_det",
        "test/nll",
    ] {
        assert!(scalars.contains(tag), "{tag} not logged");
    }

    // `plot latent` regenerates the figures with other choices; `compare` tabulates the run.
    let o = flowlab(&[
        "plot",
        "latent",
        run.to_str().unwrap(),
        "--dims",
        "4,0",
        "--steps",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fig2b = image::open(run.join("figures/latent_sweep.png")).unwrap();
    // 2 rows of 5 tiles (146 px wide: drawn 3× as large) under the title band.
    assert_eq!(fig2b.height(), 3 * (2 * 29 + 1) + 42);
    let o = flowlab(&["plot", "latent", run.to_str().unwrap(), "--dims", "5"]);
    assert!(
        !o.status.success() && stderr(&o).contains("dimension 5 does not exist"),
        "{}",
        stderr(&o)
    );
    let csv = dir.join("cmp.csv");
    let o = flowlab(&[
        "compare",
        run.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    // Values under metrics.json's names and signs; the CSV at full precision.
    let nll = m["test_nll"].as_f64().unwrap();
    assert!(
        table.contains("test_nll") && table.contains(&format!("| {nll:.4} |")),
        "{table}"
    );
    assert!(std::fs::read_to_string(csv)
        .unwrap()
        .contains(&nll.to_string()));

    // `sample` says what a VAE's rows are and draws them as a grid on request.
    let grid = dir.join("grid.png");
    let o = flowlab(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "10",
        "--out",
        dir.join("s.csv").to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && stderr(&o).contains("decoder means"),
        "{}",
        stderr(&o)
    );
    assert!(image::open(&grid).unwrap().width() > 200);
}

#[test]
fn importance_weighted_bound_is_above_the_elbo_and_grows_with_samples() {
    for posterior in [
        r#"{"planar": {"length": 2}}"#,
        r#"{"t_snf": {"length": 2}}"#,
    ] {
        let cfg = ExperimentConfig::parse(&vae_config("iw", posterior, 4, 1)).unwrap();
        let ModelConfig::Vae(mut c) = cfg.model else {
            panic!()
        };
        c.evaluation.chunk = 8;
        tch::manual_seed(0);
        let mut vae = Vae::new(c, tch::Device::Cpu).unwrap();
        // In float64, so that only the estimator, not float32 rounding of ~500-nat sums, shows.
        vae.set_dtype(flowlab::experiment::config::Dtype::F64)
            .unwrap();
        let x = vae.data.test.narrow(0, 0, 8);
        let bound = |s: i64| {
            tch::manual_seed(1);
            importance_log_px(&vae, &x, s).unwrap()
        };
        // With one shared draw, S = 1 is the ELBO itself, row by row.
        tch::manual_seed(1);
        let t = tch::no_grad(|| vae.elbo_terms(&x)).unwrap();
        let elbo = (&t.log_px - &t.kl).to_kind(Kind::Double);
        let gap = (bound(1) - &elbo).abs().max().double_value(&[]);
        assert!(
            gap < 1e-4,
            "{posterior}: S = 1 differs from the ELBO by {gap}"
        );
        // S larger than the chunk (8): draws in several passes per row; the bound grows with S.
        let mean = |s: i64| bound(s).mean(Kind::Double).double_value(&[]);
        let (b1, b10, b100) = (mean(1), mean(10), mean(100));
        assert!(
            b10 > b1 && b100 > b10,
            "{posterior}: not increasing in S: {b1} {b10} {b100}"
        );
    }
}

#[test]
fn a_trained_vae_initializes_a_flow_vae_by_name() {
    let dir = scratch("vae-init");
    let o = run_config(&dir, "g.json", &vae_config("g", r#""gaussian""#, 4, 1));
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = write(
        &dir,
        "p.json",
        &vae_config("p", r#"{"planar": {"length": 2}}"#, 4, 1),
    );
    let weights = dir.join("runs/g/model.safetensors");
    let runs = dir.join("runs");
    let args = [
        "run",
        cfg.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
        "--init-from",
        weights.to_str().unwrap(),
    ];
    let o = flowlab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kept at init: [\"posterior.head.bias\", \"posterior.head.weight\"]"),
        "{err}"
    );
    // Another latent size: the mismatching tensor is named, nothing is trained.
    let cfg = write(
        &dir,
        "q.json",
        &vae_config("q", r#"{"planar": {"length": 2}}"#, 3, 1),
    );
    let o = flowlab(&[
        "run",
        cfg.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
        "--init-from",
        weights.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("decoder.0.weight") && stderr(&o).contains("another architecture"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_vae_configs_and_data_are_named() {
    let dir = scratch("vae-bad");
    let cases = [
        (
            vae_config("a", r#"{"glow": {"length": 2}}"#, 4, 1),
            "model.vae.posterior",
        ),
        (
            vae_config("b", r#"{"o_snf": {"length": 2, "columns": 9}}"#, 4, 1),
            "columns",
        ),
        (
            vae_config("c", r#""gaussian""#, 2, 1)
                .replace(r#""sweep_steps": 8"#, r#""sweep_dims": [0, 4]"#),
            "dimension 4 does not exist in a 2-D latent space",
        ),
        (
            vae_config("d", r#""gaussian""#, 2, 1)
                .replace(r#""max_train": 400"#, r#""dir": "/nonexistent/mnist""#),
            "/nonexistent/mnist/train-images-idx3-ubyte",
        ),
        (
            vae_config("e", r#""gaussian""#, 2, 1)
                .replace(r#""max_train": 400"#, r#""binarize": "none""#),
            "bernoulli decoder needs binarized pixels",
        ),
    ];
    for (text, needle) in cases {
        let o = run_config(&dir, "bad.json", &text);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(needle),
            "expected `{needle}` in: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let flow_fit = tiny_config("ff", 2, 10).replace(r#""steps": 10"#, r#""epochs": 3"#);
    let o = run_config(&dir, "ff.json", &flow_fit);
    assert!(
        !o.status.success() && stderr(&o).contains("train.epochs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gated_conv_coders_map_images_to_features_and_back() {
    use flowlab::nn::coders::{Architecture, Decoder, Encoder};
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let arch = Architecture::GatedConv {};
    let enc = Encoder::new(&(vs.root() / "e"), &arch, 28, 28);
    let dec = Decoder::new(&(vs.root() / "d"), &arch, 8, 28, 28, 2);
    let x = tch::Tensor::rand([3, 784], (Kind::Float, tch::Device::Cpu));
    let h = enc.forward(&x);
    assert_eq!(h.size(), vec![3, enc.features]);
    assert_eq!(
        dec.forward(&tch::Tensor::randn([3, 8], (Kind::Float, tch::Device::Cpu)))
            .size(),
        vec![3, 2 * 784]
    );
    // Frey Faces' 28×20: the last encoder kernel is 7×5, the decoder mirrors it.
    let enc = Encoder::new(&(vs.root() / "fe"), &arch, 28, 20);
    let dec = Decoder::new(&(vs.root() / "fd"), &arch, 8, 28, 20, 256);
    let x = tch::Tensor::rand([3, 560], (Kind::Float, tch::Device::Cpu));
    assert_eq!(enc.forward(&x).size(), vec![3, 256]);
    assert_eq!(
        dec.forward(&tch::Tensor::randn([3, 8], (Kind::Float, tch::Device::Cpu)))
            .size(),
        vec![3, 256 * 560]
    );
    arch.validate(28, 20, "model.vae.architecture").unwrap();
    let err = arch
        .validate(30, 28, "model.vae.architecture")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("multiples of 4") && err.contains("30×28"),
        "{err}"
    );
}

#[test]
fn an_autoencoder_learns_to_reconstruct_and_refuses_to_sample() {
    let dir = scratch("ae");
    for loss in ["bce", "mse"] {
        let text = format!(
            r#"{{ "name": "ae-{loss}",
  "model": {{ "autoencoder": {{ "data": {{ "max_train": 400, "max_eval": 100, "binarize": "none" }},
                                "latent_dim": 2, "architecture": {{ "mlp": {{ "hidden": [64] }} }},
                                "reconstruction": "{loss}" }} }},
  "train": {{ "epochs": 6, "batch_size": 50, "optimizer": {{ "lr": 0.003 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "every_epoch": true }} }}"#
        );
        let o = run_config(&dir, &format!("{loss}.json"), &text);
        assert!(o.status.success(), "{}", stderr(&o));
        let run = dir.join(format!("runs/ae-{loss}"));
        let recon: Vec<f64> = std::fs::read_to_string(run.join("scalars.csv"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("val/recon"))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            recon[5] < 0.9 * recon[0],
            "{loss}: validation error did not fall: {recon:?}"
        );
        assert!(metrics(&run)["test_recon"].as_f64().is_some());
        for f in ["reconstructions", "latent_codes"] {
            assert!(run.join(format!("figures/{f}.png")).exists(), "{f}");
        }
    }
    let out = dir.join("s.csv");
    let o = flowlab(&[
        "sample",
        dir.join("runs/ae-bce").to_str().unwrap(),
        "-n",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("no prior"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// ln p(x) of a 1-dimensional latent model by quadrature: Σ_i p(x|z_i) N(z_i; 0, 1) Δz on a fine
/// grid wide enough that the integrand vanishes at its ends.
fn exact_log_px(vae: &Vae, x: &tch::Tensor) -> Vec<f64> {
    let opts = (Kind::Double, tch::Device::Cpu);
    let (lo, hi, n) = (-12.0, 12.0, 24_001);
    let z = tch::Tensor::linspace(lo, hi, n, opts).unsqueeze(1);
    let dz: f64 = (hi - lo) / (n - 1) as f64;
    let log_prior = -(&z * &z).squeeze_dim(1) * 0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln();
    (0..x.size()[0])
        .map(|i| {
            let xi = x.narrow(0, i, 1).expand([n, -1], false);
            let f = tch::no_grad(|| vae.log_likelihood(&z, &xi)) + &log_prior;
            f.logsumexp([0i64].as_slice(), false).double_value(&[]) + dz.ln()
        })
        .collect()
}

/// The importance-weighted estimate (Burda et al. 2016, eq. 8) is a stochastic lower bound of
/// ln p(x) that reaches it as S grows. On a model with a 1-dimensional latent, where ln p(x) is
/// known by quadrature, every estimate stays below it (up to Monte Carlo error) and the one with
/// 20,000 samples lies within 0.1 nat of it, for the Gaussian posterior and a flow posterior. The
/// decoder's weights are scaled down so that its likelihood varies over z by tens of nats, not
/// hundreds: a fresh encoder's q then covers the true posterior, as the estimator assumes; a
/// missing − ln S would put the large-S estimate ln 20,000 ≈ 9.9 nats above ln p(x).
#[test]
fn importance_weighted_estimate_approaches_the_exact_marginal_from_below() {
    for posterior in [r#""gaussian""#, r#"{"planar": {"length": 2}}"#] {
        let cfg = ExperimentConfig::parse(&vae_config("e", posterior, 1, 1)).unwrap();
        let ModelConfig::Vae(c) = cfg.model else {
            panic!()
        };
        tch::manual_seed(4);
        let mut vae = Vae::new(c, tch::Device::Cpu).unwrap();
        vae.set_dtype(flowlab::experiment::config::Dtype::F64)
            .unwrap();
        tch::no_grad(|| {
            for (name, mut v) in vae.var_store().variables() {
                if name.starts_with("decoder") {
                    v *= 0.6;
                }
            }
        });
        let x = vae.data.test.narrow(0, 0, 4);
        let exact = exact_log_px(&vae, &x);
        // Mean and standard error over 200 independent estimates per row.
        let estimate = |s: i64| -> (Vec<f64>, Vec<f64>) {
            tch::manual_seed(5);
            let reps = if s > 1000 { 1 } else { 200 };
            let e = importance_log_px(&vae, &x.repeat([reps, 1]), s)
                .unwrap()
                .reshape([reps, 4]);
            let se = if reps > 1 {
                e.std_dim(0, true, false) / (reps as f64).sqrt()
            } else {
                e.zeros_like().squeeze_dim(0)
            };
            let mean = e.mean_dim(0, false, Kind::Double);
            (
                Vec::<f64>::try_from(mean).unwrap(),
                Vec::<f64>::try_from(se).unwrap(),
            )
        };
        let ((e1, se1), (e100, se100), (e20k, _)) = (estimate(1), estimate(100), estimate(20_000));
        for i in 0..4 {
            println!(
                "{posterior} row {i}: exact {:.4}, S=1 {:.4} ± {:.4}, S=100 {:.4} ± {:.4}, S=20000 {:.4}",
                exact[i], e1[i], se1[i], e100[i], se100[i], e20k[i]
            );
            assert!(
                e1[i] < e100[i] && e100[i] < exact[i] + 3.0 * se100[i],
                "{posterior} row {i}: not rising towards ln p(x) = {}: S = 1 {} ± {}, S = 100 {} ± {}",
                exact[i],
                e1[i],
                se1[i],
                e100[i],
                se100[i]
            );
            assert!(
                (e20k[i] - exact[i]).abs() < 0.1,
                "{posterior} row {i}: S = 20,000 gives {} against ln p(x) = {}",
                e20k[i],
                exact[i]
            );
        }
    }
}
