//! `flowlab compare RUN_DIR…`: final metrics of several runs side by side, as a markdown table on
//! stdout and a CSV file. Runs written under one output root also overlay in one TensorBoard
//! (`tensorboard --logdir <root>`).
use anyhow::{ensure, Context, Result};
use clap::Args;
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::{self, RunDir};
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    /// Finished run folders (each with config.json and metrics.json).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write the CSV.
    #[arg(long, default_value = "compare.csv")]
    csv: PathBuf,
}

const COLUMNS: [&str; 12] = [
    "run",
    "model",
    "posterior",
    "latent",
    "test -ELBO",
    "test NLL",
    "S",
    "test recon",
    "best val",
    "steps",
    "steps/s",
    "train s",
];

fn describe(model: &ModelConfig) -> (String, String, String) {
    match model {
        ModelConfig::Vae(v) => ("vae".into(), v.posterior.label(), v.latent_dim.to_string()),
        ModelConfig::Autoencoder(a) => ("autoencoder".into(), "-".into(), a.latent_dim.to_string()),
        ModelConfig::Density(_) => ("density".into(), "-".into(), "-".into()),
        ModelConfig::FlowFit(_) => ("flow_fit".into(), "-".into(), "-".into()),
        ModelConfig::Hivae(h) => ("hivae".into(), h.posterior.label(), h.z_dim.to_string()),
    }
}

pub fn run(args: CompareArgs) -> Result<()> {
    let mut rows = Vec::new();
    for run in &args.runs {
        let dir = RunDir::open(run)?;
        let cfg = dir.read_config()?;
        let path = run.join("metrics.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{}: no metrics.json (is the run finished?)", run.display())
        })?;
        let m: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let num = |k: &str, neg: bool, digits: usize| {
            m.get(k)
                .and_then(|v| v.as_f64())
                .map(|v| format!("{:.*}", digits, if neg { -v } else { v }))
                .unwrap_or_else(|| "-".into())
        };
        let (model, posterior, latent) = describe(&cfg.model);
        rows.push(vec![
            cfg.name.clone(),
            model,
            posterior,
            latent,
            num("test_elbo", true, 2),
            num("test_nll", false, 2),
            num("importance_samples", false, 0),
            num("test_recon", false, 2),
            num("best_val", false, 2),
            num("steps", false, 0),
            num("steps_per_sec", false, 1),
            num("train_seconds", false, 0),
        ]);
    }
    ensure!(!rows.is_empty(), "no runs to compare");
    println!("| {} |", COLUMNS.join(" | "));
    println!("|{}", "---|".repeat(COLUMNS.len()));
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    let mut csv = COLUMNS.join(",") + "\n";
    for r in &rows {
        csv += &(r.join(",") + "\n");
    }
    rundir::write_atomic(&args.csv, csv.as_bytes())?;
    eprintln!("wrote {}", args.csv.display());
    Ok(())
}
