//! Numeric CSV: one sample per row, comma-separated, an optional header line. Errors name the
//! file, the row (1-based, as an editor shows it) and the column.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::Tensor;

/// Reads a numeric table of `expected_cols` columns as a `[rows, cols]` float64 tensor. A first
/// line that does not parse as numbers is taken as a header. Empty cells, non-numbers and
/// NaN/Inf are errors.
pub fn read_matrix(path: &Path, expected_cols: usize) -> Result<Tensor> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Vec<Option<f64>> = cells.iter().map(|c| c.parse::<f64>().ok()).collect();
        if i == 0 && parsed.iter().any(|p| p.is_none()) && cells.iter().all(|c| !c.is_empty()) {
            if cells.len() != expected_cols {
                bail!(
                    "{}: header has {} columns, expected {expected_cols}",
                    path.display(),
                    cells.len()
                );
            }
            continue; // header
        }
        if cells.len() != expected_cols {
            bail!(
                "{} row {}: {} columns, expected {expected_cols}",
                path.display(),
                i + 1,
                cells.len()
            );
        }
        for (j, (cell, p)) in cells.iter().zip(&parsed).enumerate() {
            match p {
                Some(v) if v.is_finite() => values.push(*v),
                Some(v) => bail!(
                    "{} row {} column {}: {v} is not a finite number",
                    path.display(),
                    i + 1,
                    j + 1
                ),
                None if cell.is_empty() => bail!(
                    "{} row {} column {}: empty cell",
                    path.display(),
                    i + 1,
                    j + 1
                ),
                None => bail!(
                    "{} row {} column {}: `{cell}` is not a number",
                    path.display(),
                    i + 1,
                    j + 1
                ),
            }
        }
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no data rows", path.display());
    }
    Ok(Tensor::from_slice(&values).reshape([rows, expected_cols as i64]))
}

/// Writes a `[rows, cols]` (or `[rows]`) tensor with a header, atomically.
pub fn write_matrix(path: &Path, header: &[String], t: &Tensor) -> Result<()> {
    let t = if t.dim() == 1 {
        t.unsqueeze(1)
    } else {
        t.shallow_clone()
    };
    let size = t.size();
    anyhow::ensure!(
        size.len() == 2 && size[1] as usize == header.len(),
        "internal: {} columns for a header of {}",
        size[1],
        header.len()
    );
    let flat: Vec<f64> = Vec::<f64>::try_from(
        t.to_device(tch::Device::Cpu)
            .to_kind(tch::Kind::Double)
            .flatten(0, -1),
    )?;
    let mut out = header.join(",");
    out.push('\n');
    for row in flat.chunks(header.len()) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    crate::experiment::rundir::write_atomic(path, out.as_bytes())
}
