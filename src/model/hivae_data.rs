//! The table of a HI-VAE run: column types, values, which cells train, validate and test, and
//! per-column statistics (normalization from observed training cells; ranges from all true
//! values, for the error measure).
//!
//! What the model needs of the table besides its weights (types, class codings, normalization
//! statistics, ranges) is its [`TableSchema`], stored in the run folder as `table.json`, so a
//! trained run imputes and samples without the training files.
use super::hivae_config::{Missing, TableConfig};
use super::hivae_lik::Stats;
use crate::data::hetero::{self, Coding, ColumnType, Kind};
use crate::data::toy::Rng;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Kind as DType, Tensor};

/// The file in a run folder that holds a HI-VAE's [`TableSchema`].
pub const SCHEMA_FILE: &str = "table.json";

/// Everything a trained HI-VAE needs of its training table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableSchema {
    pub types: Vec<ColumnType>,
    /// Class codes of the training table, per column.
    pub coding: Coding,
    /// Normalization of each column (observed training cells).
    pub stats: Vec<Stats>,
    /// max − min of each column's true values (the error measure's scale).
    pub ranges: Vec<f64>,
}

impl TableSchema {
    /// Reads `table.json` from a run folder.
    pub fn read(run_dir: &Path) -> Result<TableSchema> {
        let path = run_dir.join(SCHEMA_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))
    }

    /// Values `[n, D]` with a model's classes 1..=K replaced by the table's own codes (a class
    /// beyond the codes seen in training, an unused top level, takes the highest code).
    pub fn in_table_codes(&self, x: &Tensor) -> Tensor {
        let cols: Vec<Tensor> = self
            .coding
            .codes
            .iter()
            .enumerate()
            .map(|(j, codes)| {
                let v = x.select(1, j as i64);
                if codes.is_empty() {
                    return v;
                }
                let lookup = Tensor::from_slice(codes)
                    .to_kind(v.kind())
                    .to_device(v.device());
                let idx = (v.round() - 1.0)
                    .clamp(0.0, (codes.len() - 1) as f64)
                    .to_kind(DType::Int64);
                lookup.index_select(0, &idx)
            })
            .collect();
        Tensor::stack(&cols, 1)
    }
}

/// A loaded table: `n` rows of `d` columns, cell masks row-major.
pub struct TableData {
    pub n: usize,
    pub d: usize,
    /// Values `[n, d]` (0 where absent), float32 on the CPU.
    pub x: Tensor,
    pub train: Vec<bool>,
    pub val: Vec<bool>,
    pub test: Vec<bool>,
    /// Observed cells: train and validation.
    pub all: Vec<bool>,
    pub schema: TableSchema,
}

/// Reads the table, its types and missing mask, and splits the observed cells.
pub fn load(c: &TableConfig) -> Result<TableData> {
    let types = hetero::read_types(&c.types)?;
    let mut table = hetero::read_table(&c.csv, &types)?;
    let coding = Coding::of(&table, &c.csv)?;
    coding.recode(&mut table, &c.csv)?;
    let (n, d) = (table.rows, table.cols());
    let hidden = match &c.missing {
        Missing::None => vec![false; n * d],
        Missing::Mask(p) => hetero::read_mask(p, n, d)?,
        Missing::Mcar { rate, seed } => hetero::mcar_mask(n, d, *rate, *seed),
    };
    let mut rng = Rng::new(c.seed ^ 0xC0FF_EE00);
    let mut val = vec![false; n * d];
    let mut train = vec![false; n * d];
    let mut test = vec![false; n * d];
    for i in 0..n * d {
        let observed = table.present[i] && !hidden[i];
        test[i] = table.present[i] && hidden[i];
        val[i] = observed && rng.uniform() < c.val_fraction;
        train[i] = observed && !val[i];
    }
    let all: Vec<bool> = (0..n * d).map(|i| train[i] || val[i]).collect();
    // Statistics and ranges per column, from observed training cells / all true values.
    let mut stats = Vec::new();
    let mut ranges = Vec::new();
    for (j, t) in types.iter().enumerate() {
        let f = |v: f64| {
            if matches!(t.kind, Kind::Positive | Kind::Count) {
                v.ln_1p()
            } else {
                v
            }
        };
        let seen: Vec<f64> = (0..n)
            .filter(|&i| train[i * d + j])
            .map(|i| f(table.values[i * d + j]))
            .collect();
        ensure!(
            !seen.is_empty(),
            "{}: column {} has no observed training cell",
            c.csv.display(),
            j + 1
        );
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        let var = seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / seen.len() as f64;
        stats.push(Stats {
            mean,
            std: var.sqrt().max(1e-6),
        });
        let present: Vec<f64> = (0..n)
            .filter(|&i| table.present[i * d + j])
            .map(|i| table.values[i * d + j])
            .collect();
        let (lo, hi) = present
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        ranges.push(hi - lo);
    }
    let x = Tensor::from_slice(&table.values)
        .reshape([n as i64, d as i64])
        .to_kind(DType::Float);
    Ok(TableData {
        n,
        d,
        x,
        train,
        val,
        test,
        all,
        schema: TableSchema {
            types,
            coding,
            stats,
            ranges,
        },
    })
}
