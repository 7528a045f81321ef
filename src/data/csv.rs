//! Numeric CSV: one sample per row, comma-separated, an optional header line. Errors name the
//! file, the row (1-based, as an editor shows it) and the column.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::Tensor;

/// Reads a numeric table of `expected_cols` columns as a `[rows, cols]` float64 tensor. A first
/// line that does not parse as numbers is taken as a header. Empty cells, non-numbers and
/// NaN/Inf are errors.
pub fn read_matrix(path: &Path, expected_cols: usize) -> Result<Tensor> {
    Ok(parse(path, Some(expected_cols), false)?.1)
}

/// Reads a numeric table whose first line is a header naming the columns.
pub fn read_table(path: &Path) -> Result<(Vec<String>, Tensor)> {
    let (header, t) = parse(path, None, true)?;
    Ok((header.unwrap_or_default(), t))
}

fn parse(
    path: &Path,
    expected_cols: Option<usize>,
    require_header: bool,
) -> Result<(Option<Vec<String>>, Tensor)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut values = Vec::new();
    let mut rows = 0;
    let mut header = None;
    let mut cols = expected_cols;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Vec<Option<f64>> = cells.iter().map(|c| c.parse::<f64>().ok()).collect();
        let looks_like_header =
            parsed.iter().any(|p| p.is_none()) && cells.iter().all(|c| !c.is_empty());
        if header.is_none() && rows == 0 && (looks_like_header || require_header) {
            if require_header && !looks_like_header {
                bail!(
                    "{}: the first line must be a header naming the columns",
                    path.display()
                );
            }
            let n = *cols.get_or_insert(cells.len());
            if cells.len() != n {
                bail!(
                    "{}: header has {} columns, expected {n}",
                    path.display(),
                    cells.len()
                );
            }
            header = Some(cells.iter().map(|c| c.to_string()).collect());
            continue;
        }
        let n = *cols.get_or_insert(cells.len());
        if cells.len() != n {
            bail!(
                "{} row {}: {} columns, expected {n}",
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
    Ok((
        header,
        Tensor::from_slice(&values).reshape([rows, cols.unwrap_or(0) as i64]),
    ))
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
