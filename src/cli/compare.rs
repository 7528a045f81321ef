//! `flowlab compare RUN_DIR…`: final metrics of several runs side by side, as a markdown table on
//! stdout and a CSV file. Runs written under one output root also overlay in one TensorBoard
//! (`tensorboard --logdir <root>`).
use anyhow::{ensure, Context, Result};
use clap::Args;
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::{self, RunDir};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CompareArgs {
    /// Finished run folders (each with config.json and metrics.json).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write the CSV.
    #[arg(long, default_value = "compare.csv")]
    csv: PathBuf,
}

/// A metric column: header, metrics.json key, negate, decimals.
type Metric = (&'static str, &'static str, bool, usize);

/// Metric columns. A column is shown when any run has it.
const METRICS: [Metric; 11] = [
    ("test -ELBO", "test_elbo", true, 2),
    ("test NLL", "test_nll", false, 3),
    ("S", "importance_samples", false, 0),
    ("test recon", "test_recon", false, 2),
    ("KL", "kl", false, 4),
    ("test imputation error", "test_imputation_error", false, 4),
    ("mean/mode error", "test_mean_mode_error", false, 4),
    ("best val", "best_val", false, 3),
    ("steps", "steps", false, 0),
    ("steps/s", "steps_per_sec", false, 1),
    ("train s", "train_seconds", false, 0),
];

fn describe(model: &ModelConfig) -> (String, String, String) {
    let (posterior, latent) = match model {
        ModelConfig::Vae(v) => (v.posterior.label(), v.latent_dim.to_string()),
        ModelConfig::Autoencoder(a) => ("-".into(), a.latent_dim.to_string()),
        ModelConfig::Hivae(h) => (h.posterior.label(), h.z_dim.to_string()),
        ModelConfig::Density(_) | ModelConfig::FlowFit(_) => ("-".into(), "-".into()),
    };
    (model.kind().into(), posterior, latent)
}

struct Run {
    name: String,
    describe: (String, String, String),
    metrics: serde_json::Value,
    /// The config without its name and seed: runs that differ only there are seeds of one setting.
    setting: String,
}

fn value(m: &serde_json::Value, key: &str, neg: bool) -> Option<f64> {
    m.get(key)
        .and_then(|v| v.as_f64())
        .map(|v| if neg { -v } else { v })
}

fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}

pub fn run(args: CompareArgs) -> Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|r| load(r))
        .collect::<Result<Vec<_>>>()?;
    ensure!(!runs.is_empty(), "no runs to compare");
    let shown: Vec<_> = METRICS
        .iter()
        .filter(|(_, k, ..)| runs.iter().any(|r| r.metrics.get(*k).is_some()))
        .collect();
    let mut header: Vec<String> = ["run", "model", "posterior", "latent"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(shown.iter().map(|(h, ..)| h.to_string()));
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let (m, p, l) = r.describe.clone();
            let mut row = vec![r.name.clone(), m, p, l];
            row.extend(shown.iter().map(|(_, k, neg, d)| {
                value(&r.metrics, k, *neg)
                    .map(|v| format!("{v:.*}", d))
                    .unwrap_or_else(|| "-".into())
            }));
            row
        })
        .collect();
    print!("{}", markdown(&header, &rows));
    let mut csv = header.join(",") + "\n";
    for r in &rows {
        csv += &(r.join(",") + "\n");
    }
    rundir::write_atomic(&args.csv, csv.as_bytes())?;
    eprintln!("wrote {}", args.csv.display());
    seed_table(&runs, &shown);
    Ok(())
}

/// A finished run folder, its setting being its config without name and seed.
fn load(run: &Path) -> Result<Run> {
    let dir = RunDir::open(run)?;
    let mut cfg = dir.read_config()?;
    let path = run.join("metrics.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: no metrics.json (is the run finished?)", run.display()))?;
    let metrics: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let name = cfg.name.clone();
    let describe = describe(&cfg.model);
    cfg.name = String::new();
    cfg.train.seed = 0;
    Ok(Run {
        name,
        describe,
        metrics,
        setting: cfg.to_pretty_json(),
    })
}

/// Settings run with several seeds: mean ± std (sample standard deviation) over seeds.
fn seed_table(runs: &[Run], shown: &[&Metric]) {
    let mut groups: Vec<(String, Vec<&Run>)> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|(s, _)| *s == r.setting) {
            Some((_, g)) => g.push(r),
            None => groups.push((r.setting.clone(), vec![r])),
        }
    }
    if !groups.iter().any(|(_, g)| g.len() > 1) {
        return;
    }
    let stats: Vec<_> = shown
        .iter()
        .filter(|(_, k, ..)| !["steps", "importance_samples"].contains(k))
        .collect();
    let mut header: Vec<String> = vec!["setting (first run)".into(), "seeds".into()];
    header.extend(stats.iter().map(|(h, ..)| h.to_string()));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(_, g)| {
            let mut row = vec![g[0].name.clone(), g.len().to_string()];
            for (_, k, neg, d) in &stats {
                let v: Vec<f64> = g
                    .iter()
                    .filter_map(|r| value(&r.metrics, k, *neg))
                    .collect();
                row.push(mean_sd(&v, *d));
            }
            row
        })
        .collect();
    println!("\nmean ± std over seeds (runs whose configs differ only in name and train.seed):\n");
    print!("{}", markdown(&header, &rows));
}

/// `mean ± sd` with `d` decimals (sample standard deviation), `-` for no values.
fn mean_sd(v: &[f64], d: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    format!("{mean:.*} ± {sd:.*}", d, d)
}
