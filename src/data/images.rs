//! Image data for the VAE family: MNIST-format splits on the device, seeded shuffling and
//! batching, and binarization.
//!
//! - `dynamic` binarization (default, for Bernoulli decoders): every time a training image is
//!   drawn its pixels are resampled as Bernoulli(grey level) (Salakhutdinov & Murray 2008), from
//!   the step's seeded generator, so a run is reproducible and a resumed run draws the same bits.
//!   Validation and test images are binarized once, with a fixed seed, so every model of a
//!   comparison is evaluated on the same bits.
//! - `static`: all splits binarized once with the data seed.
//! - `none`: grey levels in [0, 1] (Gaussian decoders, autoencoders).
//!
//! Batches: epoch e visits the training images in the order of a permutation drawn from
//! (data seed, e); batch i of the epoch is its i-th slice (the last incomplete slice is dropped).
use super::batches::EpochBatches;
use super::mnist;
use super::toy::Rng;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{Device, Tensor};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Binarization {
    #[default]
    Dynamic,
    Static,
    None,
}

/// Which files `dir` holds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `train-`, `val-`, `test-` IDX files (what `make mnist` writes).
    #[default]
    Split,
    /// The original MNIST files `train-…` and `t10k-…`; validation is the last `n_val` training
    /// images (the VAE papers' 50,000 / 10,000 / 10,000 protocol with the default).
    Original,
    /// One IDX image file (`images`) split by a permutation file (`permutation`, one index a
    /// line): the first n − n_val − n_test images in its order train, the next `n_val` validate,
    /// the last `n_test` test (Frey Faces' three splits of the Sylvester-flow paper).
    Permuted,
}

fn default_n_val() -> i64 {
    10_000
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageDataConfig {
    /// Folder of IDX files; default: where `make mnist` (layout `split`) or `make mnist-full`
    /// (layout `original`) puts them.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub layout: Layout,
    /// Validation images carved from the end of the training file (`original` layout only).
    #[serde(default = "default_n_val")]
    pub n_val: i64,
    /// The image file of the `permuted` layout, in `dir`.
    #[serde(default)]
    pub images: Option<String>,
    /// The permutation file of the `permuted` layout, in `dir`.
    #[serde(default)]
    pub permutation: Option<String>,
    /// Test images at the end of the permutation (`permuted` layout).
    #[serde(default)]
    pub n_test: Option<i64>,
    #[serde(default)]
    pub binarize: Binarization,
    /// Use only the first N training images (quick runs, tests).
    #[serde(default)]
    pub max_train: Option<i64>,
    /// Use only the first N validation and test images.
    #[serde(default)]
    pub max_eval: Option<i64>,
    /// Seeds shuffling and the fixed binarizations.
    #[serde(default)]
    pub seed: u64,
}

impl Default for ImageDataConfig {
    fn default() -> Self {
        ImageDataConfig {
            dir: None,
            layout: Layout::Split,
            n_val: default_n_val(),
            images: None,
            permutation: None,
            n_test: None,
            binarize: Binarization::Dynamic,
            max_train: None,
            max_eval: None,
            seed: 0,
        }
    }
}

pub struct ImageData {
    pub config: ImageDataConfig,
    /// Grey levels (dynamic) or fixed bits, `[n, rows·cols]`, on the model's device.
    pub train: Tensor,
    pub val: Tensor,
    pub test: Tensor,
    pub val_labels: Tensor,
    pub test_labels: Tensor,
    pub rows: i64,
    pub cols: i64,
    batches: EpochBatches,
}

/// Bernoulli(p) bits of `p`, drawn from a splitmix stream (independent of libtorch's generator).
fn binarize_fixed(p: &Tensor, seed: u64) -> Result<Tensor> {
    let grey = Vec::<f32>::try_from(p.flatten(0, -1))?;
    let mut rng = Rng::new(seed);
    let bits: Vec<f32> = grey
        .iter()
        .map(|&g| f32::from((rng.uniform() as f32) < g))
        .collect();
    Ok(Tensor::from_slice(&bits).reshape(p.size()))
}

fn take(t: Tensor, max: Option<i64>) -> Tensor {
    match max {
        Some(m) if m < t.size()[0] => t.narrow(0, 0, m),
        _ => t,
    }
}

impl ImageDataConfig {
    /// Checks the values a config gives (`field`: where it stands, e.g. `model.vae.data`).
    pub fn validate(&self, field: &str) -> Result<()> {
        for (m, name) in [(self.max_train, "max_train"), (self.max_eval, "max_eval")] {
            if let Some(m) = m {
                ensure!(m > 0, "field `{field}.{name}`: must be positive, got {m}");
            }
        }
        ensure!(
            self.n_val > 0,
            "field `{field}.n_val`: must be positive, got {}",
            self.n_val
        );
        let permuted = self.layout == Layout::Permuted;
        for (set, name) in [
            (self.images.is_some(), "images"),
            (self.permutation.is_some(), "permutation"),
            (self.n_test.is_some(), "n_test"),
        ] {
            ensure!(
                set == permuted,
                "field `{field}.{name}`: {}",
                if permuted {
                    "the `permuted` layout needs it"
                } else {
                    "only the `permuted` layout reads it"
                }
            );
        }
        ensure!(
            !permuted || self.dir.is_some(),
            "field `{field}.dir`: the `permuted` layout needs the folder of its files"
        );
        if let Some(n) = self.n_test {
            ensure!(n > 0, "field `{field}.n_test`: must be positive, got {n}");
        }
        Ok(())
    }
}

impl ImageData {
    pub fn load(config: &ImageDataConfig, device: Device) -> Result<Self> {
        let full = config.layout == Layout::Original;
        let dir = config
            .dir
            .clone()
            .unwrap_or_else(|| mnist::default_dir(full));
        let (train, val, test) = read_splits(config, &dir)?;
        for (s, name) in [(&val, "validation"), (&test, "test")] {
            ensure!(
                (s.rows, s.cols) == (train.rows, train.cols),
                "{}: {name} images are {}×{}, training images {}×{}",
                dir.display(),
                s.rows,
                s.cols,
                train.rows,
                train.cols
            );
        }
        let train_images = take(train.images, config.max_train);
        let (val_images, val_labels) = (
            take(val.images, config.max_eval),
            take(val.labels, config.max_eval),
        );
        let (test_images, test_labels) = (
            take(test.images, config.max_eval),
            take(test.labels, config.max_eval),
        );
        let seed = config.seed;
        let (train_images, val_images, test_images) = match config.binarize {
            Binarization::None => (train_images, val_images, test_images),
            Binarization::Dynamic => (
                train_images,
                binarize_fixed(&val_images, seed ^ 0x5EED_0001)?,
                binarize_fixed(&test_images, seed ^ 0x5EED_0002)?,
            ),
            Binarization::Static => (
                binarize_fixed(&train_images, seed ^ 0x5EED_0000)?,
                binarize_fixed(&val_images, seed ^ 0x5EED_0001)?,
                binarize_fixed(&test_images, seed ^ 0x5EED_0002)?,
            ),
        };
        let batches = EpochBatches::new(train_images.size()[0], config.seed);
        Ok(ImageData {
            config: config.clone(),
            train: train_images.to_device(device),
            val: val_images.to_device(device),
            test: test_images.to_device(device),
            val_labels,
            test_labels,
            rows: train.rows,
            cols: train.cols,
            batches,
        })
    }

    pub fn pixels(&self) -> i64 {
        self.rows * self.cols
    }

    /// Full batches per epoch (at least 1: a batch larger than the data takes all of it).
    pub fn steps_per_epoch(&self, batch_size: i64) -> i64 {
        self.batches.steps_per_epoch(batch_size)
    }

    /// The training batch of global step `step`: see the module docs.
    pub fn train_batch(&self, step: i64, batch_size: i64) -> Tensor {
        let idx = self.batches.indices(step, batch_size, self.train.device());
        let x = self.train.index_select(0, &idx);
        match self.config.binarize {
            Binarization::Dynamic => x.bernoulli(),
            _ => x,
        }
    }

    /// True when pixels are bits (Bernoulli decoders need this).
    pub fn is_binary(&self) -> bool {
        self.config.binarize != Binarization::None
    }
}

/// The train, validation and test splits in `dir` as `config.layout` arranges them.
fn read_splits(
    config: &ImageDataConfig,
    dir: &std::path::Path,
) -> Result<(mnist::Split, mnist::Split, mnist::Split)> {
    let hint = || {
        if config.dir.is_none() && config.layout == Layout::Original {
            " (run `make mnist-full` to fetch the full MNIST)".to_string()
        } else if config.dir.is_none() {
            " (run `make mnist` to fetch the default MNIST split)".to_string()
        } else {
            String::new()
        }
    };
    Ok(match config.layout {
        Layout::Split => (
            mnist::load(dir, "train").with_context(hint)?,
            mnist::load(dir, "val").with_context(hint)?,
            mnist::load(dir, "test").with_context(hint)?,
        ),
        Layout::Original => {
            let all = mnist::load(dir, "train").with_context(hint)?;
            let n = all.images.size()[0];
            ensure!(
                config.n_val > 0 && config.n_val < n,
                "n_val = {} must be between 1 and the {n} training images",
                config.n_val
            );
            let cut = |t: &Tensor, a: i64, len: i64| t.narrow(0, a, len);
            let split = |a: i64, len: i64| mnist::Split {
                images: cut(&all.images, a, len),
                labels: cut(&all.labels, a, len),
                rows: all.rows,
                cols: all.cols,
            };
            let (tr, va) = (
                split(0, n - config.n_val),
                split(n - config.n_val, config.n_val),
            );
            (tr, va, mnist::load(dir, "t10k").with_context(hint)?)
        }
        Layout::Permuted => {
            let (Some(images), Some(perm), Some(n_test)) =
                (&config.images, &config.permutation, config.n_test)
            else {
                bail!("the `permuted` layout needs `images`, `permutation` and `n_test`")
            };
            mnist::load_permuted(&dir.join(images), &dir.join(perm), config.n_val, n_test)?
        }
    })
}
