//! `flowlab log-prob`: ln p(x) of a trained model on each row of a CSV.
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct LogProbArgs {
    /// A trained run folder (flow_fit, density or vae).
    pub run_dir: PathBuf,
    /// Points to evaluate: a CSV with one row per point (a header line is optional).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write ln p(x), one value per input row (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Precision to load the weights in and compute with: f32 or f64 (default: the run's
    /// runtime.dtype). f64 keeps log-densities finite further from the data.
    #[arg(long, value_enum)]
    pub dtype: Option<flowlab::experiment::config::Dtype>,
    /// Write the file even if some log-densities are NaN or infinite (they are reported).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

pub fn run(args: LogProbArgs) -> Result<()> {
    let (cfg, model) = super::load_run(&args.run_dir, args.dtype)?;
    let Some(density) = model.log_density() else {
        let hint = match cfg.model.kind() {
            "hivae" => " (a HI-VAE answers `flowlab impute`; its marginal likelihood needs importance sampling over s and z)",
            _ => "",
        };
        anyhow::bail!(
            "{} runs define no ln p(x){hint} (runs that do: flow_fit, density, vae)",
            cfg.model.kind()
        )
    };
    let x = flowlab::data::csv::read_matrix(&args.input, density.data_dim() as usize)?;
    let lp = density.log_prob(&x)?;
    super::check_finite(&lp, "log-densities", args.allow_nonfinite)?;
    flowlab::data::csv::write_matrix(&args.out, &["log_prob".to_string()], &lp)?;
    eprintln!(
        "wrote {} log-densities to {}",
        x.size()[0],
        args.out.display()
    );
    Ok(())
}
