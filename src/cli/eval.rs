//! `flowlab eval`: re-evaluate a trained run and print its metrics as JSON.
use anyhow::{bail, Result};
use clap::Args;
use flowlab::experiment::config::ModelConfig;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// A trained run folder.
    pub run_dir: PathBuf,
    /// Monte-Carlo samples: flow_fit's eval_samples, a VAE's importance samples per test
    /// image, or a masked-decoder HI-VAE's column orders pooled for point imputation
    /// (default: the config's).
    #[arg(long)]
    pub samples: Option<i64>,
    /// Precision to load the weights in and compute with: f32 or f64 (default: the run's
    /// runtime.dtype). f64 keeps log-densities finite further from the data.
    #[arg(long, value_enum)]
    pub dtype: Option<flowlab::experiment::config::Dtype>,
    /// Exit 0 even if some metric is NaN or infinite (it is printed as null).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mut cfg = flowlab::experiment::rundir::RunDir::open(&args.run_dir)?.read_config()?;
    if let Some(n) = args.samples {
        match &mut cfg.model {
            ModelConfig::FlowFit(m) => m.eval_samples = n,
            ModelConfig::Vae(m) => {
                m.evaluation.importance_samples = n;
                m.evaluation.validate(m.latent_dim, "--samples")?;
            }
            ModelConfig::Hivae(m) => match &mut m.masked_decoder {
                Some(d) => d.imputation_orders = n,
                None => bail!("--samples on a HI-VAE run sets masked_decoder.imputation_orders (column orders pooled for point imputation); this run has no masked decoder"),
            },
            _ => bail!("--samples applies to flow_fit, vae and masked-decoder hivae runs only (density runs and autoencoders evaluate deterministically on their test set)"),
        }
    }
    let model = super::build_loaded(&cfg, &args.run_dir, args.dtype, true)?;
    let values = model.evaluate()?;
    let metrics: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    let bad: Vec<&str> = values
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(k, _)| k.as_str())
        .collect();
    anyhow::ensure!(
        bad.is_empty() || args.allow_nonfinite,
        "metrics {} are not finite (pass --allow-nonfinite to accept that)",
        bad.join(", ")
    );
    Ok(())
}
