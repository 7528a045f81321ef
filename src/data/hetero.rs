//! Heterogeneous tables in the HI-VAE release's layout (Nazábal et al. 2020): a header-less
//! numeric CSV, a types file (`type,dim,nclass` per column: `real`, `pos`, `count`, `cat`,
//! `ordinal`; any line ending), and missing-cell masks (`row,column` pairs, 1-based).
//!
//! Cells that read `NaN` or are empty are missing. Values are checked against their column's type
//! (a count is a non-negative integer, a positive real is ≥ 0, a class is an integer in
//! 1..=nclass as in the release), and every error names the file, row and column.
use crate::data::toy::Rng;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Real line: Gaussian.
    Real,
    /// Non-negative real: log-normal on ln(1 + x).
    Positive,
    /// Non-negative integer: Poisson.
    Count,
    /// One of `classes` unordered classes: categorical.
    Categorical,
    /// One of `classes` ordered levels: cumulative link.
    Ordinal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnType {
    pub kind: Kind,
    /// Number of classes or levels (1 for numerical columns).
    pub classes: i64,
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

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', '\r']).filter(|l| !l.trim().is_empty())
}

/// Reads a `data_types.csv`.
pub fn read_types(path: &Path) -> Result<Vec<ColumnType>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read types file {}", path.display()))?;
    let mut it = lines(&text);
    let header = it.next().unwrap_or_default();
    ensure!(
        header.trim().starts_with("type,dim"),
        "{}: expected the header `type,dim,nclass`, got {header:?}",
        path.display()
    );
    let mut out = Vec::new();
    for (i, line) in it.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let at = || format!("{} line {}", path.display(), i + 2);
        let kind = match f[0] {
            "real" => Kind::Real,
            "pos" => Kind::Positive,
            "count" => Kind::Count,
            "cat" => Kind::Categorical,
            "ordinal" => Kind::Ordinal,
            other => bail!(
                "{}: unknown type {other:?} (expected real, pos, count, cat or ordinal)",
                at()
            ),
        };
        let classes = match kind {
            Kind::Categorical | Kind::Ordinal => {
                let n = f
                    .get(2)
                    .filter(|s| !s.is_empty())
                    .or(f.get(1))
                    .copied()
                    .unwrap_or("");
                let n: i64 = n
                    .parse()
                    .with_context(|| format!("{}: nclass {n:?} is not an integer", at()))?;
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

/// A table: values row-major (missing cells hold 0) and which cells are present.
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

/// Reads a header-less CSV (a header row is accepted if its first cell is not a number) and checks
/// every present value against its column type.
pub fn read_table(path: &Path, types: &[ColumnType]) -> Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read data file {}", path.display()))?;
    let mut values = Vec::new();
    let mut present = Vec::new();
    let mut rows = 0;
    for (i, line) in lines(&text).enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0
            && cells
                .first()
                .is_some_and(|c| !c.is_empty() && c.parse::<f64>().is_err() && *c != "NaN")
        {
            continue; // a header
        }
        ensure!(
            cells.len() == types.len(),
            "{} row {}: {} cells, but the types file declares {} columns",
            path.display(),
            rows + 1,
            cells.len(),
            types.len()
        );
        for (j, (cell, t)) in cells.iter().zip(types).enumerate() {
            let at = || {
                format!(
                    "{} row {}, column {} ({})",
                    path.display(),
                    rows + 1,
                    j + 1,
                    t.name()
                )
            };
            if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                values.push(0.0);
                present.push(false);
                continue;
            }
            let v: f64 = cell
                .parse()
                .with_context(|| format!("{}: {cell:?} is not a number", at()))?;
            ensure!(v.is_finite(), "{}: {cell:?} is not finite", at());
            match t.kind {
                Kind::Real => {}
                Kind::Positive => ensure!(v >= 0.0, "{}: {v} is negative", at()),
                Kind::Count => ensure!(v >= 0.0 && v.fract() == 0.0, "{}: {v} is not a non-negative integer count", at()),
                Kind::Categorical | Kind::Ordinal => ensure!(
                    v.fract() == 0.0 && v >= 1.0 && v <= t.classes as f64,
                    "{}: {v} is not a class in 1..={} (classes are numbered from 1, as in the HI-VAE release)",
                    at(),
                    t.classes
                ),
            }
            values.push(v);
            present.push(true);
        }
        rows += 1;
    }
    ensure!(rows > 0, "{}: no rows", path.display());
    Ok(Table {
        rows,
        types: types.to_vec(),
        values,
        present,
    })
}

/// Reads a mask file of 1-based `row,column` pairs into a row-major boolean mask (true = missing).
pub fn read_mask(path: &Path, rows: usize, cols: usize) -> Result<Vec<bool>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read mask file {}", path.display()))?;
    let mut mask = vec![false; rows * cols];
    for (i, line) in lines(&text).enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parse = |s: Option<&&str>| s.and_then(|s| s.parse::<usize>().ok());
        let (Some(r), Some(c)) = (parse(f.first()), parse(f.get(1))) else {
            bail!(
                "{} line {}: expected `row,column` (1-based integers), got {line:?}",
                path.display(),
                i + 1
            );
        };
        ensure!(
            (1..=rows).contains(&r) && (1..=cols).contains(&c),
            "{} line {}: cell ({r}, {c}) is outside the {rows} × {cols} table",
            path.display(),
            i + 1
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
