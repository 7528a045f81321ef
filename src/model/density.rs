//! Density estimation by maximum likelihood (forward KL): a flow maps a base q0 to data, and the
//! loss is the negative log-likelihood −E_data[ln q0(f⁻¹(x)) + ln|det ∂f⁻¹/∂x|] (change of
//! variables; Dinh et al. 2016, eq. 3), reported in nats. Data: the toy 2-D sets, numeric CSV
//! tables, MNIST-format images ([`super::density_data`]).
//!
//! The model is data transform ∘ flow ∘ base: the transform ([`Preprocess`]: identity,
//! standardization, dequantization + logit) is bijectors at the data end of the chain, so
//! `log_prob` and `sample` work in the data's own units, and metrics add back what the papers
//! leave out (tables: NLL in standardized units).
use super::base::{Base, BaseConfig};
pub use super::density_data::DataConfig;
use super::preprocess::Preprocess;
use super::{HasFlow, LogDensity, Losses, Model, Sampler, StepContext};
use crate::bijector::{all_finite, Bijector, Chain};
use crate::distribution::{Distribution, TransformedDistribution};
use crate::flow::{Flow, LayerConfig};
use crate::plot::{images, Figure, Heatmap, ImageGrid};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensityConfig {
    pub data: DataConfig,
    #[serde(default)]
    pub base: BaseConfig,
    pub flow: Vec<LayerConfig>,
    /// What batch normalization evaluates with after training: `"running"` (exponential running
    /// averages, the default) or `"training_set"` (the statistics of the whole training set,
    /// recorded once at the end of training, as the MAF paper does).
    #[serde(default)]
    pub batchnorm_statistics: BatchnormStatistics,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BatchnormStatistics {
    #[default]
    Running,
    TrainingSet,
}

pub struct Density {
    pub config: DensityConfig,
    vs: nn::VarStore,
    flow: Flow,
    base: Base,
    /// The data transform at the data end of the chain.
    pre: Preprocess,
    /// Splits in the data's own units (images: grey levels in [0, 1]).
    train: Tensor,
    val: Tensor,
    test: Tensor,
    dim: i64,
}

impl Density {
    pub fn new(config: DensityConfig, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (train, val, test, pre) = super::density_data::load(&config.data, &root, device)?;
        let dim = train.size()[1];
        let flow = Flow::build(&config.flow, &(&root / "flow"), dim, None)
            .context("model.density.flow")?;
        anyhow::ensure!(
            config.batchnorm_statistics == BatchnormStatistics::Running
                || flow.has_batch_statistics(),
            "field `model.density.batchnorm_statistics`: \"training_set\" needs a batchnorm layer in the flow, and it has none"
        );
        let base = Base::build(&config.base, &root, dim);
        Ok(Density {
            config,
            vs,
            flow,
            base,
            pre,
            train,
            val,
            test,
            dim,
        })
    }

    /// Base, flow and data transform as one distribution on data space.
    fn distribution(&self) -> TransformedDistribution {
        let chain = Chain::new(vec![
            Box::new(self.flow.bijector()),
            Box::new(self.pre.chain(self.kind(), self.vs.device())),
        ]);
        TransformedDistribution::new(
            self.base.distribution(self.kind(), self.vs.device()),
            Box::new(chain),
        )
    }

    /// Mean negative log-likelihood (nats, in the metrics' units) over `x`, in chunks, without
    /// gradients. Images are dequantized with one fixed draw of noise, so evaluations are
    /// comparable across steps.
    pub fn nll(&self, x: &Tensor) -> Result<f64> {
        let dist = self.distribution();
        if self.pre.image_shape().is_some() {
            tch::manual_seed(0x5EED); // the fixed dequantization draw
        }
        let mut total = 0.0;
        for chunk in x.split(self.pre.eval_chunk(), 0) {
            let lp = tch::no_grad(|| dist.log_prob(&self.pre.observe(&chunk, None)))?;
            total -= lp.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        }
        Ok(total / x.size()[0] as f64 - self.pre.metric_offset())
    }

    /// The weights' floating kind (float32 unless `runtime.dtype` or `--dtype` says f64).
    fn kind(&self) -> Kind {
        super::weight_kind(&self.vs)
    }

    fn batch(&self, n: i64) -> Tensor {
        let idx = Tensor::randint(self.train.size()[0], [n], (Kind::Int64, self.vs.device()));
        self.train.index_select(0, &idx)
    }

    fn window(&self) -> (f64, f64) {
        (-4.0, 4.0)
    }

    /// The model's exact density on an `n × n` grid over the window (in model space).
    fn density_image(&self, title: &str, n: usize) -> Result<Heatmap> {
        let dist = self.distribution();
        Heatmap::of_log_density(
            title,
            "density p(x)",
            self.window(),
            n,
            self.vs.device(),
            &mut |pts| {
                dist.log_prob(&pts.to_kind(self.kind()))
                    .unwrap_or_else(|_| pts.select(1, 0).full_like(f64::NAN))
            },
        )
    }

    /// `n` draws in model space (before the data transform), at temperature `t`.
    fn model_samples(&self, n: i64, t: f64) -> Result<Tensor> {
        let u = self
            .base
            .sample_tempered(n, t, self.kind(), self.vs.device());
        Ok(tch::no_grad(|| self.flow.bijector().forward(&u, None))?.0)
    }

    /// Data mapped to model space (the flow's data side).
    fn to_model_space(&self, x: &Tensor) -> Result<Tensor> {
        Ok(tch::no_grad(|| {
            self.pre
                .chain(self.kind(), self.vs.device())
                .inverse(x, None)
        })?
        .0)
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
        let x = self.pre.observe(&self.batch(ctx.batch_size), None);
        // Data → model space (Σ ln|det| of the transform), then the flow.
        let (z, transform_log_det) = self
            .pre
            .chain(self.kind(), self.vs.device())
            .inverse(&x, None)?;
        if ctx.step == 0 {
            // ActNorm's data-dependent initialization, on the first batch (Glow §3.1).
            self.flow.data_init(&z)?;
        }
        let (u, log_det) = self.flow.training_bijector().inverse(&z, None)?;
        let lp = self.base.distribution(z.kind(), z.device()).log_prob(&u)?
            + &log_det
            + transform_log_det
            + self.pre.metric_offset();
        let loss = -lp.mean(lp.kind());
        let mut terms = Vec::new();
        if ctx.diagnostics {
            terms.push(("nll", loss.detach()));
            terms.push(("log_det", log_det.mean(log_det.kind()).detach()));
            if let Some(bits) = self.pre.bits_per_dim(1.0) {
                terms.push(("bits_per_dim", loss.detach() * bits));
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
        let bits = self.pre.bits_per_dim(nll).map(|b| ("bits_per_dim", b));
        Ok([("nll", nll)].into_iter().chain(bits).collect())
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let x = self.pre.observe(&self.batch(ctx.batch_size), None);
            let Ok(mut y) = self.to_model_space(&x) else {
                return Some("the data transform".into());
            };
            // The density direction runs the layers in reverse: check them in that order.
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
        // Images: 2,000 training images are enough to see over-fitting.
        let rows = match self.pre.image_shape() {
            Some(_) => self.train.size()[0].min(2000),
            None => self.train.size()[0],
        };
        let test = self.nll(&self.test)?;
        let mut out = vec![
            (
                "train_nll".into(),
                self.nll(&self.train.narrow(0, 0, rows))?,
            ),
            ("val_nll".into(), self.nll(&self.val)?),
            ("test_nll".into(), test),
        ];
        if let Some(bits) = self.pre.bits_per_dim(test) {
            out.push(("test_bits_per_dim".into(), bits));
        }
        Ok(out)
    }

    fn figures(&self) -> Result<Vec<(String, Figure)>> {
        if let Some([_, h, w]) = self.pre.image_shape() {
            let first = self.test.narrow(0, 0, self.test.size()[0].min(64));
            let data = ImageGrid::new("test images", images::tile(&first, h, w, 8)?);
            let mut out = vec![("data".into(), data.into())];
            for t in [0.5, 0.7, 1.0] {
                let samples = images::tile(&self.sample(64, t)?, h, w, 8)?;
                let grid = ImageGrid::new(&format!("samples, temperature {t}"), samples);
                out.push((format!("samples_t{t}"), grid.into()));
            }
            return Ok(out);
        }
        let window = self.window();
        if self.dim < 2 {
            return Ok(vec![]);
        }
        let n = self.test.size()[0];
        let test = self.to_model_space(&self.test)?;
        let samples = self.model_samples(n, 1.0)?;
        let histograms = |cols: &str,
                          data: &Tensor,
                          samples: &Tensor|
         -> Result<Vec<(String, Figure)>> {
            Ok(vec![
                (
                    format!("data{cols}"),
                    Heatmap::histogram(&format!("test data{cols}"), data, window, 100)?.into(),
                ),
                (
                    format!("samples{cols}"),
                    Heatmap::histogram(&format!("{n} model samples{cols}"), samples, window, 100)?
                        .into(),
                ),
            ])
        };
        if self.dim != 2 {
            // Tables: the first two (standardized) columns of data and samples, as histograms.
            let two = |t: &Tensor| t.narrow(1, 0, 2);
            return histograms("_cols12", &two(&test), &two(&samples));
        }
        let mut out = vec![(
            "density".into(),
            self.density_image("model density", 400)?.into(),
        )];
        out.extend(histograms("", &test, &samples)?);
        Ok(out)
    }

    fn snapshot(&self) -> Result<Option<Figure>> {
        if let Some([_, h, w]) = self.pre.image_shape() {
            let grid = images::tile(&self.sample(16, 0.7)?, h, w, 16)?;
            return Ok(Some(
                ImageGrid::new("samples, temperature 0.7", grid).into(),
            ));
        }
        if self.dim != 2 {
            return Ok(None);
        }
        Ok(Some(self.density_image("model density", 160)?.into()))
    }

    /// With `batchnorm_statistics: "training_set"`, records the training set's statistics in
    /// every batch-normalization layer (images with one dequantization draw).
    fn finish_training(&mut self) -> Result<bool> {
        if self.config.batchnorm_statistics != BatchnormStatistics::TrainingSet {
            return Ok(false);
        }
        let x = self.pre.observe(&self.train, None);
        let z = tch::no_grad(|| {
            self.pre
                .chain(self.kind(), self.vs.device())
                .inverse(&x, None)
        })?
        .0;
        self.flow.record_statistics(&z)?;
        Ok(true)
    }

    fn set_dtype(&mut self, dtype: crate::experiment::config::Dtype) -> Result<()> {
        self.vs.set_kind(dtype.kind());
        for t in [&mut self.train, &mut self.val, &mut self.test] {
            *t = t.to_kind(dtype.kind());
        }
        Ok(())
    }

    crate::capabilities!(sampler, log_density, flow_view);
}

impl Sampler for Density {
    fn data_dim(&self) -> i64 {
        self.dim
    }

    fn sample(&self, n: i64, t: f64) -> Result<Tensor> {
        let z = self.model_samples(n, t)?;
        let x = tch::no_grad(|| {
            self.pre
                .chain(self.kind(), self.vs.device())
                .forward(&z, None)
        })?
        .0;
        Ok(self.pre.present(&x))
    }

    fn image_shape(&self) -> Option<(i64, i64)> {
        self.pre.image_shape().map(|[_, h, w]| (h, w))
    }
}

impl LogDensity for Density {
    /// ln p(x) in the data's own units; images (grey levels level/255) at mid-bin
    /// dequantization (u = 1/2): ln p(level + 1/2) in nats.
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(self.vs.device()).to_kind(self.kind());
        let x = self.pre.observe(&x, Some(&x.full_like(0.5)));
        Ok(tch::no_grad(|| self.distribution().log_prob(&x))?)
    }
}

impl HasFlow for Density {
    fn flow(&self) -> (crate::bijector::Chain, Vec<String>) {
        (self.flow.bijector(), self.flow.layer_names().to_vec())
    }
}
