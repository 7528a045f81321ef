//! The data of a density model: toy 2-D sets, numeric CSV tables and MNIST-format images, split
//! into train, validation and test, with the transform ([`Preprocess`]) that brings them to the
//! flow. Tables are standardized with the training split's statistics, saved under `data.*` so a
//! run folder needs no training data to be used.
use super::preprocess::Preprocess;
use crate::data::images::{ImageData, ImageDataConfig};
use crate::data::toy::ToyData;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// Where the data comes from: `{"toy": {"name": "moons", ...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A generated 2-D set with disjoint train, validation and test draws.
    Toy {
        name: ToyData,
        #[serde(default = "default_train")]
        n_train: i64,
        #[serde(default = "default_eval")]
        n_val: i64,
        #[serde(default = "default_eval")]
        n_test: i64,
        #[serde(default)]
        seed: u64,
    },
    /// A numeric CSV with a header; rows are shuffled with `seed` and split into train,
    /// validation and test by the given fractions.
    Csv {
        path: std::path::PathBuf,
        #[serde(default = "default_fraction")]
        val_fraction: f64,
        #[serde(default = "default_fraction")]
        test_fraction: f64,
        #[serde(default)]
        seed: u64,
    },
    /// MNIST-format images (grey levels), dequantized and logit-transformed
    /// ([`Preprocess::Dequantize`]); NLL in nats per image and bits/dim.
    Mnist(ImageSource),
}

impl DataConfig {
    /// Checks the values a config gives (`field`: where it stands, `model.density.data`).
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            DataConfig::Toy {
                n_train,
                n_val,
                n_test,
                ..
            } => {
                for (n, name) in [(n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test")] {
                    ensure!(
                        *n > 0,
                        "field `{field}.toy.{name}`: must be positive, got {n}"
                    );
                }
            }
            DataConfig::Csv {
                val_fraction,
                test_fraction,
                ..
            } => {
                for (f, name) in [
                    (val_fraction, "val_fraction"),
                    (test_fraction, "test_fraction"),
                ] {
                    ensure!(
                        *f > 0.0 && *f < 0.5,
                        "field `{field}.csv.{name}`: must be in (0, 0.5), got {f}"
                    );
                }
            }
            DataConfig::Mnist(src) => {
                ensure!(
                    src.alpha > 0.0 && src.alpha < 0.5,
                    "field `{field}.mnist.alpha`: must be in (0, 0.5), got {}",
                    src.alpha
                );
                ensure!(
                    src.images.binarize == crate::data::images::Binarization::None,
                    "field `{field}.mnist.images.binarize`: must be `none` (density models dequantize grey levels)"
                );
                src.images.validate(&format!("{field}.mnist.images"))?;
            }
        }
        Ok(())
    }
}

fn default_fraction() -> f64 {
    0.1
}

fn default_train() -> i64 {
    20_000
}
fn default_eval() -> i64 {
    5_000
}

fn default_alpha() -> f64 {
    0.05
}

/// `{"mnist": {"images": {...ImageDataConfig...}, "alpha": 0.05}}` in a density config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    #[serde(default)]
    pub images: ImageDataConfig,
    /// α of the logit transform.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

/// Train, validation and test grey images and their transform.
fn load_images(src: &ImageSource, device: Device) -> Result<(Tensor, Tensor, Tensor, Preprocess)> {
    let d = ImageData::load(&src.images, device)?;
    let shape = [1, d.rows, d.cols];
    Ok((
        d.train,
        d.val,
        d.test,
        Preprocess::Dequantize {
            alpha: src.alpha,
            shape,
        },
    ))
}

/// Train, validation and test data on `device` (in the data's own units; images as grey levels)
/// and their transform, whose statistics (tables) live under `root / "data"`.
pub fn load(
    data: &DataConfig,
    root: &nn::Path,
    device: Device,
) -> Result<(Tensor, Tensor, Tensor, Preprocess)> {
    if let DataConfig::Mnist(src) = data {
        return load_images(src, device);
    }
    let (train, val, test) = load_rows(data)?;
    let pre = match data {
        DataConfig::Csv { .. } => {
            let dim = train.size()[1];
            let d = root / "data";
            let (mut mean, mut std) = (
                d.zeros_no_train("mean", &[dim]),
                d.ones_no_train("std", &[dim]),
            );
            tch::no_grad(|| {
                mean.copy_(&train.mean_dim(0, false, Kind::Float));
                std.copy_(&train.std_dim(0, true, false).clamp_min(1e-6));
            });
            Preprocess::Standardize { mean, std }
        }
        _ => Preprocess::Identity,
    };
    let on = |t: Tensor| t.to_device(device);
    Ok((on(train), on(val), on(test), pre))
}

/// Train, validation and test rows, float32.
fn load_rows(data: &DataConfig) -> Result<(Tensor, Tensor, Tensor)> {
    match data {
        DataConfig::Mnist(_) => unreachable!("images are loaded by load_images"),
        DataConfig::Toy {
            name,
            n_train,
            n_val,
            n_test,
            seed,
        } => {
            // Three independent draws: the splits never share a point.
            let split =
                |n: i64, k: u64| name.sample(n as usize, seed.wrapping_mul(3).wrapping_add(k));
            Ok((split(*n_train, 0), split(*n_val, 1), split(*n_test, 2)))
        }
        DataConfig::Csv {
            path,
            val_fraction,
            test_fraction,
            seed,
        } => {
            let (header, table) = crate::data::csv::read_table(path)?;
            let n = table.size()[0];
            let n_val = ((n as f64) * val_fraction).round() as i64;
            let n_test = ((n as f64) * test_fraction).round() as i64;
            ensure!(
                n - n_val - n_test >= 2 && n_val >= 1 && n_test >= 1,
                "{}: {n} rows are too few to split",
                path.display()
            );
            let mut order: Vec<i64> = (0..n).collect();
            crate::data::toy::Rng::new(*seed).shuffle(&mut order);
            let rows = table
                .to_kind(Kind::Float)
                .index_select(0, &Tensor::from_slice(&order));
            let train = rows.narrow(0, n_val + n_test, n - n_val - n_test);
            // A constant column has no density (and cannot be standardized): name it.
            let std = Vec::<f64>::try_from(train.to_kind(Kind::Double).std_dim(0, true, false))?;
            let constant: Vec<&str> = std
                .iter()
                .zip(&header)
                .filter(|(s, _)| **s <= 1e-12)
                .map(|(_, h)| h.as_str())
                .collect();
            ensure!(
                constant.is_empty(),
                "{}: column(s) {} are constant in the training split; drop them (a constant has no density)",
                path.display(),
                constant.join(", ")
            );
            Ok((
                train,
                rows.narrow(0, 0, n_val),
                rows.narrow(0, n_val, n_test),
            ))
        }
    }
}
