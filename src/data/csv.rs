//! CSV in and out: the one reader behind every table flowlab reads (numeric tables, the HI-VAE
//! release's data, types and mask files, `impute`'s input). The `csv` crate parses, so LF, CRLF
//! and CR-only line endings, a UTF-8 byte-order mark, quoted cells and blank lines read the same
//! everywhere. Errors name the file, the row (1-based, not counting a header) and the column.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::Tensor;

/// One record of a file: its 1-based data row (a header is not counted), the line it starts on
/// (as an editor numbers them), and its cells, trimmed.
pub struct Row {
    pub number: usize,
    pub line: u64,
    pub cells: Vec<String>,
}

impl Row {
    /// `row R (line L)`, or `row R` where they are the same.
    pub fn at(&self) -> String {
        if self.line == self.number as u64 {
            format!("row {}", self.number)
        } else {
            format!("row {} (line {})", self.number, self.line)
        }
    }
}

/// A file's records: the header, if it has one, and the data rows.
pub struct Records {
    pub header: Option<Vec<String>>,
    pub rows: Vec<Row>,
}

/// Whether the first record is a header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A header when every cell of the first record is filled and one is not a number.
    Detect,
    /// The first record must be such a header.
    Required,
}

/// A cell as a number (`NaN` and `inf` included), if it is one.
pub fn number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok()
}

/// Byte offsets where lines start; `\n`, `\r\n` and a lone `\r` each end a line (the csv crate
/// counts only `\n`, so a CR-only file would be all "line 1").
fn line_starts(bytes: &[u8]) -> Vec<u64> {
    let mut starts = vec![0];
    for (i, &b) in bytes.iter().enumerate() {
        let ends = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
        if ends {
            starts.push(i as u64 + 1);
        }
    }
    starts
}

/// The 1-based line of the record the reader reports at byte `offset` (it may report the line
/// break before the record: skip line breaks first).
fn line_of(bytes: &[u8], starts: &[u64], offset: u64) -> u64 {
    let mut at = offset as usize;
    while matches!(bytes.get(at), Some(b'\r' | b'\n')) {
        at += 1;
    }
    starts.partition_point(|&s| s <= at as u64) as u64
}

/// Reads every record of `path`. Blank lines are skipped; rows may differ in length (callers say
/// what they expected).
pub fn read_records(path: &Path, header: Header) -> Result<Records> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let starts = line_starts(bytes);
    let mut out = Records {
        header: None,
        rows: Vec::new(),
    };
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: not valid CSV", path.display()))?;
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        // A blank line (one empty field); a row of empty cells (`,,,`) is kept.
        if cells.len() == 1 && cells[0].is_empty() {
            continue;
        }
        if out.header.is_none() && out.rows.is_empty() {
            let is_header =
                cells.iter().all(|c| !c.is_empty()) && cells.iter().any(|c| number(c).is_none());
            if header == Header::Required && !is_header {
                bail!(
                    "{}: the first line must be a header naming the columns",
                    path.display()
                );
            }
            if is_header {
                out.header = Some(cells);
                continue;
            }
        }
        out.rows.push(Row {
            number: out.rows.len() + 1,
            line: record
                .position()
                .map_or(0, |p| line_of(bytes, &starts, p.byte())),
            cells,
        });
    }
    Ok(out)
}

/// Writes a header (if any) and rows, LF line endings, quoting cells that need it, atomically.
pub fn write_records(path: &Path, header: Option<&[String]>, rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for r in header
        .into_iter()
        .map(|h| h.to_vec())
        .chain(rows.iter().cloned())
    {
        w.write_record(&r)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::experiment::rundir::write_atomic(path, &bytes)
}

/// Reads a numeric table of `expected_cols` columns as a `[rows, cols]` float64 tensor. A first
/// line that does not parse as numbers is taken as a header. Empty cells, non-numbers and
/// NaN/Inf are errors.
pub fn read_matrix(path: &Path, expected_cols: usize) -> Result<Tensor> {
    Ok(parse(path, Some(expected_cols), Header::Detect)?.1)
}

/// Reads a numeric table whose first line is a header naming the columns.
pub fn read_table(path: &Path) -> Result<(Vec<String>, Tensor)> {
    let (header, t) = parse(path, None, Header::Required)?;
    Ok((header.unwrap_or_default(), t))
}

fn parse(
    path: &Path,
    expected_cols: Option<usize>,
    header: Header,
) -> Result<(Option<Vec<String>>, Tensor)> {
    let records = read_records(path, header)?;
    let mut cols = expected_cols;
    if let Some(h) = &records.header {
        let n = *cols.get_or_insert(h.len());
        if h.len() != n {
            bail!(
                "{}: header has {} columns, expected {n}",
                path.display(),
                h.len()
            );
        }
    }
    let mut values = Vec::new();
    for row in &records.rows {
        let n = *cols.get_or_insert(row.cells.len());
        if row.cells.len() != n {
            bail!(
                "{} {}: {} columns, expected {n}",
                path.display(),
                row.at(),
                row.cells.len()
            );
        }
        for (j, cell) in row.cells.iter().enumerate() {
            let at = || format!("{} {} column {}", path.display(), row.at(), j + 1);
            match number(cell) {
                Some(v) if v.is_finite() => values.push(v),
                Some(v) => bail!("{}: {v} is not a finite number", at()),
                None if cell.is_empty() => bail!("{}: empty cell", at()),
                None => bail!("{}: `{cell}` is not a number", at()),
            }
        }
    }
    if records.rows.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    let rows = records.rows.len() as i64;
    Ok((
        records.header,
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
    let rows: Vec<Vec<String>> = flat
        .chunks(header.len())
        .map(|row| row.iter().map(|v| format!("{v}")).collect())
        .collect();
    write_records(path, Some(header), &rows)
}
