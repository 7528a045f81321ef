use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use flowlab::experiment::config::{Dtype, ExperimentConfig, ModelConfig};
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::model::hivae::{Hivae, TableSchema};
use flowlab::model::hivae_data::SCHEMA_FILE;
use flowlab::model::Model;
use std::path::Path;

mod check;
mod compare;
mod config;
mod eval;
mod export;
mod impute;
mod log_prob;
mod plot;
mod plot_curves;
mod run;
mod sample;
mod sweep;
mod weights;

#[derive(Parser)]
#[command(
    name = "flowlab",
    version,
    about = "Normalizing flows and VAEs on libtorch: JSON configs in, run folders out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train from config files (with none, the built-in default: 8 planar layers on U1).
    Run(run::RunArgs),
    /// Print the resolved config (defaults, --set overrides, validation) without training.
    Config(config::ConfigArgs),
    /// Re-evaluate a trained run and print its metrics as JSON.
    Eval(eval::EvalArgs),
    /// Draw samples from a trained model into a CSV.
    Sample(sample::SampleArgs),
    /// Evaluate ln p(x) of a trained model on each row of a CSV.
    LogProb(log_prob::LogProbArgs),
    /// Run the three bijector checks (round trip, autograd log-det, density integrates to 1) on
    /// the flow a config builds, or on a trained run's flow.
    Check(check::CheckArgs),
    /// Write a Jupyter notebook of finished runs (equations, configs, metrics, curves, figures).
    Export(export::ExportArgs),
    /// Run a sweep file's configs locally, or write them as a Slurm job array.
    Sweep(sweep::SweepArgs),
    /// Fill the missing cells of a table with a trained HI-VAE.
    Impute(impute::ImputeArgs),
    /// Final metrics of several runs as a markdown table (and a CSV).
    Compare(compare::CompareArgs),
    /// Names, shapes and element types of a weight file (.safetensors, .ot, PyTorch .pt/.pth).
    Weights(weights::WeightsArgs),
    /// Figures: Rezende & Mohamed's Fig. 1, targets, runs, a VAE's latent space.
    #[command(subcommand)]
    Plot(plot::PlotCommand),
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Config(args) => config::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Sample(args) => sample::run(args),
        Command::LogProb(args) => log_prob::run(args),
        Command::Check(args) => check::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Impute(args) => impute::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Export(args) => export::run(args),
        Command::Plot(cmd) => plot::run(cmd),
        Command::Weights(args) => weights::run(args),
    }
}

/// Opens a run folder: its config and its model with the trained weights, on the CPU, in
/// `dtype` (default: the precision it was trained in).
pub fn load_run(
    run_dir: &Path,
    dtype: Option<Dtype>,
) -> Result<(ExperimentConfig, Box<dyn Model>)> {
    let cfg = RunDir::open(run_dir)?.read_config()?;
    let model = build_loaded(&cfg, run_dir, dtype, false)?;
    Ok((cfg, model))
}

/// The model of `cfg` with the weights of `run_dir`, cast to `dtype` (default: the config's
/// `runtime.dtype`). A HI-VAE is rebuilt from the run's `table.json` unless `with_data` (to
/// evaluate on its table).
pub fn build_loaded(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    dtype: Option<Dtype>,
    with_data: bool,
) -> Result<Box<dyn Model>> {
    flowlab::experiment::set_threads(cfg.runtime.threads);
    let dir = RunDir::open(run_dir)?;
    let mut model = match &cfg.model {
        ModelConfig::Hivae(h) if !with_data && run_dir.join(SCHEMA_FILE).is_file() => Box::new(
            Hivae::from_schema(h.clone(), TableSchema::read(run_dir)?, tch::Device::Cpu)?,
        ),
        m => flowlab::experiment::build_model(m, tch::Device::Cpu)?,
    };
    model.set_dtype(dtype.unwrap_or(cfg.runtime.dtype))?;
    rundir::load_weights(model.var_store_mut(), &dir.model_path(), true)
        .with_context(|| format!("loading the weights of {}", run_dir.display()))?;
    Ok(model)
}

/// Refuses output with non-finite rows unless `allow`: says how many and which (1-based, the
/// first ten) so a NaN never reaches a file with a zero exit code.
pub fn check_finite(t: &tch::Tensor, what: &str, allow: bool) -> Result<()> {
    let rows = t.reshape([t.size()[0], -1]);
    let bad = rows.isfinite().logical_not().any_dim(1, false);
    let idx = Vec::<i64>::try_from(bad.nonzero().view([-1]))?;
    if idx.is_empty() {
        return Ok(());
    }
    let first: Vec<String> = idx.iter().take(10).map(|i| (i + 1).to_string()).collect();
    let more = if idx.len() > 10 { ", …" } else { "" };
    let msg = format!(
        "{} of {} {what} are not finite (data rows {}{more})",
        idx.len(),
        rows.size()[0],
        first.join(", ")
    );
    if allow {
        eprintln!("warning: {msg}; written as they are (--allow-nonfinite)");
        return Ok(());
    }
    anyhow::bail!("{msg}; nothing was written (pass --allow-nonfinite to write them anyway)")
}
