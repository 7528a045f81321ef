//! Initialization of the VAE family: every flow posterior of `experiments/` starts close to the
//! identity on real digits (gated IAF and softplus planar: at the fixed start their papers' forms
//! have when the heads add nothing), so the flow's heads do not swamp the encoder's q0 (a head that moves z far at step 0 makes the first KL estimates hundreds of nats and
//! collapses the posterior during warm-up).
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::model::vae::Vae;
use serde_json::Value;
use tch::Kind;

/// The flow-posterior configs of `experiments/mnist-*.json` and `experiments/sylvester/` (every
/// flow family the VAE tables use).
fn experiment_posteriors() -> Vec<(String, Value)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut paths: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    paths.extend(std::fs::read_dir(root.join("sylvester")).unwrap());
    let mut out = vec![];
    for entry in paths {
        let path = entry.unwrap().path();
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let file = path.file_name().unwrap().to_string_lossy();
        if !(file.starts_with("mnist-") && file.ends_with(".json")) {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(vae) = v["model"].get("vae") {
            if vae["posterior"] != "gaussian" {
                out.push((name, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Where a fresh flow starts when its heads add nothing yet: `(scale, log_det, room)` with
/// z_K ≈ scale · z_0, Σ ln|det| ≈ log_det, and `room` the share of q0's noise z may still move.
/// - gated IAF (Kingma et al. 2016): z′ = σ z with σ = sigmoid(forget_bias) per step, so
///   σ^K and K·D·ln σ;
/// - planar with the paper's constraint (m(x) = −1 + softplus(x)): with w ≈ 0, wᵀû = m(0) and
///   each step shrinks z along its own w by the factor softplus(0) = ln 2, so K·ln ln 2 and a
///   move of up to a quarter of the noise for 16 steps;
/// - every other flow (and planar with the bounded constraint): the identity.
fn start(config: &Value, latent: i64) -> (f64, f64, f64) {
    let post = &config["model"]["vae"]["posterior"];
    let k = |v: &Value| v["length"].as_f64().unwrap_or(1.0);
    if let Some(iaf) = post.get("iaf") {
        let bias = iaf["forget_bias"].as_f64().unwrap_or(1.0);
        let ln_sigma = -(-bias).exp().ln_1p();
        return (
            (k(iaf) * ln_sigma).exp(),
            k(iaf) * latent as f64 * ln_sigma,
            0.1,
        );
    }
    if let Some(planar) = post.get("planar") {
        if planar.get("constraint").is_none_or(|c| c == "softplus") {
            return (1.0, k(planar) * 2f64.ln().ln(), 0.25);
        }
    }
    (1.0, 0.0, 0.1)
}

#[test]
fn every_fresh_flow_posterior_starts_close_to_the_identity() {
    let configs = experiment_posteriors();
    let mut far = vec![];
    assert!(
        configs.len() >= 16,
        "expected the VAE family's configs, got {}",
        configs.len()
    );
    for (name, mut v) in configs {
        // The small split is enough: only the encoder's features of real digits matter here.
        v["model"]["vae"]["data"] = serde_json::json!({ "max_train": 200, "max_eval": 200 });
        let cfg = ExperimentConfig::parse(&v.to_string()).unwrap();
        let ModelConfig::Vae(c) = cfg.model else {
            panic!("{name}")
        };
        for seed in [0, 1] {
            tch::manual_seed(seed);
            let vae = Vae::new(c.clone(), tch::Device::Cpu).unwrap();
            let x = vae.data.test.narrow(0, 0, 200).bernoulli();
            let s = tch::no_grad(|| {
                let h = vae.encode(&x);
                vae.posterior.sample(&h, 1)
            })
            .unwrap();
            let norm = |t: &tch::Tensor| {
                t.square()
                    .sum_dim_intlist(1, false, Kind::Double)
                    .sqrt()
                    .mean(Kind::Double)
                    .double_value(&[])
            };
            // The flow's move from its start against q0's own noise ‖z0 − μ‖ (about √D σ).
            let (scale, expected_log_det, room) = start(&v, c.latent_dim);
            let moved = norm(&(&s.z - &s.z0 * scale));
            let noise = norm(&(&s.z0 - &s.mean));
            let log_det = (&s.log_det - expected_log_det)
                .abs()
                .mean(Kind::Double)
                .double_value(&[]);
            println!("{name} seed {seed}: mean ‖z_K − start‖ {moved:.4}, q0 noise {noise:.3}, mean |Σ ln|det| − start| {log_det:.4}");
            if moved >= room * noise || log_det >= 1.0 {
                far.push(format!(
                    "{name} seed {seed}: moves z by {moved:.3} from its start against q0's noise {noise:.3}, log-det off by {log_det:.3} nats"
                ));
            }
        }
    }
    assert!(
        far.is_empty(),
        "fresh flows far from the identity:\n{}",
        far.join("\n")
    );
}
