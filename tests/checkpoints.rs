//! Checkpoints: save → load → identical log_prob, resume continuing the step count (and the very
//! same trajectory), --init-from by name, weights shared with PyTorch, and the NaN guard.
mod common;
use common::*;
use flowlab::experiment::config::ExperimentConfig;
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::experiment::trainer::{train, RunOptions};
use flowlab::model::{Losses, Model, StepContext};
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

fn load_model(run: &std::path::Path) -> Box<dyn Model> {
    let cfg = RunDir::open(run).unwrap().read_config().unwrap();
    let mut m = flowlab::experiment::build_model(&cfg.model, Device::Cpu).unwrap();
    rundir::load_weights(m.var_store_mut(), &run.join("model.safetensors"), true).unwrap();
    m
}

fn grid_points() -> Tensor {
    Tensor::from_slice(&[0.0f32, 0.0, 2.0, 0.5, -1.5, 1.0, 3.0, -3.0]).reshape([4, 2])
}

#[test]
fn saved_weights_reload_to_an_identical_density() {
    let dir = scratch("ckpt-identical");
    let cfg = ExperimentConfig::parse(&tiny_config("a", 3, 60)).unwrap();
    let opts = RunOptions {
        out: dir.clone(),
        ..Default::default()
    };
    tch::manual_seed(1);
    let model = flowlab::experiment::build_model(&cfg.model, Device::Cpu).unwrap();
    let before = model.log_prob(&grid_points()).unwrap();
    let summary = train(cfg, model, &opts).unwrap();
    let reloaded = load_model(&summary.dir);
    let after_reload = reloaded.log_prob(&grid_points()).unwrap();
    assert!(!after_reload.equal(&before), "training changed the model");
    // The run's own final model, rebuilt from disk twice, gives bit-identical densities.
    let again = load_model(&summary.dir).log_prob(&grid_points()).unwrap();
    assert!(after_reload.equal(&again));
}

#[test]
fn resume_continues_the_step_count_and_the_same_trajectory() {
    let dir = scratch("resume");
    let out = dir.join("runs");
    let (out_s, full_s) = (out.to_str().unwrap(), dir.join("full"));
    // Uninterrupted: 200 steps.
    let full_cfg = write(&dir, "full.json", &tiny_config("same", 2, 200));
    let o = flowlab(&[
        "run",
        full_cfg.to_str().unwrap(),
        "--out",
        full_s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Interrupted at 100, then resumed to 200.
    let half_cfg = write(&dir, "half.json", &tiny_config("same", 2, 100));
    let o = flowlab(&["run", half_cfg.to_str().unwrap(), "--out", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flowlab(&[
        "run",
        full_cfg.to_str().unwrap(),
        "--out",
        out_s,
        "--resume",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("at step 100"), "{}", stderr(&o));
    let resumed = out.join("same");
    assert_eq!(metrics(&resumed)["steps"], 200);
    assert_eq!(metrics(&resumed)["steps_trained_this_session"], 100);
    let csv = std::fs::read_to_string(resumed.join("scalars.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("200,train/loss,")));
    assert_eq!(
        csv.lines()
            .filter(|l| l.starts_with("100,train/loss,"))
            .count(),
        1
    );
    // Per-step seeds and the saved Adam state make the resumed run identical to the full one.
    let a = load_model(&resumed).log_prob(&grid_points()).unwrap();
    let b = load_model(&full_s.join("same"))
        .log_prob(&grid_points())
        .unwrap();
    assert!(a.equal(&b), "resumed {a:?} vs uninterrupted {b:?}");

    // Resuming with a different model is refused.
    let other = write(&dir, "other.json", &tiny_config("same", 3, 300));
    let o = flowlab(&["run", other.to_str().unwrap(), "--out", out_s, "--resume"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("model section differs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_from_loads_by_name_and_names_shape_mismatches() {
    let dir = scratch("init-from");
    let out = dir.join("runs");
    let weights = train_tiny(&dir, "src", 2, 50).join("model.safetensors");

    // Same architecture: every tensor is taken.
    let mut model = flowlab::experiment::build_model(
        &ExperimentConfig::parse(&tiny_config("d", 2, 1))
            .unwrap()
            .model,
        Device::Cpu,
    )
    .unwrap();
    let report = rundir::load_weights(model.var_store_mut(), &weights, false).unwrap();
    assert_eq!(report.loaded, vec!["flow.0.b", "flow.0.u", "flow.0.w"]);
    let src_model = load_model(&out.join("src"));
    assert!(model
        .log_prob(&grid_points())
        .unwrap()
        .equal(&src_model.log_prob(&grid_points()).unwrap()));

    // Another architecture (K = 3 instead of 2): the error names the tensor and both shapes.
    let other = write(&dir, "other.json", &tiny_config("other", 3, 10));
    let o = flowlab(&[
        "run",
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--init-from",
        weights.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tensor `flow.0.b` has shape [2], the model expects [3]"),
        "{err}"
    );
}

#[test]
fn weights_round_trip_with_pytorch() {
    let dir = scratch("pytorch");
    let out = dir.join("runs");
    let weights = train_tiny(&dir, "p", 2, 30).join("model.safetensors");
    // Python reads flowlab's weights, and writes a state dict (u doubled) that flowlab loads.
    let py_out = dir.join("from_python.safetensors");
    let script = r#"
import sys, torch
from safetensors.torch import load_file, save_file
sd = load_file(sys.argv[1])
assert set(sd) == {"flow.0.u", "flow.0.w", "flow.0.b"}, sorted(sd)
assert sd["flow.0.u"].shape == (2, 2) and sd["flow.0.u"].dtype == torch.float32
sd["flow.0.u"] = sd["flow.0.u"] * 2
save_file(sd, sys.argv[2])
"#;
    let o = Command::new(python())
        .args([
            "-c",
            script,
            weights.to_str().unwrap(),
            py_out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let trained = load_model(&out.join("p"));
    let mut model = flowlab::experiment::build_model(
        &RunDir::open(&out.join("p"))
            .unwrap()
            .read_config()
            .unwrap()
            .model,
        Device::Cpu,
    )
    .unwrap();
    rundir::load_weights(model.var_store_mut(), &py_out, true).unwrap();
    let u_py = model.var_store().variables()["flow.0.u"].shallow_clone();
    let u_trained = trained.var_store().variables()["flow.0.u"].shallow_clone();
    assert!(u_py.equal(&(u_trained * 2.0)));
}

/// A model whose loss turns NaN at a chosen step, to exercise the trainer's guard.
struct Poisoned {
    vs: nn::VarStore,
    p: Tensor,
    nan_at: i64,
}

impl Model for Poisoned {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }
    fn loss(&mut self, ctx: &StepContext) -> anyhow::Result<Losses> {
        let mut loss = (&self.p - 1.0).square().sum(Kind::Float);
        if ctx.step + 1 == self.nan_at {
            loss *= f64::NAN;
        }
        Ok(Losses {
            loss,
            terms: vec![],
            layers: vec![],
        })
    }
    fn locate_nonfinite(&self, _: &StepContext) -> Option<String> {
        Some("poisoned layer 7".into())
    }
    fn evaluate(&self) -> anyhow::Result<Vec<(String, f64)>> {
        Ok(vec![])
    }
}

/// ln p of a model that has a density (every model these tests reload does).
trait LogProb {
    fn log_prob(&self, x: &Tensor) -> anyhow::Result<Tensor>;
}

impl LogProb for Box<dyn Model> {
    fn log_prob(&self, x: &Tensor) -> anyhow::Result<Tensor> {
        self.log_density()
            .expect("a model with a density")
            .log_prob(x)
    }
}

#[test]
fn nan_stops_training_names_step_and_layer_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("nan");
    let mut cfg = ExperimentConfig::parse(&tiny_config("nan", 2, 100)).unwrap();
    cfg.logging.checkpoint_every = 20;
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root().var("p", &[3], nn::Init::Const(0.0));
    let model = Poisoned { vs, p, nan_at: 47 };
    let err = train(
        cfg,
        Box::new(model),
        &RunOptions {
            out: dir.clone(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("step 47") && err.contains("poisoned layer 7") && err.contains("step 40"),
        "{err}"
    );
    // The checkpoint on disk is the one from step 40, intact.
    let state = rundir::load_tensors(&dir.join("nan/optimizer.safetensors")).unwrap();
    let step = state
        .iter()
        .find(|(n, _)| n == "step")
        .unwrap()
        .1
        .int64_value(&[]);
    assert_eq!(step, 40);
    let w = rundir::load_tensors(&dir.join("nan/model.safetensors")).unwrap();
    assert!(w[0].1.isfinite().all().int64_value(&[]) == 1);
    assert!(!dir.join("nan/metrics.json").exists());
}

#[test]
fn init_from_reads_tch_ot_files_too() {
    let dir = scratch("ot");
    let cfg = ExperimentConfig::parse(&tiny_config("o", 2, 1)).unwrap();
    tch::manual_seed(4);
    let src = flowlab::experiment::build_model(&cfg.model, Device::Cpu).unwrap();
    let named: Vec<(String, Tensor)> = src.var_store().variables().into_iter().collect();
    let path = dir.join("weights.ot");
    Tensor::save_multi(&named, &path).unwrap();
    tch::manual_seed(5);
    let mut dst = flowlab::experiment::build_model(&cfg.model, Device::Cpu).unwrap();
    assert!(!dst
        .log_prob(&grid_points())
        .unwrap()
        .equal(&src.log_prob(&grid_points()).unwrap()));
    let report = rundir::load_weights(dst.var_store_mut(), &path, true).unwrap();
    assert_eq!(report.loaded.len(), 3);
    assert!(dst
        .log_prob(&grid_points())
        .unwrap()
        .equal(&src.log_prob(&grid_points()).unwrap()));
}
