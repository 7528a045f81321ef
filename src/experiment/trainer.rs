//! The one training loop every model uses: steps, Adam, β schedule, gradient clipping, logging
//! to TensorBoard, checkpoints, resume, and the NaN/Inf guard.
use super::config::{DeviceChoice, ExperimentConfig};
use super::early_stopping::{Check, EarlyStopping};
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
    /// `--map` rules renaming the init file's tensors.
    pub map: Vec<super::weights::MapRule>,
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
    model.set_dtype(cfg.runtime.dtype)?;
    cfg.resolve_epochs(model.steps_per_epoch(cfg.train.batch_size))?;
    let device = model.var_store().device();
    super::set_threads(cfg.runtime.threads);
    let dir = open_run_dir(&cfg, opts)?;
    let mut opt = Adam::new(model.var_store(), cfg.train.optimizer.clone());
    let start = load_start(model.as_mut(), &mut opt, &dir, opts)?;
    dir.write_config(&cfg)?;
    for (name, text) in model.run_files()? {
        rundir::write_atomic(&dir.path().join(name), text.as_bytes())?;
    }
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
    crate::log::hparams::write_session_start(
        &mut log.events,
        &cfg.name,
        &serde_json::to_value(&cfg)?,
    )?;
    let early = match opts.resume && dir.early_stopping_path().exists() {
        true => Some(EarlyStopping::load(&dir.early_stopping_path())?),
        false => None,
    };
    let mut run = Loop {
        cfg: &cfg,
        dir: &dir,
        log,
        opt,
        early,
        start,
        last_checkpoint: start,
        t0: Instant::now(),
    };
    let (step, stopped_early) = match run.steps(model.as_mut()) {
        Ok(done) => done,
        Err(e) => {
            // The HParams dashboard marks the session failed; the error is what the user sees.
            let _ = crate::log::hparams::write_session_end(&mut run.log.events, false, start);
            let _ = run.log.flush();
            return Err(e);
        }
    };
    let train_secs = run.t0.elapsed().as_secs_f64();
    dir.save_checkpoint(model.var_store(), &run.opt.state())?;
    let mut metrics = serde_json::Map::new();
    if let Some(es) = &run.early {
        // Evaluate, draw and keep the best weights: model.safetensors becomes them.
        rundir::load_weights(model.var_store_mut(), &dir.best_path(), true)?;
        RunDir::save_weights(&dir.model_path(), model.var_store())?;
        metrics.insert("best_step".into(), serde_json::json!(es.best_step));
        metrics.insert("best_val".into(), serde_json::json!(es.best_value()));
        metrics.insert("stopped_early".into(), serde_json::json!(stopped_early));
    }
    if model.finish_training()? {
        RunDir::save_weights(&dir.model_path(), model.var_store())?;
    }
    for (k, v) in model.evaluate()? {
        metrics.insert(k, serde_json::json!(v));
    }
    for (stem, figure) in model.figures()? {
        let format = cfg.logging.figure_format;
        figure.save(&dir.figure_path(&stem, format), format)?;
    }
    metrics.extend(runtime_metrics(step, step - start, train_secs, device));
    let metrics = serde_json::Value::Object(metrics);
    dir.write_metrics(&metrics)?;
    log_final_metrics(&mut run.log, &metrics, step)?;
    Ok(RunSummary {
        dir: dir.path().to_path_buf(),
        metrics,
    })
}

/// Steps, speed, threads and device, for metrics.json.
fn runtime_metrics(
    step: i64,
    trained: i64,
    secs: f64,
    device: tch::Device,
) -> Vec<(String, serde_json::Value)> {
    vec![
        ("steps".into(), serde_json::json!(step)),
        (
            "steps_trained_this_session".into(),
            serde_json::json!(trained),
        ),
        (
            "steps_per_sec".into(),
            serde_json::json!(trained as f64 / secs.max(1e-9)),
        ),
        ("train_seconds".into(), serde_json::json!(secs)),
        ("threads".into(), serde_json::json!(tch::get_num_threads())),
        ("device".into(), serde_json::json!(format!("{device:?}"))),
    ]
}

/// The run folder: a new one, or (`--resume`) the existing one, whose saved model section must
/// equal the config's.
fn open_run_dir(cfg: &ExperimentConfig, opts: &RunOptions) -> Result<RunDir> {
    if !opts.resume {
        return RunDir::create(&opts.out, &cfg.name);
    }
    let dir = RunDir::open(&opts.out.join(&cfg.name)).context("--resume")?;
    let saved = dir.read_config()?;
    if saved.model != cfg.model {
        bail!(
            "--resume: the model section differs from the one saved in {}",
            dir.config_path().display()
        );
    }
    Ok(dir)
}

/// Loads the weights and optimizer state of a resumed run (or `--init-from` weights) and returns
/// the first step to train.
fn load_start(
    model: &mut dyn Model,
    opt: &mut Adam,
    dir: &RunDir,
    opts: &RunOptions,
) -> Result<i64> {
    if opts.resume {
        rundir::load_weights(model.var_store_mut(), &dir.model_path(), true)?;
        let state = rundir::load_tensors(&dir.optimizer_path())?;
        opt.load_state(&state)
            .with_context(|| format!("{}", dir.optimizer_path().display()))?;
        eprintln!("resuming {} at step {}", dir.path().display(), opt.step);
        return Ok(opt.step);
    }
    if let Some(path) = &opts.init_from {
        let report = rundir::init_weights(model.var_store_mut(), path, &opts.map)?;
        eprintln!(
            "initialized {} tensors from {} (kept at init: {:?}; unused in file: {:?})",
            report.loaded.len(),
            path.display(),
            report.missing,
            report.unused
        );
        if !report.unmatched.is_empty() {
            eprintln!("note: no --map rule matched {:?}", report.unmatched);
        }
    }
    Ok(0)
}

/// Final results as TensorBoard scalars (the HParams dashboard's metrics; see
/// [`crate::log::final_metric_tag`]), then the run's HParams session-end record.
fn log_final_metrics(log: &mut ScalarLog, metrics: &serde_json::Value, step: i64) -> Result<()> {
    for (k, v) in metrics.as_object().into_iter().flatten() {
        if let (Some(x), Some(tag)) = (v.as_f64(), crate::log::final_metric_tag(k)) {
            log.scalar(&tag, x, step)?;
        }
    }
    crate::log::hparams::write_session_end(&mut log.events, true, step)?;
    log.flush()
}

/// The state of the step loop.
struct Loop<'a> {
    cfg: &'a ExperimentConfig,
    dir: &'a RunDir,
    log: ScalarLog,
    opt: Adam,
    early: Option<EarlyStopping>,
    start: i64,
    last_checkpoint: i64,
    t0: Instant,
}

impl Loop<'_> {
    /// Steps from `start` to the configured count (or early stopping): returns the step reached
    /// and whether early stopping ended the loop.
    fn steps(&mut self, model: &mut dyn Model) -> Result<(i64, bool)> {
        let (cfg, lg) = (self.cfg, &self.cfg.logging);
        let mut progress = Progress::new(cfg.train.steps);
        let mut step = self.start;
        let mut stopped_early = false;
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
            self.opt.zero_grad();
            let grad_norm = if loss_value.is_finite() {
                losses.loss.backward();
                self.opt.grad_norm()
            } else {
                f64::NAN
            };
            if !grad_norm.is_finite() {
                return Err(self.non_finite(model, &ctx, loss_value.is_finite()));
            }
            if let Some(max) = cfg.train.grad_clip {
                self.opt.clip_grad_norm(grad_norm, max);
            }
            self.opt.step();
            step += 1;
            if diagnostics {
                stopped_early = self.log_step(model, &losses, &ctx, step, grad_norm)?;
                let rate = (step - self.start) as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
                // The number users know (ELBO, NLL) rather than the optimized, β-annealed loss.
                let (label, value) = ["elbo", "nll"]
                    .iter()
                    .find_map(|k| losses.terms.iter().find(|(n, _)| n == k))
                    .map(|(n, t)| (*n, t.double_value(&[])))
                    .unwrap_or(("loss", loss_value));
                progress.update(step, label, value, rate);
            }
            if lg.image_every > 0 && step % lg.image_every == 0 {
                self.log_snapshot(model, step)?;
            }
            if step % lg.checkpoint_every == 0 && step < cfg.train.steps {
                self.dir
                    .save_checkpoint(model.var_store(), &self.opt.state())?;
                self.last_checkpoint = step;
            }
            if stopped_early {
                break;
            }
        }
        // Short runs and runs stopped early still show the final state in TensorBoard.
        if lg.image_every > 0 && step % lg.image_every != 0 && step > self.start {
            self.log_snapshot(model, step)?;
        }
        progress.finish();
        Ok((step, stopped_early))
    }

    /// The one non-finite guard: names where a NaN/Inf arose (the gradient's tensors, or the
    /// model's first non-finite layer for the step's seed) and says which checkpoint is kept.
    fn non_finite(
        &mut self,
        model: &dyn Model,
        ctx: &StepContext,
        loss_finite: bool,
    ) -> anyhow::Error {
        let culprit = if loss_finite {
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
            tch::manual_seed(step_seed(self.cfg.train.seed, ctx.step));
            model
                .locate_nonfinite(ctx)
                .unwrap_or_else(|| "the loss".into())
        };
        if let Err(e) = self.log.flush() {
            return e;
        }
        let what = if loss_finite { "gradient" } else { "loss" };
        anyhow::anyhow!(
            "non-finite {what} at step {} (first in {culprit}); training stopped, {} keeps the last good checkpoint (step {})",
            ctx.step + 1,
            self.dir.model_path().display(),
            self.last_checkpoint
        )
    }

    /// Logs a diagnostic step (training terms, validation, per-layer log-dets) and runs early
    /// stopping; true when it says stop.
    fn log_step(
        &mut self,
        model: &dyn Model,
        losses: &crate::model::Losses,
        ctx: &StepContext,
        step: i64,
        grad_norm: f64,
    ) -> Result<bool> {
        let log = &mut self.log;
        log.scalar("train/loss", losses.loss.double_value(&[]), step)?;
        for (name, v) in &losses.terms {
            log.scalar(&format!("train/{name}"), v.double_value(&[]), step)?;
        }
        let validation = model.validation()?;
        for (name, v) in &validation {
            log.scalar(&format!("val/{name}"), *v, step)?;
        }
        let mut stop = false;
        if let (Some(es), Some((name, v))) = (&self.cfg.train.early_stopping, validation.first()) {
            let higher = model.validation_higher_is_better();
            let state = self
                .early
                .get_or_insert_with(|| EarlyStopping::new(&format!("val/{name}"), higher, step));
            let counting = !es.after_warmup || step >= self.cfg.train.beta.anneal_steps;
            let check = state.check(*v, step, es.patience, counting);
            if check == Check::Improved {
                RunDir::save_weights(&self.dir.best_path(), model.var_store())?;
            }
            state.save(&self.dir.early_stopping_path())?;
            if check == Check::Stop {
                eprintln!(
                    "early stopping at step {step}: val/{name} has not improved for {} checks (best {:.6} at step {})",
                    es.patience,
                    state.best_value(),
                    state.best_step
                );
                stop = true;
            }
        }
        if model.uses_beta() {
            log.scalar("train/beta", ctx.beta, step)?;
        }
        log.scalar("train/lr", self.opt.lr(), step)?;
        log.scalar("train/grad_norm", grad_norm, step)?;
        for (name, v) in &losses.layers {
            log.scalar(&format!("layers/{name}/log_det"), v.double_value(&[]), step)?;
        }
        log.flush()?;
        Ok(stop)
    }

    /// The model's picture and a histogram of every parameter.
    fn log_snapshot(&mut self, model: &dyn Model, step: i64) -> Result<()> {
        if let Some(figure) = model.snapshot()? {
            let (w, h) = figure.size();
            let png = figure.render(crate::plot::Format::Png)?;
            self.log
                .events
                .add_png(model.snapshot_tag(), png, w, h, step)?;
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
            self.log
                .events
                .add_histogram(&format!("params/{name}"), &values, 30, step)?;
        }
        self.log.flush()
    }
}
