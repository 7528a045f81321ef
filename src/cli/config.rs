//! `flowlab config [CONFIG] [--set PATH=VALUE…]`: the resolved config (defaults filled in,
//! overrides applied, validated) as `flowlab run` would use it, without training.
use anyhow::Result;
use clap::Args;
use flowlab::experiment::config::ExperimentConfig;
use flowlab::experiment::overrides;
use std::path::PathBuf;

#[derive(Args)]
pub struct ConfigArgs {
    /// Experiment config (JSON); without one, the built-in default.
    pub config: Option<PathBuf>,
    /// Override a config field by its path, as `flowlab run --set` does (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

pub fn run(args: ConfigArgs) -> Result<()> {
    let cfg = match &args.config {
        Some(path) => overrides::load(path, &args.sets)?,
        None => {
            let base = serde_json::to_value(ExperimentConfig::builtin_default())?;
            overrides::apply(&base, &args.sets)?
        }
    };
    println!("{}", cfg.to_pretty_json());
    Ok(())
}
