//! Heterogeneous tables in the HI-VAE release's layout (Nazábal et al. 2020): a header-less
//! numeric CSV, a types file (`type,dim,nclass` per column: `real`, `pos`, `count`, `cat`,
//! `ordinal`), and missing-cell masks (`row,column` pairs, 1-based), all read by the one CSV
//! reader ([`crate::data::csv`]: any line ending, BOM, quotes, blank lines).
//!
//! Cells that read `NaN` or are empty are missing. Values are checked against their column's type
//! (a count is a non-negative integer, a positive real is ≥ 0, a class is an integer), and every
//! error names the file, row and column. Classes may be coded by any integers: as the release's
//! loader does, a column's codes are re-indexed by their sorted unique values ([`Coding`]), so the
//! model sees classes 1..=K and imputations are written back in the table's own codes.
use crate::data::csv::{number, read_records, Header, Records};
use crate::data::toy::Rng;
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "real")]
    /// Real line: Gaussian.
    Real,
    /// Non-negative real: log-normal on ln(1 + x).
    #[serde(rename = "pos")]
    Positive,
    /// Non-negative integer: Poisson.
    #[serde(rename = "count")]
    Count,
    /// One of `classes` unordered classes: categorical.
    #[serde(rename = "cat")]
    Categorical,
    /// One of `classes` ordered levels: cumulative link.
    #[serde(rename = "ordinal")]
    Ordinal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    pub kind: Kind,
    /// Number of classes or levels (1 for numerical columns).
    pub classes: i64,
}

impl Kind {
    /// The types file's name of a kind.
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "real" => Kind::Real,
            "pos" => Kind::Positive,
            "count" => Kind::Count,
            "cat" => Kind::Categorical,
            "ordinal" => Kind::Ordinal,
            _ => return None,
        })
    }
}

impl ColumnType {
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Real => "real",
            Kind::Positive => "pos",
            Kind::Count => "count",
            Kind::Categorical => "cat",
            Kind::Ordinal => "ordinal",
        }
    }

    pub fn is_numerical(&self) -> bool {
        matches!(self.kind, Kind::Real | Kind::Positive | Kind::Count)
    }
}

/// Reads a `data_types.csv`.
pub fn read_types(path: &Path) -> Result<Vec<ColumnType>> {
    let records = read_records(path, Header::Detect)?;
    ensure!(
        records
            .header
            .as_ref()
            .is_some_and(|h| h.first().is_some_and(|c| c == "type")),
        "{}: expected the header `type,dim,nclass`, got {:?}",
        path.display(),
        records.header.map(|h| h.join(",")).unwrap_or_default()
    );
    let mut out = Vec::new();
    for row in &records.rows {
        let f = &row.cells;
        let at = || format!("{} line {}", path.display(), row.number + 1);
        let Some(kind) = Kind::from_name(&f[0]) else {
            bail!(
                "{}: unknown type {:?} (expected real, pos, count, cat or ordinal)",
                at(),
                f[0]
            )
        };
        let classes = match kind {
            Kind::Categorical | Kind::Ordinal => {
                let n = f
                    .get(2)
                    .filter(|s| !s.is_empty())
                    .or(f.get(1))
                    .map(String::as_str)
                    .unwrap_or("");
                let n: i64 = n
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{}: nclass {n:?} is not an integer", at()))?;
                ensure!(
                    n >= 2,
                    "{}: a {} column needs at least 2 classes, got {n}",
                    at(),
                    f[0]
                );
                n
            }
            _ => 1,
        };
        out.push(ColumnType { kind, classes });
    }
    ensure!(!out.is_empty(), "{}: no column types", path.display());
    Ok(out)
}

/// A table: values row-major (missing cells hold 0) and which cells are present. Classes hold the
/// file's own codes until [`Coding::recode`] maps them to 1..=K.
pub struct Table {
    pub rows: usize,
    pub types: Vec<ColumnType>,
    pub values: Vec<f64>,
    pub present: Vec<bool>,
}

impl Table {
    pub fn cols(&self) -> usize {
        self.types.len()
    }
}

/// Reads a header-less CSV (a header row is accepted) and checks every present value against its
/// column type.
pub fn read_table(path: &Path, types: &[ColumnType]) -> Result<Table> {
    table_of(&read_records(path, Header::Detect)?, types, path)
}

/// The table in `records` (read from `path`, named in errors), every present value checked
/// against its column type.
pub fn table_of(records: &Records, types: &[ColumnType], path: &Path) -> Result<Table> {
    let mut values = Vec::new();
    let mut present = Vec::new();
    for row in &records.rows {
        ensure!(
            row.cells.len() == types.len(),
            "{} row {}: {} cells, but the types file declares {} columns",
            path.display(),
            row.number,
            row.cells.len(),
            types.len()
        );
        for (j, (cell, t)) in row.cells.iter().zip(types).enumerate() {
            let at = || {
                format!(
                    "{} row {}, column {} ({})",
                    path.display(),
                    row.number,
                    j + 1,
                    t.name()
                )
            };
            if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                values.push(0.0);
                present.push(false);
                continue;
            }
            let Some(v) = number(cell) else {
                bail!("{}: {cell:?} is not a number", at())
            };
            ensure!(v.is_finite(), "{}: {cell:?} is not finite", at());
            match t.kind {
                Kind::Real => {}
                Kind::Positive => ensure!(v >= 0.0, "{}: {v} is negative", at()),
                Kind::Count => ensure!(
                    v >= 0.0 && v.fract() == 0.0,
                    "{}: {v} is not a non-negative integer count",
                    at()
                ),
                Kind::Categorical | Kind::Ordinal => ensure!(
                    v.fract() == 0.0 && v.abs() < 1e15,
                    "{}: {v} is not an integer class code",
                    at()
                ),
            }
            values.push(v);
            present.push(true);
        }
    }
    ensure!(!records.rows.is_empty(), "{}: no rows", path.display());
    Ok(Table {
        rows: records.rows.len(),
        types: types.to_vec(),
        values,
        present,
    })
}

/// The class codes of each categorical or ordinal column, sorted (empty for numerical columns):
/// code `codes[k]` is class k + 1 to the model. Built from a training table, stored in the run
/// folder, and used to read and write any later table in the same codes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Coding {
    pub codes: Vec<Vec<i64>>,
}

impl Coding {
    /// The sorted distinct codes of each class column's present cells (the release's
    /// `np.unique`); more distinct codes than the types file's nclass is an error. A level absent
    /// from the data leaves the top classes unused, as in the release.
    pub fn of(table: &Table, path: &Path) -> Result<Coding> {
        let d = table.cols();
        let mut codes = Vec::with_capacity(d);
        for (j, t) in table.types.iter().enumerate() {
            if t.is_numerical() {
                codes.push(vec![]);
                continue;
            }
            let mut c: Vec<i64> = (0..table.rows)
                .filter(|&i| table.present[i * d + j])
                .map(|i| table.values[i * d + j] as i64)
                .collect();
            c.sort_unstable();
            c.dedup();
            ensure!(
                c.len() as i64 <= t.classes,
                "{}: column {} ({}) has {} distinct codes {:?}, but the types file declares {} classes",
                path.display(),
                j + 1,
                t.name(),
                c.len(),
                c,
                t.classes
            );
            codes.push(c);
        }
        Ok(Coding { codes })
    }

    /// Maps the table's class codes to 1..=K in place; a code the coding lacks is an error naming
    /// its cell.
    pub fn recode(&self, table: &mut Table, path: &Path) -> Result<()> {
        let d = table.cols();
        ensure!(
            self.codes.len() == d,
            "{}: {d} columns, the model has {}",
            path.display(),
            self.codes.len()
        );
        for i in 0..table.rows {
            for (j, codes) in self.codes.iter().enumerate() {
                let k = i * d + j;
                if codes.is_empty() || !table.present[k] {
                    continue;
                }
                let v = table.values[k] as i64;
                let Ok(rank) = codes.binary_search(&v) else {
                    bail!(
                        "{} row {}, column {}: class code {v} was not in the training table (its codes: {codes:?})",
                        path.display(),
                        i + 1,
                        j + 1
                    )
                };
                table.values[k] = (rank + 1) as f64;
            }
        }
        Ok(())
    }
}

/// Reads a mask file of 1-based `row,column` pairs into a row-major boolean mask (true = missing).
pub fn read_mask(path: &Path, rows: usize, cols: usize) -> Result<Vec<bool>> {
    let records = read_records(path, Header::Detect)?;
    let mut mask = vec![false; rows * cols];
    for row in &records.rows {
        let f = &row.cells;
        let parse = |s: Option<&String>| s.and_then(|s| s.parse::<usize>().ok());
        let (Some(r), Some(c)) = (parse(f.first()), parse(f.get(1))) else {
            bail!(
                "{} line {}: expected `row,column` (1-based integers), got {:?}",
                path.display(),
                row.number,
                f.join(",")
            );
        };
        ensure!(
            (1..=rows).contains(&r) && (1..=cols).contains(&c),
            "{} line {}: cell ({r}, {c}) is outside the {rows} × {cols} table",
            path.display(),
            row.number
        );
        mask[(r - 1) * cols + c - 1] = true;
    }
    Ok(mask)
}

/// Missing completely at random: each cell independently with probability `rate`, seeded.
pub fn mcar_mask(rows: usize, cols: usize, rate: f64, seed: u64) -> Vec<bool> {
    let mut rng = Rng::new(seed);
    (0..rows * cols).map(|_| rng.uniform() < rate).collect()
}
