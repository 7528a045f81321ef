#![allow(dead_code)]
pub mod hivae_table;
use flowlab::bijector::checks::{density_integral, log_det_error, round_trip};
use flowlab::bijector::Bijector;
use flowlab::flow::{Flow, LayerConfig};
use flowlab::grid::Grid2d;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{nn, Device, Tensor};

pub fn flowlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(args)
        .output()
        .expect("flowlab runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh empty folder under the target dir (kept after the test for inspection).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small, fast flow-fit config (planar K layers on U1).
pub fn tiny_config(name: &str, k: i64, steps: i64) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "model": {{ "flow_fit": {{ "target": "U1", "flow": [{{ "planar": {{ "length": {k} }} }}], "eval_samples": 4000 }} }},
  "train": {{ "steps": {steps}, "batch_size": 128, "optimizer": {{ "lr": 0.005 }}, "beta": {{ "start": 0.1, "end": 1.0, "anneal_steps": 100 }}, "seed": 3 }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "log_every": 20, "image_every": 100, "checkpoint_every": 100 }}
}}"#
    )
}

pub fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

/// The Python that has torch, tensorboard and safetensors (set by `make test`).
pub fn python() -> String {
    std::env::var("FLOWLAB_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

/// Writes `text` as `dir/file` and runs it with `--out dir/runs`.
pub fn run_config(dir: &Path, file: &str, text: &str) -> Output {
    let cfg = write(dir, file, text);
    flowlab(&[
        "run",
        cfg.to_str().unwrap(),
        "--out",
        dir.join("runs").to_str().unwrap(),
    ])
}

/// Writes `tiny_config(name, k, steps)` into `dir`, trains it into `dir/runs`, and returns the run
/// folder; panics with flowlab's stderr if the run fails.
pub fn train_tiny(dir: &Path, name: &str, k: i64, steps: i64) -> PathBuf {
    let o = run_config(dir, &format!("{name}.json"), &tiny_config(name, k, steps));
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join("runs").join(name)
}

/// Every flow layer kind, as a config block that builds in 2-D and in a VAE posterior's latent
/// space, and whether its parameters can be computed per data point (amortized). The three
/// bijector checks run over this list free (tests/flow_layers.rs) and amortized
/// (tests/posteriors.rs); a new layer is added here and nowhere else in the tests.
pub const EVERY_LAYER: &[(&str, bool)] = &[
    (r#"{"planar": {"length": 2}}"#, true),
    (
        r#"{"planar": {"length": 2, "constraint": "bounded"}}"#,
        true,
    ),
    (r#"{"radial": {"length": 2}}"#, true),
    (
        r#"{"maf": {"length": 2, "hidden": [16, 16], "context": 6}}"#,
        true,
    ),
    (
        r#"{"maf": {"length": 2, "hidden": [16], "iaf": true, "context": 6}}"#,
        true,
    ),
    (
        r#"{"maf": {"length": 2, "hidden": [16], "law": "affine_unbounded", "context": 6}}"#,
        true,
    ),
    (
        r#"{"maf": {"length": 2, "hidden": [16], "law": "additive", "context": 6}}"#,
        true,
    ),
    (
        r#"{"maf": {"length": 2, "hidden": [16], "context": 6, "law": {"spline": {"bins": 5, "bound": 2.0}}}}"#,
        true,
    ),
    (
        r#"{"maf": {"length": 2, "hidden": [16], "iaf": true, "context": 6, "law": {"spline": {"bins": 4, "bound": 2.5}}}}"#,
        true,
    ),
    (
        r#"{"iaf": {"length": 2, "hidden": [16, 16], "context": 6}}"#,
        true,
    ),
    (r#"{"o_snf": {"length": 2, "columns": 2}}"#, true),
    (r#"{"h_snf": {"length": 2, "reflections": 2}}"#, true),
    (r#"{"t_snf": {"length": 3}}"#, true),
    (
        r#"{"coupling": {"length": 2, "hidden": [16], "law": "additive"}}"#,
        false,
    ),
    (
        r#"{"coupling": {"length": 3, "hidden": [16, 16], "law": "affine"}}"#,
        false,
    ),
    (
        r#"{"coupling": {"length": 2, "hidden": [16], "law": {"spline": {"bins": 5, "bound": 2.0}}}}"#,
        false,
    ),
    (r#"{"batchnorm": {}}"#, false),
    (r#"{"linear": {"lu": true}}"#, false),
    (r#"{"linear": {"lu": false}}"#, false),
    (r#"{"actnorm": {}}"#, false),
    (r#"{"permute": {"order": "reverse"}}"#, false),
    (r#"{"affine": {}}"#, false),
    (r#"{"prelu": {}}"#, false),
    (r#""tanh""#, false),
];

/// Serializes the tests of one binary that seed libtorch's global generator: tests run on
/// parallel threads, and one test's draws would otherwise interleave with another's, making
/// "seeded" weights differ from run to run. Hold the guard for the whole test.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Standard-normal points `[n, d]` in float64 from seed `seed`.
pub fn normal_points(n: i64, d: i64, seed: i64) -> tch::Tensor {
    tch::manual_seed(seed);
    tch::Tensor::randn([n, d], (tch::Kind::Double, tch::Device::Cpu))
}

/// Checks 1 and 2: round trip and per-sample log-det against autograd, to 1e-5 in float64.
pub fn assert_invertible_with_exact_log_det(b: &dyn Bijector, x: &tch::Tensor) {
    let rt = round_trip(b, x, None).unwrap();
    assert!(
        rt.max_abs_error < 1e-5,
        "{}: round trip error {}",
        b.name(),
        rt.max_abs_error
    );
    assert!(
        rt.max_log_det_error < 1e-5,
        "{}: forward + inverse log-det = {}",
        b.name(),
        rt.max_log_det_error
    );
    let ld = log_det_error(b, x, None).unwrap();
    assert!(
        ld < 1e-5,
        "{}: log-det differs from autograd by {ld}",
        b.name()
    );
}

/// Check 3: the pushforward of N(0, I) integrates to 1 ± 1e-3 on `grid`.
pub fn assert_integrates_to_one(b: &dyn Bijector, grid: &Grid2d) {
    let integral = density_integral(b, grid).unwrap();
    assert!(
        (integral - 1.0).abs() < 1e-3,
        "{}: ∫q = {integral}",
        b.name()
    );
}

/// The three checks on a 2-D bijector: 1 and 2 on 128 points, 3 on a `grid`² grid over the box
/// of `samples` pushed-forward draws (fine where the mass is).
pub fn three_checks(b: &dyn Bijector, samples: i64, grid: usize) {
    assert_invertible_with_exact_log_det(b, &normal_points(128, 2, 1));
    let z = normal_points(samples, 2, 7);
    let (y, _) = tch::no_grad(|| b.forward(&z, None)).unwrap();
    assert_integrates_to_one(b, &Grid2d::from_samples(&y, grid));
}

/// Builds a flow from layer configs in float64 with every parameter perturbed away from its
/// (identity) initialization, so the checks see a non-trivial map.
pub fn random_flow(layers: &[LayerConfig], dim: i64, seed: i64) -> (nn::VarStore, Flow) {
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

pub fn layer(json: &str) -> LayerConfig {
    serde_json::from_str(json).unwrap()
}
