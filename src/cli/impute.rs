//! `flowlab impute RUN_DIR --input with_gaps.csv --out filled.csv [--draws N]`: fills the
//! missing cells (empty or `NaN`) of a table with a trained HI-VAE. Observed cells keep their
//! text (the output has LF line endings and keeps a header); with `--draws N`, N multiple
//! imputations are drawn and written to `<out stem>_1.csv` … `<out stem>_N.csv`.
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use flowlab::data::csv::{read_records, write_records, Header, Records};
use flowlab::data::hetero::{self, Kind};
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::model::hivae::{Hivae, HivaeConfig, TableSchema};
use flowlab::model::hivae_data::SCHEMA_FILE;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Args)]
pub struct ImputeArgs {
    /// A trained HI-VAE run folder.
    run_dir: PathBuf,
    /// A table with the run's columns; empty or NaN cells are filled.
    #[arg(long)]
    input: PathBuf,
    /// The filled table to write (CSV).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Draw this many multiple imputations instead of the single most likely one.
    #[arg(long, value_name = "N", visible_alias = "samples")]
    draws: Option<usize>,
    /// Random seed of the imputation draws.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

fn format_cell(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Count | Kind::Categorical | Kind::Ordinal => format!("{}", v.round() as i64),
        Kind::Real | Kind::Positive => format!("{}", v as f32),
    }
}

/// The input's records with every missing cell filled from `filled: [rows, cols]` (in the
/// table's own codes); present cells keep their text. Returns the rows and how many cells were
/// filled.
fn fill(records: &Records, filled: &Tensor, kinds: &[Kind]) -> Result<(Vec<Vec<String>>, usize)> {
    let values = Vec::<f64>::try_from(filled.to_kind(tch::Kind::Double).flatten(0, -1))?;
    let cols = kinds.len();
    let mut count = 0;
    let rows = records
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.cells
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    if c.is_empty() || c.eq_ignore_ascii_case("nan") {
                        count += 1;
                        format_cell(kinds[j], values[i * cols + j])
                    } else {
                        c.clone()
                    }
                })
                .collect()
        })
        .collect();
    Ok((rows, count))
}

fn warn_clamped(n: i64) {
    if n > 0 {
        eprintln!("warning: {n} imputed cells were not finite and were set to their column's training mean");
    }
}

fn numbered(path: &Path, k: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imputed");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("csv");
    path.with_file_name(format!("{stem}_{k}.{ext}"))
}

/// The run's HI-VAE from its weights and `table.json`; a run folder written before the schema
/// was stored is rebuilt from its training table instead.
fn load_model(run_dir: &Path, hc: &HivaeConfig) -> Result<Hivae> {
    let dir = RunDir::open(run_dir)?;
    let mut model = if run_dir.join(SCHEMA_FILE).is_file() {
        Hivae::from_schema(hc.clone(), TableSchema::read(run_dir)?, tch::Device::Cpu)?
    } else {
        Hivae::new(hc.clone(), tch::Device::Cpu).with_context(|| {
            format!(
                "{} has no {SCHEMA_FILE} (written by older versions), so the model is rebuilt from its training table",
                run_dir.display()
            )
        })?
    };
    rundir::load_weights(
        flowlab::model::Model::var_store_mut(&mut model),
        &dir.model_path(),
        true,
    )?;
    Ok(model)
}

pub fn run(args: ImputeArgs) -> Result<()> {
    let cfg = RunDir::open(&args.run_dir)?.read_config()?;
    let ModelConfig::Hivae(hc) = &cfg.model else {
        bail!("{}: `impute` needs a hivae run", args.run_dir.display());
    };
    flowlab::experiment::set_threads(cfg.runtime.threads);
    let model = load_model(&args.run_dir, hc)?;
    let records = read_records(&args.input, Header::Detect)?;
    let mut table = hetero::table_of(&records, &model.types, &args.input)?;
    model.schema.coding.recode(&mut table, &args.input)?;
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
    let header = records.header.as_deref();
    tch::manual_seed(args.seed);
    match args.draws {
        None => {
            let filled = model.impute_with(&x, &seen, false)?;
            warn_clamped(filled.clamped);
            let filled = model.schema.in_table_codes(&filled.values);
            let (rows, count) = fill(&records, &filled, &kinds)?;
            write_records(&args.out, header, &rows)?;
            eprintln!("filled {count} missing cells into {}", args.out.display());
        }
        Some(k) => {
            ensure!(k >= 1, "--draws must be at least 1");
            let mut count = 0;
            for i in 1..=k {
                let filled = model.impute_with(&x, &seen, true)?;
                warn_clamped(filled.clamped);
                let filled = model.schema.in_table_codes(&filled.values);
                let (rows, c) = fill(&records, &filled, &kinds)?;
                write_records(&numbered(&args.out, i), header, &rows)?;
                count = c;
            }
            eprintln!(
                "drew {k} imputations of {count} missing cells into {}",
                numbered(&args.out, 1).display()
            );
        }
    }
    Ok(())
}
