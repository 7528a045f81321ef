//! `flowlab run`: train from config files (with none, the built-in default).
use anyhow::Result;
use clap::Args;
use flowlab::experiment::config::{DeviceChoice, ExperimentConfig};
use flowlab::experiment::overrides;
use flowlab::experiment::trainer::{self, RunOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// Experiment configs (JSON); each becomes <out>/<name>/.
    pub configs: Vec<PathBuf>,
    /// auto | cpu | cuda (overrides runtime.device).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
    /// Output root: a folder; each run goes to ROOT/<name>/.
    #[arg(long, value_name = "ROOT", default_value = "runs")]
    pub out: PathBuf,
    /// Continue an interrupted run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Initialize weights by name from a .safetensors, tch .ot, or PyTorch .pt/.pth file
    /// (`flowlab weights FILE` lists its names).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Rename the --init-from file's tensors: 'REGEX=REPLACEMENT' (repeatable, applied in
    /// order; `$1` refers to a group; a replacement ending in `[INDEX]` stacks tensors).
    #[arg(long = "map", value_name = "REGEX=REPLACEMENT", requires = "init_from")]
    pub map: Vec<flowlab::experiment::weights::MapRule>,
    /// libtorch intra-op threads (overrides runtime.threads).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Override a config field by its path, e.g. `--set train.seed=3`
    /// `--set model.flow_fit.flow[0].planar.length=32` (repeatable; VALUE is JSON or a string).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

pub fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda),
        _ => Err(format!("unknown device `{s}` (expected auto, cpu or cuda)")),
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let opts = RunOptions {
        out: args.out,
        resume: args.resume,
        init_from: args.init_from,
        map: args.map,
        device: args.device,
        threads: args.threads,
    };
    // Parse every config first so a typo in the last one fails before any training.
    let cfgs: Vec<ExperimentConfig> = if args.configs.is_empty() {
        let base = serde_json::to_value(ExperimentConfig::builtin_default())?;
        vec![overrides::apply(&base, &args.sets)?]
    } else {
        args.configs
            .iter()
            .map(|p| overrides::load(p, &args.sets))
            .collect::<Result<_>>()?
    };
    for cfg in cfgs {
        let summary = trainer::run(cfg, &opts)?;
        println!("{}", serde_json::to_string_pretty(&summary.metrics)?);
        println!("run folder: {}", summary.dir.display());
    }
    Ok(())
}
