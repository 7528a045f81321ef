use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use flowlab::experiment::config::{DeviceChoice, ExperimentConfig};
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::experiment::trainer::{self, RunOptions};
use flowlab::model::Model;
use std::path::{Path, PathBuf};

mod check;
mod compare;
mod export;
mod impute;
mod plot;
mod sweep;

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
    Run {
        /// Experiment configs (JSON); each becomes <out>/<name>/.
        configs: Vec<PathBuf>,
        /// auto | cpu | cuda (overrides runtime.device).
        #[arg(long, value_parser = parse_device)]
        device: Option<DeviceChoice>,
        /// Output root for run folders.
        #[arg(long, default_value = "runs")]
        out: PathBuf,
        /// Continue an interrupted run from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Initialize weights by name from a .safetensors or .ot file.
        #[arg(long)]
        init_from: Option<PathBuf>,
        /// libtorch intra-op threads (overrides runtime.threads).
        #[arg(long)]
        threads: Option<i32>,
        /// Override a config field by its path, e.g. `--set train.seed=3`
        /// `--set model.flow_fit.flow[0].planar.length=32` (repeatable; VALUE is JSON or a string).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        sets: Vec<String>,
    },
    /// Re-evaluate a trained run and print its metrics as JSON.
    Eval {
        run_dir: PathBuf,
        /// Monte-Carlo samples: flow_fit's eval_samples, or a VAE's importance samples per test
        /// image (default: the config's).
        #[arg(long)]
        samples: Option<i64>,
    },
    /// Draw samples from a trained model into a CSV.
    Sample {
        run_dir: PathBuf,
        #[arg(short = 'n', long, default_value_t = 1000)]
        n: i64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: i64,
        /// Sampling temperature: the base noise is scaled by T (Glow); 1 samples the model.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
    },
    /// Evaluate ln p(x) of a trained model on each row of a CSV.
    LogProb {
        run_dir: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Figures: the seed's Fig. 1, targets, runs, a VAE's latent space.
    #[command(subcommand)]
    Plot(plot::PlotCommand),
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda),
        _ => Err(format!("unknown device `{s}` (expected auto, cpu or cuda)")),
    }
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            configs,
            device,
            out,
            resume,
            init_from,
            threads,
            sets,
        } => {
            let opts = RunOptions {
                out,
                resume,
                init_from,
                device,
                threads,
            };
            // Parse every config first so a typo in the last one fails before any training.
            use flowlab::experiment::overrides;
            let cfgs: Vec<ExperimentConfig> = if configs.is_empty() {
                let base = serde_json::to_value(ExperimentConfig::builtin_default())?;
                vec![overrides::apply(&base, &sets)?]
            } else {
                configs
                    .iter()
                    .map(|p| {
                        overrides::apply(&overrides::read_json(p)?, &sets)
                            .with_context(|| format!("invalid config {}", p.display()))
                    })
                    .collect::<Result<_>>()?
            };
            for cfg in cfgs {
                let summary = trainer::run(cfg, &opts)?;
                println!("{}", serde_json::to_string_pretty(&summary.metrics)?);
                println!("run folder: {}", summary.dir.display());
            }
            Ok(())
        }
        Command::Eval { run_dir, samples } => {
            let (mut cfg, _) = load_run(&run_dir)?;
            if let Some(n) = samples {
                match &mut cfg.model {
                    flowlab::experiment::config::ModelConfig::FlowFit(m) => m.eval_samples = n,
                    flowlab::experiment::config::ModelConfig::Vae(m) => {
                        m.evaluation.importance_samples = n;
                        m.evaluation.validate(m.latent_dim, "--samples")?;
                    }
                    _ => anyhow::bail!("--samples applies to flow_fit and vae runs only (density runs and autoencoders evaluate deterministically on their test set)"),
                }
            }
            let model = build_loaded(&cfg, &run_dir)?;
            let metrics: serde_json::Map<String, serde_json::Value> = model
                .evaluate()?
                .into_iter()
                .map(|(k, v)| (k, serde_json::json!(v)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&metrics)?);
            Ok(())
        }
        Command::Sample {
            run_dir,
            n,
            out,
            seed,
            temperature,
        } => {
            anyhow::ensure!(
                temperature.is_finite() && temperature >= 0.0,
                "--temperature must be ≥ 0, got {temperature}"
            );
            anyhow::ensure!(n > 0, "-n must be positive, got {n}");
            let (_, model) = load_run(&run_dir)?;
            tch::manual_seed(seed);
            let x = model.sample(n, temperature)?;
            let header: Vec<String> = (1..=model.data_dim()).map(|i| format!("x{i}")).collect();
            flowlab::data::csv::write_matrix(&out, &header, &x)?;
            eprintln!("wrote {n} samples to {}", out.display());
            Ok(())
        }
        Command::LogProb {
            run_dir,
            input,
            out,
        } => {
            let (_, model) = load_run(&run_dir)?;
            let x = flowlab::data::csv::read_matrix(&input, model.data_dim() as usize)?;
            let lp = model.log_prob(&x)?;
            flowlab::data::csv::write_matrix(&out, &["log_prob".to_string()], &lp)?;
            eprintln!("wrote {} log-densities to {}", x.size()[0], out.display());
            Ok(())
        }
        Command::Check(args) => check::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Impute(args) => impute::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Export(args) => export::run(args),
        Command::Plot(cmd) => plot::run(cmd),
    }
}

/// Opens a run folder: its config and its model with the trained weights, on the CPU.
pub fn load_run(run_dir: &Path) -> Result<(ExperimentConfig, Box<dyn Model>)> {
    let dir = RunDir::open(run_dir)?;
    let cfg = dir.read_config()?;
    let model = build_loaded(&cfg, run_dir)?;
    Ok((cfg, model))
}

pub fn build_loaded(cfg: &ExperimentConfig, run_dir: &Path) -> Result<Box<dyn Model>> {
    flowlab::experiment::set_threads(cfg.runtime.threads);
    let dir = RunDir::open(run_dir)?;
    let mut model = flowlab::experiment::build_model(&cfg.model, tch::Device::Cpu)?;
    rundir::load_weights(model.var_store_mut(), &dir.model_path(), true)
        .with_context(|| format!("loading the weights of {}", run_dir.display()))?;
    Ok(model)
}
