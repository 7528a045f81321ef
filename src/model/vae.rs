//! Variational autoencoders on images (Kingma & Welling 2014; Rezende & Mohamed 2015): a Gaussian encoder q0(z0|x), optionally a
//! normalizing flow on top of it (the amortized posteriors of [`super::posterior`]), and a
//! Bernoulli or Gaussian decoder p(x|z) (Kingma & Welling 2014, Appendix C), trained on the (β-weighted) ELBO
//!
//! ```text
//! ELBO(x) = E_q0[ ln p(x|z_K) + ln p(z_K) − ln q0(z0|x) + Σ_k ln|det ∂f_k/∂z_{k−1}| ]   (Rezende & Mohamed 2015, §4.2)
//! ```
//!
//! with one reparameterized sample per data point (Kingma & Welling 2014, §2.3–2.4). For the plain VAE the KL term
//! is analytic (Kingma & Welling 2014, Appendix B); with a flow it is the Monte-Carlo estimate
//! KL = ln q0(z0|x) − Σ ln|det| − ln p(z_K). The loss is −E[ln p(x|z) − β · KL], β from
//! `train.beta` (warm-up, Bowman et al. 2016; Sønderby et al. 2016).
//!
//! Logged terms (nats per image): `train/elbo`, `train/recon` = −E ln p(x|z), `train/kl_z` (the KL term, as HI-VAE names it; flow fits log `train/kl` = KL(q‖p) to their target),
//! `train/log_det` (mean Σ ln|det|); `val/elbo` per logging step. Final metrics: ELBO on each
//! split and the importance-weighted NLL on the test split (see [`super::vae_eval`]).
pub use super::likelihood::Likelihood;
use super::posterior::{gaussian_kl, Posterior, PosteriorConfig};
use super::{LogDensity, Losses, Model, Sampler, StepContext};
use crate::data::images::{ImageData, ImageDataConfig};
use crate::nn::coders::{Architecture, Decoder, Encoder};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

fn default_importance() -> i64 {
    5_000
}
fn default_chunk() -> i64 {
    2_000
}
fn default_range() -> f64 {
    3.0
}
fn default_steps() -> i64 {
    256
}

/// Final evaluation and figures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// S in the importance-weighted NLL −ln (1/S) Σ_s w_s (5,000 as in the Sylvester paper).
    #[serde(default = "default_importance")]
    pub importance_samples: i64,
    /// Samples per decoder pass, bounding memory.
    #[serde(default = "default_chunk")]
    pub chunk: i64,
    /// Index of the test digit of the posterior grid and latent sweep (posterior-sample grid and latent sweep).
    #[serde(default)]
    pub digit: i64,
    /// Latent dimensions swept in Fig. 2b (default: the first three, or fewer if the latent is smaller).
    #[serde(default)]
    pub sweep_dims: Option<Vec<i64>>,
    #[serde(default = "default_range")]
    pub sweep_range: f64,
    #[serde(default = "default_steps")]
    pub sweep_steps: i64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            importance_samples: default_importance(),
            chunk: default_chunk(),
            digit: 0,
            sweep_dims: None,
            sweep_range: default_range(),
            sweep_steps: default_steps(),
        }
    }
}

impl EvalConfig {
    pub fn sweep_dims(&self, latent: i64) -> Vec<i64> {
        self.sweep_dims
            .clone()
            .unwrap_or_else(|| (0..latent.min(3)).collect())
    }

    pub fn validate(&self, latent: i64, field: &str) -> Result<()> {
        ensure!(
            self.importance_samples >= 1 && self.chunk >= 1,
            "field `{field}`: importance_samples and chunk must be at least 1"
        );
        ensure!(
            self.digit >= 0,
            "field `{field}.digit`: must be ≥ 0, got {}",
            self.digit
        );
        ensure!(
            self.sweep_range.is_finite() && self.sweep_range > 0.0 && self.sweep_steps >= 2,
            "field `{field}`: sweep_range must be positive and sweep_steps at least 2"
        );
        for d in self.sweep_dims(latent) {
            ensure!(
                (0..latent).contains(&d),
                "field `{field}.sweep_dims`: dimension {d} does not exist in a {latent}-D latent space (the latent is too small for this figure)"
            );
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    #[serde(default)]
    pub data: ImageDataConfig,
    pub latent_dim: i64,
    #[serde(default)]
    pub architecture: Architecture,
    #[serde(default)]
    pub decoder: Likelihood,
    #[serde(default)]
    pub posterior: PosteriorConfig,
    #[serde(default)]
    pub evaluation: EvalConfig,
}

impl VaeConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.latent_dim >= 1,
            "field `model.vae.latent_dim`: must be at least 1, got {}",
            self.latent_dim
        );
        self.data.validate("model.vae.data")?;
        self.posterior
            .validate(self.latent_dim, "model.vae.posterior")?;
        self.evaluation
            .validate(self.latent_dim, "model.vae.evaluation")
    }
}

pub struct Vae {
    pub config: VaeConfig,
    vs: nn::VarStore,
    pub data: ImageData,
    encoder: Encoder,
    decoder: Decoder,
    pub posterior: Posterior,
}

/// ELBO terms per row: ln p(x|z_K), KL estimate, Σ ln|det|, per-layer log-dets.
pub struct ElboTerms {
    pub log_px: Tensor,
    pub kl: Tensor,
    pub log_det: Tensor,
    pub layers: Vec<Tensor>,
}

impl Vae {
    pub fn new(config: VaeConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let data = ImageData::load(&config.data, device)?;
        config
            .architecture
            .validate(data.rows, data.cols, "model.vae.architecture")?;
        ensure!(
            data.is_binary() || config.decoder != Likelihood::Bernoulli,
            "model.vae: a bernoulli decoder needs binarized pixels (data.binarize `dynamic` or `static`), not grey levels; use decoder `gaussian` or `categorical` for grey levels"
        );
        ensure!(
            !data.is_binary() || config.decoder == Likelihood::Bernoulli,
            "model.vae: a {} decoder models grey levels; set data.binarize to `none`",
            serde_json::to_value(config.decoder)?.as_str().unwrap_or("")
        );
        ensure!(
            config.evaluation.digit < data.test.size()[0],
            "field `model.vae.evaluation.digit`: {} but the test split has {} images",
            config.evaluation.digit,
            data.test.size()[0]
        );
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = Encoder::new(
            &(&root / "encoder"),
            &config.architecture,
            data.rows,
            data.cols,
        );
        let posterior = Posterior::new(
            &(&root / "encoder"),
            &(&root / "posterior"),
            &config.posterior,
            encoder.features,
            config.latent_dim,
        )
        .context("model.vae.posterior")?;
        let decoder = Decoder::new(
            &(&root / "decoder"),
            &config.architecture,
            config.latent_dim,
            data.rows,
            data.cols,
            config.decoder.channels(),
        );
        Ok(Vae {
            config,
            vs,
            data,
            encoder,
            decoder,
            posterior,
        })
    }

    pub fn latent(&self) -> i64 {
        self.config.latent_dim
    }

    pub fn encode(&self, x: &Tensor) -> Tensor {
        self.encoder.forward(x)
    }

    /// Mean images E[x|z] for codes z.
    pub fn decode_mean(&self, z: &Tensor) -> Tensor {
        self.config.decoder.mean(&self.decoder.forward(z))
    }

    /// ln p(x|z) per row, x repeated to match z's rows when z holds several samples per image.
    pub fn log_likelihood(&self, z: &Tensor, x: &Tensor) -> Tensor {
        self.config.decoder.log_prob(&self.decoder.forward(z), x)
    }

    /// One-sample ELBO terms per row of x.
    pub fn elbo_terms(&self, x: &Tensor) -> Result<ElboTerms> {
        let h = self.encoder.forward(x);
        let s = self.posterior.sample(&h, 1)?;
        let log_px = self.log_likelihood(&s.z, x);
        let kl = if self.posterior.is_gaussian() {
            gaussian_kl(&s.mean, &s.log_var)
        } else {
            &s.log_q0 - &s.log_det - standard_normal_log_prob(&s.z)
        };
        Ok(ElboTerms {
            log_px,
            kl,
            log_det: s.log_det,
            layers: s.layer_log_dets,
        })
    }

    /// Mean one-sample ELBO over the rows of x, in batches, without gradients.
    pub fn mean_elbo(&self, x: &Tensor) -> Result<f64> {
        let mut total = 0.0;
        for chunk in x.split(500, 0) {
            let t = tch::no_grad(|| self.elbo_terms(&chunk))?;
            total += (t.log_px - t.kl).sum(Kind::Double).double_value(&[]);
        }
        Ok(total / x.size()[0] as f64)
    }
}

pub use crate::distribution::standard_normal_log_prob;

impl Model for Vae {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let x = self.data.train_batch(ctx.step, ctx.batch_size);
        let t = self.elbo_terms(&x)?;
        let loss = -(&t.log_px - &t.kl * ctx.beta).mean(t.log_px.kind());
        let mut terms = Vec::new();
        let mut layers = Vec::new();
        if ctx.diagnostics {
            let mean = |v: &Tensor| v.mean(v.kind()).detach();
            terms.push(("elbo", mean(&(&t.log_px - &t.kl))));
            terms.push(("recon", -mean(&t.log_px)));
            terms.push(("kl_z", mean(&t.kl)));
            terms.push(("log_det", mean(&t.log_det)));
            for (name, ld) in self.posterior.layer_names().into_iter().zip(&t.layers) {
                layers.push((name, mean(ld)));
            }
        }
        Ok(Losses {
            loss,
            terms,
            layers,
        })
    }

    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("elbo", self.mean_elbo(&self.data.val)?)])
    }

    fn validation_higher_is_better(&self) -> bool {
        true
    }

    fn steps_per_epoch(&self, batch_size: i64) -> Option<i64> {
        Some(self.data.steps_per_epoch(batch_size))
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        super::vae_eval::locate_nonfinite(self, ctx)
    }

    fn uses_beta(&self) -> bool {
        true
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        super::vae_eval::evaluate(self)
    }

    fn figures(&self) -> Result<Vec<(String, crate::plot::Figure)>> {
        super::vae_eval::figures(self, &self.config.evaluation)
    }

    fn snapshot(&self) -> Result<Option<crate::plot::Figure>> {
        super::vae_eval::snapshot(self).map(Some)
    }

    fn snapshot_tag(&self) -> &'static str {
        "reconstructions_and_samples"
    }

    fn set_dtype(&mut self, dtype: crate::experiment::config::Dtype) -> Result<()> {
        self.vs.set_kind(dtype.kind());
        let d = &mut self.data;
        for t in [&mut d.train, &mut d.val, &mut d.test] {
            *t = t.to_kind(dtype.kind());
        }
        Ok(())
    }

    crate::capabilities!(sampler, log_density);
}

impl Sampler for Vae {
    fn data_dim(&self) -> i64 {
        self.data.pixels()
    }

    /// Mean images E[x|z] of z ~ N(0, t² I).
    fn sample(&self, n: i64, t: f64) -> Result<Tensor> {
        let kind = super::weight_kind(&self.vs);
        let z = Tensor::randn([n, self.latent()], (kind, self.vs.device())) * t;
        Ok(tch::no_grad(|| self.decode_mean(&z)))
    }

    fn sample_meaning(&self) -> &'static str {
        "decoder means E[x|z] (grey levels, not binary draws) of prior samples z ~ N(0, T²I)"
    }

    fn image_shape(&self) -> Option<(i64, i64)> {
        Some((self.data.rows, self.data.cols))
    }
}

impl LogDensity for Vae {
    /// The importance-weighted estimate of ln p(x) with the configured number of samples.
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        ensure!(
            x.size().get(1) == Some(&self.data.pixels()),
            "expected rows of {} pixels, got shape {:?}",
            self.data.pixels(),
            x.size()
        );
        let x = x
            .to_device(self.vs.device())
            .to_kind(super::weight_kind(&self.vs));
        super::vae_eval::importance_log_px(self, &x, self.config.evaluation.importance_samples)
    }
}
