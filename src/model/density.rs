//! Density estimation by maximum likelihood (forward KL): a flow maps a base q0 to data, and the
//! loss is the negative log-likelihood −E_data[ln q0(f⁻¹(x)) + ln|det ∂f⁻¹/∂x|] (change of variables; Dinh et al. 2016, eq. 3),
//! reported in nats. Data: the toy 2-D sets, or any numeric CSV table with a header.
//!
//! Tables are standardized with the training split's mean and standard deviation (MAF's UCI
//! protocol); NLLs in metrics are in those standardized units, as the papers report them. The
//! statistics are saved with the weights (`data.mean`, `data.std`), and `log_prob`/`sample` work
//! in the data's own units: ln p(x) = ln p(z) − Σ ln σ for z = (x − μ)/σ.
use super::base::{Base, BaseConfig};
use super::density_image::Dequantizer;
use super::{Losses, Model, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::data::toy::ToyData;
use crate::distribution::{Distribution, TransformedDistribution};
use crate::flow::{Flow, LayerConfig};
use crate::plot;
use anyhow::{Context, Result};
use image::RgbImage;
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
    /// ([`super::density_image`]); NLL in nats per image and bits/dim.
    Mnist(super::density_image::ImageSource),
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensityConfig {
    pub data: DataConfig,
    #[serde(default)]
    pub base: BaseConfig,
    pub flow: Vec<LayerConfig>,
}

pub struct Density {
    pub config: DensityConfig,
    vs: nn::VarStore,
    flow: Flow,
    base: Base,
    train: Tensor,
    val: Tensor,
    test: Tensor,
    dim: i64,
    /// Per-column mean and standard deviation of the training split (tables only).
    standardize: Option<(Tensor, Tensor)>,
    /// Images: dequantization and logit transform.
    dequant: Option<Dequantizer>,
}

/// Train, validation and test rows, float32.
fn load_splits(data: &DataConfig) -> Result<(Tensor, Tensor, Tensor)> {
    match data {
        DataConfig::Mnist(_) => unreachable!("images are loaded by density_image::load"),
        DataConfig::Toy {
            name,
            n_train,
            n_val,
            n_test,
            seed,
        } => {
            for (n, field) in [(n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test")] {
                anyhow::ensure!(
                    *n > 0,
                    "model.density.data.toy.{field} must be positive, got {n}"
                );
            }
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
            let ok = |f: f64| (0.0..0.5).contains(&f) && f > 0.0;
            anyhow::ensure!(
                ok(*val_fraction) && ok(*test_fraction),
                "model.density.data.csv: val_fraction and test_fraction must be in (0, 0.5)"
            );
            let (header, table) = crate::data::csv::read_table(path)?;
            let n = table.size()[0];
            let n_val = ((n as f64) * val_fraction).round() as i64;
            let n_test = ((n as f64) * test_fraction).round() as i64;
            anyhow::ensure!(
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
            anyhow::ensure!(
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

impl Density {
    pub fn new(config: DensityConfig, device: Device) -> Result<Self> {
        let (train, val, test, dequant) = match &config.data {
            DataConfig::Mnist(src) => {
                let (a, b, c, d) = super::density_image::load(src, device)?;
                (a, b, c, Some(d))
            }
            other => {
                let (a, b, c) = load_splits(other)?;
                (a, b, c, None)
            }
        };
        let dim = train.size()[1];
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let standardize = match config.data {
            DataConfig::Toy { .. } | DataConfig::Mnist(_) => None,
            DataConfig::Csv { .. } => {
                let mean = train.mean_dim(0, false, Kind::Float);
                let std = train.std_dim(0, true, false).clamp_min(1e-6);
                let data = &root / "data";
                let (mut m, mut s) = (
                    data.zeros_no_train("mean", &[dim]),
                    data.ones_no_train("std", &[dim]),
                );
                tch::no_grad(|| {
                    m.copy_(&mean);
                    s.copy_(&std);
                });
                Some((m, s))
            }
        };
        let (train, val, test) = match &standardize {
            Some((m, s)) => {
                let z = |t: &Tensor| ((t.to_device(device) - m) / s).detach();
                (z(&train), z(&val), z(&test))
            }
            None => (
                train.to_device(device),
                val.to_device(device),
                test.to_device(device),
            ),
        };
        let flow = Flow::build(&config.flow, &(&root / "flow"), dim, None)
            .context("model.density.flow")?;
        let base = Base::build(&config.base, &root, dim);
        Ok(Density {
            config,
            vs,
            flow,
            base,
            train,
            val,
            test,
            dim,
            standardize,
            dequant,
        })
    }

    fn distribution(&self) -> TransformedDistribution {
        TransformedDistribution::new(
            self.base.distribution(Kind::Float, self.vs.device()),
            Box::new(self.flow.bijector()),
        )
    }

    /// Mean negative log-likelihood (nats) over `x`, in batches, without gradients. Images are
    /// dequantized with one fixed draw of noise, so evaluations are comparable across steps.
    pub fn nll(&self, x: &Tensor) -> Result<f64> {
        let dist = self.distribution();
        let mut total = 0.0;
        if self.dequant.is_some() {
            tch::manual_seed(0x5EED);
        }
        // 128 images per chunk keep a 32-channel activation of a 28×28 image flow near 13 MB,
        // under glibc's mmap threshold: with 500 every chunk mapped and page-faulted fresh
        // memory (a 1-step MNIST RealNVP run took 3.8 s, now 2.7 s).
        for chunk in x.split(if self.dequant.is_some() { 128 } else { 8192 }, 0) {
            let lp = tch::no_grad(|| self.log_prob_model_space(&dist, &chunk, None))?;
            total -= lp.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        }
        Ok(total / x.size()[0] as f64)
    }

    /// ln p per row of data `x` (standardized units for tables; ln p(ỹ) of dequantized images,
    /// with `noise` or a fresh draw).
    fn log_prob_model_space(
        &self,
        dist: &TransformedDistribution,
        x: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        match &self.dequant {
            Some(d) => {
                let noise = noise
                    .map(|n| n.shallow_clone())
                    .unwrap_or_else(|| x.rand_like());
                let (z, lj) = d.to_flow(x, &noise);
                Ok(dist.log_prob(&z)? + lj)
            }
            None => Ok(dist.log_prob(x)?),
        }
    }

    fn batch(&self, n: i64) -> Tensor {
        let idx = Tensor::randint(self.train.size()[0], [n], (Kind::Int64, self.vs.device()));
        self.train.index_select(0, &idx)
    }

    fn window(&self) -> (f64, f64) {
        (-4.0, 4.0)
    }
}

impl Model for Density {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let x = self.batch(ctx.batch_size);
        let (x, jacobian) = match &self.dequant {
            Some(d) => {
                let (z, lj) = d.to_flow(&x, &x.rand_like());
                (z, Some(lj))
            }
            None => (x, None),
        };
        if ctx.step == 0 {
            // ActNorm's data-dependent initialization, on the first batch (Glow §3.1).
            self.flow.data_init(&x)?;
        }
        let (u, log_det) = self.flow.training_bijector().inverse(&x, None)?;
        let mut lp = self.base.distribution(x.kind(), x.device()).log_prob(&u)? + &log_det;
        if let Some(lj) = &jacobian {
            lp += lj;
        }
        let loss = -lp.mean(Kind::Float);
        let mut terms = Vec::new();
        if ctx.diagnostics {
            terms.push(("nll", loss.detach()));
            terms.push(("log_det", log_det.mean(Kind::Float).detach()));
            if let Some(d) = &self.dequant {
                terms.push(("bits_per_dim", loss.detach() * d.bits_per_dim(1.0)));
            }
        }
        Ok(Losses {
            loss,
            terms,
            layers: vec![],
        })
    }

    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        let nll = self.nll(&self.val)?;
        let mut out = vec![("nll", nll)];
        if let Some(d) = &self.dequant {
            out.push(("bits_per_dim", d.bits_per_dim(nll)));
        }
        Ok(out)
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let x = self.batch(ctx.batch_size);
            // The density direction runs the layers in reverse: check them in that order.
            let mut y = x;
            let chain = self.flow.bijector();
            let names = self.flow.layer_names();
            for (i, layer) in chain.layers().into_iter().enumerate().rev() {
                match layer.inverse(&y, None) {
                    Ok((prev, ld)) if all_finite(&prev) && all_finite(&ld) => y = prev,
                    _ => {
                        return Some(format!(
                            "flow layer {i} ({})",
                            names.get(i).cloned().unwrap_or_default()
                        ))
                    }
                }
            }
            None
        })
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        let train = if self.dequant.is_some() {
            self.train.narrow(0, 0, self.train.size()[0].min(2000))
        } else {
            self.train.shallow_clone()
        };
        let test = self.nll(&self.test)?;
        let mut out = vec![
            ("train_nll".into(), self.nll(&train)?),
            ("val_nll".into(), self.nll(&self.val)?),
            ("test_nll".into(), test),
        ];
        if let Some(d) = &self.dequant {
            out.push(("test_bits_per_dim".into(), d.bits_per_dim(test)));
        }
        Ok(out)
    }

    fn figures(&self) -> Result<Vec<(String, RgbImage)>> {
        if let Some(d) = &self.dequant {
            let [_, h, w] = d.shape;
            let mut out = vec![(
                "data".into(),
                crate::plot::images::tile(
                    &self.test.narrow(0, 0, self.test.size()[0].min(64)),
                    h,
                    w,
                    8,
                )?,
            )];
            for t in [0.5, 0.7, 1.0] {
                out.push((
                    format!("samples_t{t}"),
                    crate::plot::images::tile(&self.sample(64, t)?, h, w, 8)?,
                ));
            }
            return Ok(out);
        }
        let (lo, hi) = self.window();
        let dist = self.distribution();
        if self.dim < 2 {
            return Ok(vec![]);
        }
        if self.dim != 2 {
            // Tables: the first two (standardized) columns of data and samples, as histograms.
            let two = |t: &Tensor| t.narrow(1, 0, 2.min(self.dim));
            let data = plot::histogram_figure(&two(&self.test), lo, hi, 200);
            let samples =
                plot::histogram_figure(&two(&dist.sample(self.test.size()[0])?), lo, hi, 200);
            return Ok(vec![
                ("data_cols12".into(), data),
                ("samples_cols12".into(), samples),
            ]);
        }
        let density = plot::density_figure(lo, hi, 400, self.vs.device(), &mut |pts| {
            dist.log_prob(&pts.to_kind(Kind::Float))
                .unwrap_or_else(|_| pts.select(1, 0).full_like(f64::NAN))
        });
        let data = plot::histogram_figure(&self.test, lo, hi, 200);
        let samples = plot::histogram_figure(&dist.sample(self.test.size()[0])?, lo, hi, 200);
        Ok(vec![
            ("density".into(), density),
            ("data".into(), data),
            ("samples".into(), samples),
        ])
    }

    fn snapshot(&self) -> Result<Option<RgbImage>> {
        if let Some(d) = &self.dequant {
            let [_, h, w] = d.shape;
            return Ok(Some(crate::plot::images::tile(
                &self.sample(16, 0.7)?,
                h,
                w,
                16,
            )?));
        }
        if self.dim != 2 {
            return Ok(None);
        }
        let (lo, hi) = self.window();
        let dist = self.distribution();
        Ok(Some(plot::density_figure(
            lo,
            hi,
            160,
            self.vs.device(),
            &mut |pts| {
                dist.log_prob(&pts.to_kind(Kind::Float))
                    .unwrap_or_else(|_| pts.select(1, 0).full_like(f64::NAN))
            },
        )))
    }

    fn data_dim(&self) -> i64 {
        self.dim
    }

    fn sample(&self, n: i64, t: f64) -> Result<Tensor> {
        let u = self
            .base
            .sample_tempered(n, t, Kind::Float, self.vs.device());
        let z = tch::no_grad(|| self.flow.bijector().forward(&u, None))?.0;
        if let Some(d) = &self.dequant {
            return Ok(d.to_image(&z));
        }
        Ok(match &self.standardize {
            Some((m, s)) => z * s + m,
            None => z,
        })
    }

    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(self.vs.device()).to_kind(Kind::Float);
        if self.dequant.is_some() {
            // Grey levels level/255; mid-bin dequantization (u = 1/2): ln p(x + 1/2) in nats.
            let half = x.full_like(0.5);
            return tch::no_grad(|| {
                self.log_prob_model_space(&self.distribution(), &x, Some(&half))
            });
        }
        tch::no_grad(|| match &self.standardize {
            Some((m, s)) => {
                Ok(self.distribution().log_prob(&((&x - m) / s))? - s.log().sum(Kind::Float))
            }
            None => Ok(self.distribution().log_prob(&x)?),
        })
    }

    fn flow(&self) -> Option<(crate::bijector::Chain, Vec<String>)> {
        Some((self.flow.bijector(), self.flow.layer_names().to_vec()))
    }
}
