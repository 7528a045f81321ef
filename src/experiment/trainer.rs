//! The one training loop every model uses: steps, Adam, β schedule, gradient clipping, logging
//! to TensorBoard, checkpoints, resume, and the NaN/Inf guard.
use super::config::{DeviceChoice, ExperimentConfig};
use super::optim::Adam;
use super::rundir::{self, RunDir};
use crate::log::{progress::Progress, ScalarLog};
use crate::model::{Model, StepContext};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Command-line choices that override or complement the config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Output root; the run folder is `<out>/<name>`.
    pub out: PathBuf,
    pub resume: bool,
    pub init_from: Option<PathBuf>,
    pub device: Option<DeviceChoice>,
    pub threads: Option<i32>,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub metrics: serde_json::Value,
}

/// Per-step seed: a resumed run draws exactly the samples an uninterrupted one would. Mixed by
/// splitmix64 so that no step reuses the seed that initialized the parameters (drawing the same
/// normals as a radial layer's centre z₀ would put a sample exactly on it).
fn step_seed(seed: u64, step: i64) -> i64 {
    let z = seed ^ (step as u64 + 1).wrapping_mul(crate::rng::GOLDEN);
    (crate::rng::mix(z) >> 1) as i64
}

/// Builds the model a config describes (seeded) and trains it: see [`train`].
pub fn run(mut cfg: ExperimentConfig, opts: &RunOptions) -> Result<RunSummary> {
    apply_overrides(&mut cfg, opts)?;
    let device = super::config::resolve_device(cfg.runtime.device)?;
    tch::manual_seed(cfg.train.seed as i64);
    let model = super::build_model(&cfg.model, device)?;
    train(cfg, model, opts)
}

fn apply_overrides(cfg: &mut ExperimentConfig, opts: &RunOptions) -> Result<()> {
    if let Some(d) = opts.device {
        cfg.runtime.device = d;
    }
    if let Some(t) = opts.threads {
        cfg.runtime.threads = t;
    }
    cfg.validate()
}

/// Trains `model` under `cfg` into `<opts.out>/<cfg.name>`: creates (or, with `resume`, reopens)
/// the run folder, then steps, logs, checkpoints, evaluates and draws figures.
pub fn train(
    mut cfg: ExperimentConfig,
    mut model: Box<dyn Model>,
    opts: &RunOptions,
) -> Result<RunSummary> {
    apply_overrides(&mut cfg, opts)?;
    cfg.resolve_epochs(model.steps_per_epoch(cfg.train.batch_size))?;
    let device = model.var_store().device();
    super::set_threads(cfg.runtime.threads);

    let dir = if opts.resume {
        let dir = RunDir::open(&opts.out.join(&cfg.name)).context("--resume")?;
        let saved = dir.read_config()?;
        if saved.model != cfg.model {
            bail!(
                "--resume: the model section differs from the one saved in {}",
                dir.config_path().display()
            );
        }
        dir
    } else {
        RunDir::create(&opts.out, &cfg.name)?
    };

    let mut opt = Adam::new(model.var_store(), cfg.train.optimizer.clone());
    let mut start = 0;
    if opts.resume {
        rundir::load_weights(model.var_store_mut(), &dir.model_path(), true)?;
        let state = rundir::load_tensors(&dir.optimizer_path())?;
        opt.load_state(&state)
            .with_context(|| format!("{}", dir.optimizer_path().display()))?;
        start = opt.step;
        eprintln!("resuming {} at step {start}", dir.path().display());
    } else if let Some(path) = &opts.init_from {
        let report = rundir::load_weights(model.var_store_mut(), path, false)?;
        eprintln!(
            "initialized {} tensors from {} (kept at init: {:?}; unused in file: {:?})",
            report.loaded.len(),
            path.display(),
            report.missing,
            report.unused
        );
    }
    dir.write_config(&cfg)?;
    eprintln!(
        "run {} on {:?}, {} thread(s), {} steps",
        dir.path().display(),
        device,
        tch::get_num_threads(),
        cfg.train.steps
    );

    let mut log = ScalarLog::open(dir.path(), &dir.scalars_path())?;
    log.events.add_text(
        "config",
        &format!("```json\n{}\n```", cfg.to_pretty_json()),
        start,
    )?;
    let mut progress = Progress::new(cfg.train.steps);
    let t0 = Instant::now();
    let lg = &cfg.logging;
    let mut last_checkpoint = start;
    // Early stopping: (best value, its step, checks since), persisted for --resume.
    let mut early: Option<(f64, i64, i64)> = None;
    if opts.resume && dir.early_stopping_path().exists() {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.early_stopping_path())?)
                .with_context(|| format!("{}", dir.early_stopping_path().display()))?;
        early = Some((
            v["best"].as_f64().unwrap_or(f64::INFINITY),
            v["best_step"].as_i64().unwrap_or(0),
            v["since"].as_i64().unwrap_or(0),
        ));
    }
    let mut stopped_early = false;
    let mut step = start;
    while step < cfg.train.steps {
        tch::manual_seed(step_seed(cfg.train.seed, step));
        let diagnostics = (step + 1) % lg.log_every == 0 || step + 1 == cfg.train.steps;
        let ctx = StepContext {
            step,
            beta: cfg.train.beta.at(step),
            batch_size: cfg.train.batch_size,
            diagnostics,
        };
        let losses = model.loss(&ctx)?;
        let loss_value = losses.loss.double_value(&[]);
        opt.zero_grad();
        let grad_norm = if loss_value.is_finite() {
            losses.loss.backward();
            opt.grad_norm()
        } else {
            f64::NAN
        };
        if !grad_norm.is_finite() {
            let culprit = if loss_value.is_finite() {
                let mut bad: Vec<String> = model
                    .var_store()
                    .variables()
                    .into_iter()
                    .filter(|(_, v)| v.grad().defined() && !crate::bijector::all_finite(&v.grad()))
                    .map(|(n, _)| n)
                    .collect();
                bad.sort();
                format!("the gradient of {}", bad.join(", "))
            } else {
                tch::manual_seed(step_seed(cfg.train.seed, step));
                model
                    .locate_nonfinite(&ctx)
                    .unwrap_or_else(|| "the loss".into())
            };
            log.flush()?;
            let what = if loss_value.is_finite() {
                "gradient"
            } else {
                "loss"
            };
            bail!(
                "non-finite {what} at step {} (first in {culprit}); training stopped, {} keeps the last good checkpoint (step {last_checkpoint})",
                step + 1,
                dir.model_path().display()
            );
        }
        if let Some(max) = cfg.train.grad_clip {
            opt.clip_grad_norm(grad_norm, max);
        }
        opt.step();
        step += 1;

        if diagnostics {
            let rate = (step - start) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            log.scalar("train/loss", loss_value, step)?;
            for (name, v) in &losses.terms {
                log.scalar(&format!("train/{name}"), v.double_value(&[]), step)?;
            }
            let validation = model.validation()?;
            for (name, v) in &validation {
                log.scalar(&format!("val/{name}"), *v, step)?;
            }
            if let (Some(es), Some((name, v))) = (&cfg.train.early_stopping, validation.first()) {
                // Stored as "lower is better": an ELBO is negated.
                let sign = if model.validation_higher_is_better() {
                    -1.0
                } else {
                    1.0
                };
                let (best, best_step, since) = early.unwrap_or((f64::INFINITY, step, 0));
                let state = if sign * *v < best {
                    RunDir::save_weights(&dir.best_path(), model.var_store())?;
                    (sign * *v, step, 0)
                } else {
                    (best, best_step, since + 1)
                };
                early = Some(state);
                let json = serde_json::json!({"metric": format!("val/{name}"), "best": state.0, "sign": sign, "best_step": state.1, "since": state.2});
                rundir::write_atomic(&dir.early_stopping_path(), json.to_string().as_bytes())?;
                if state.2 >= es.patience {
                    eprintln!(
                        "early stopping at step {step}: val/{name} has not improved for {} checks (best {:.6} at step {})",
                        es.patience, sign * state.0, state.1
                    );
                    stopped_early = true;
                }
            }
            log.scalar("train/beta", ctx.beta, step)?;
            log.scalar("train/lr", opt.lr(), step)?;
            log.scalar("train/grad_norm", grad_norm, step)?;
            for (name, v) in &losses.layers {
                log.scalar(&format!("layers/{name}/log_det"), v.double_value(&[]), step)?;
            }
            log.flush()?;
            progress.update(step, loss_value, rate);
        }
        if lg.image_every > 0 && step % lg.image_every == 0 {
            if let Some(img) = model.snapshot()? {
                log.events.add_png(
                    model.snapshot_tag(),
                    crate::plot::png_bytes(&img)?,
                    img.width(),
                    img.height(),
                    step,
                )?;
            }
            let mut vars: Vec<(String, tch::Tensor)> =
                model.var_store().variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, v) in vars {
                let values = Vec::<f64>::try_from(
                    v.detach()
                        .to_device(tch::Device::Cpu)
                        .to_kind(tch::Kind::Double)
                        .flatten(0, -1),
                )?;
                log.events
                    .add_histogram(&format!("params/{name}"), &values, 30, step)?;
            }
            log.flush()?;
        }
        if step % lg.checkpoint_every == 0 && step < cfg.train.steps {
            dir.save_checkpoint(model.var_store(), &opt.state())?;
            last_checkpoint = step;
        }
        if stopped_early {
            break;
        }
    }
    progress.finish();
    let train_secs = t0.elapsed().as_secs_f64();
    let trained = step - start;
    dir.save_checkpoint(model.var_store(), &opt.state())?;
    let mut metrics = serde_json::Map::new();
    if let Some((best, best_step, _)) = early {
        // Evaluate, draw and keep the best weights: model.safetensors becomes them.
        rundir::load_weights(model.var_store_mut(), &dir.best_path(), true)?;
        RunDir::save_weights(&dir.model_path(), model.var_store())?;
        metrics.insert("best_step".into(), serde_json::json!(best_step));
        let sign = if model.validation_higher_is_better() {
            -1.0
        } else {
            1.0
        };
        metrics.insert("best_val".into(), serde_json::json!(sign * best));
        metrics.insert("stopped_early".into(), serde_json::json!(stopped_early));
    }

    for (k, v) in model.evaluate()? {
        metrics.insert(k, serde_json::json!(v));
    }
    for (stem, img) in model.figures()? {
        crate::plot::save_png(&img, &dir.figure_path(&stem))?;
    }
    metrics.insert("steps".into(), serde_json::json!(step));
    metrics.insert(
        "steps_trained_this_session".into(),
        serde_json::json!(trained),
    );
    metrics.insert(
        "steps_per_sec".into(),
        serde_json::json!(trained as f64 / train_secs.max(1e-9)),
    );
    metrics.insert("train_seconds".into(), serde_json::json!(train_secs));
    metrics.insert("threads".into(), serde_json::json!(tch::get_num_threads()));
    metrics.insert("device".into(), serde_json::json!(format!("{device:?}")));
    let metrics = serde_json::Value::Object(metrics);
    dir.write_metrics(&metrics)?;
    for (k, v) in metrics.as_object().into_iter().flatten() {
        if let Some(x) = v.as_f64() {
            log.scalar(&format!("final/{k}"), x, step)?;
            // Held-out results also under `test/` (`test_nll` → `test/nll`), beside `val/`.
            if let Some(rest) = k.strip_prefix("test_") {
                log.scalar(&format!("test/{rest}"), x, step)?;
            }
        }
    }
    log.flush()?;
    Ok(RunSummary {
        dir: dir.path().to_path_buf(),
        metrics,
    })
}
