//! `flowlab sample`: draw samples from a trained model into a CSV.
use anyhow::{ensure, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct SampleArgs {
    pub run_dir: PathBuf,
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub n: i64,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Sampling temperature: the base noise is scaled by T (Glow); 1 samples the model.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
}

pub fn run(args: SampleArgs) -> Result<()> {
    let t = args.temperature;
    ensure!(
        t.is_finite() && t >= 0.0,
        "--temperature must be ≥ 0, got {t}"
    );
    ensure!(args.n > 0, "-n must be positive, got {}", args.n);
    let (cfg, model) = super::load_run(&args.run_dir)?;
    let Some(sampler) = model.sampler() else {
        anyhow::bail!(
            "{} runs have no prior to sample from (runs that sample: flow_fit, density, vae, hivae; train a vae for samples)",
            cfg.model.kind()
        )
    };
    tch::manual_seed(args.seed);
    let x = sampler.sample(args.n, t)?;
    let header: Vec<String> = (1..=sampler.data_dim()).map(|i| format!("x{i}")).collect();
    flowlab::data::csv::write_matrix(&args.out, &header, &x)?;
    eprintln!("wrote {} samples to {}", args.n, args.out.display());
    Ok(())
}
