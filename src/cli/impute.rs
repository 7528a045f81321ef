//! `flowlab impute RUN_DIR --input with_gaps.csv --out filled.csv [--samples N]`: fills the
//! missing cells (empty or `NaN`) of a table with a trained HI-VAE. Observed cells are copied
//! byte for byte; with `--samples N`, N multiple imputations are drawn and written to
//! `<out stem>_1.csv` … `<out stem>_N.csv`.
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use flowlab::data::hetero::{self, Kind};
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::model::hivae::Hivae;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Args)]
pub struct ImputeArgs {
    run_dir: PathBuf,
    /// A table with the run's columns; empty or NaN cells are filled.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Draw this many multiple imputations instead of the single most likely one.
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

fn format_cell(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Count | Kind::Categorical | Kind::Ordinal => format!("{}", v.round() as i64),
        Kind::Real | Kind::Positive => format!("{}", v as f32),
    }
}

/// The input's text with missing cells replaced from `filled: [rows, cols]`.
fn fill(text: &str, filled: &Tensor, kinds: &[Kind]) -> Result<String> {
    let values = Vec::<f64>::try_from(filled.to_kind(tch::Kind::Double).flatten(0, -1))?;
    let cols = kinds.len();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut row = 0;
    for (i, piece) in text.split_inclusive('\n').enumerate() {
        let body = piece.trim_end_matches(['\n', '\r']);
        let ending = &piece[body.len()..];
        let cells: Vec<&str> = body.split(',').collect();
        let is_header = i == 0
            && cells.first().is_some_and(|c| {
                let c = c.trim();
                !c.is_empty() && c.parse::<f64>().is_err() && !c.eq_ignore_ascii_case("nan")
            });
        if body.trim().is_empty() || is_header {
            out.push_str(piece);
            continue;
        }
        let line: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let t = c.trim();
                if t.is_empty() || t.eq_ignore_ascii_case("nan") {
                    format_cell(kinds[j], values[row * cols + j])
                } else {
                    c.to_string()
                }
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str(ending);
        row += 1;
    }
    Ok(out)
}

fn numbered(path: &Path, k: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imputed");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("csv");
    path.with_file_name(format!("{stem}_{k}.{ext}"))
}

pub fn run(args: ImputeArgs) -> Result<()> {
    let dir = RunDir::open(&args.run_dir)?;
    let cfg = dir.read_config()?;
    let ModelConfig::Hivae(hc) = &cfg.model else {
        bail!("{}: `impute` needs a hivae run", args.run_dir.display());
    };
    flowlab::experiment::set_threads(cfg.runtime.threads);
    let mut model = Hivae::new(hc.clone(), tch::Device::Cpu).with_context(|| {
        format!(
            "rebuilding the model of {} (it reads the training table for its normalization)",
            args.run_dir.display()
        )
    })?;
    rundir::load_weights(
        flowlab::model::Model::var_store_mut(&mut model),
        &dir.model_path(),
        true,
    )?;
    let table = hetero::read_table(&args.input, &model.types)?;
    let text = std::fs::read_to_string(&args.input)?;
    let (n, d) = (table.rows as i64, table.cols() as i64);
    let x = Tensor::from_slice(&table.values)
        .reshape([n, d])
        .to_kind(tch::Kind::Float);
    let seen: Vec<f32> = table
        .present
        .iter()
        .map(|&p| f32::from(u8::from(p)))
        .collect();
    let seen = Tensor::from_slice(&seen).reshape([n, d]);
    let kinds: Vec<Kind> = model.types.iter().map(|t| t.kind).collect();
    let missing = table.present.iter().filter(|p| !**p).count();
    tch::manual_seed(args.seed);
    match args.samples {
        None => {
            let filled = model.impute_with(&x, &seen, false)?;
            rundir::write_atomic(&args.out, fill(&text, &filled, &kinds)?.as_bytes())?;
            eprintln!("filled {missing} missing cells into {}", args.out.display());
        }
        Some(k) => {
            ensure!(k >= 1, "--samples must be at least 1");
            for i in 1..=k {
                let filled = model.impute_with(&x, &seen, true)?;
                let path = numbered(&args.out, i);
                rundir::write_atomic(&path, fill(&text, &filled, &kinds)?.as_bytes())?;
            }
            eprintln!(
                "drew {k} imputations of {missing} missing cells into {}",
                numbered(&args.out, 1).display()
            );
        }
    }
    Ok(())
}
