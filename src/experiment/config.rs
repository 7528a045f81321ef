//! Experiment configs: nested component configs read from JSON. Unknown fields, wrong types and
//! bad values are errors naming the file and the field path (`train.lr`, `model.flow_fit.flow[0]`).
use crate::model::autoencoder::AutoencoderConfig;
use crate::model::density::DensityConfig;
use crate::model::flow_fit::FlowFitConfig;
use crate::model::hivae::HivaeConfig;
use crate::model::vae::VaeConfig;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use super::runtime::{resolve_device, DeviceChoice, Dtype, RuntimeConfig};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The run folder's name under the output root.
    pub name: String,
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
}

/// Which model to build, keyed by its kind: `{"flow_fit": {...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Reverse-KL fit of a flow to a 2-D target (U1–U4).
    FlowFit(FlowFitConfig),
    /// Maximum-likelihood density estimation on data (toy 2-D sets for now).
    Density(DensityConfig),
    /// A VAE on images, with a Gaussian or flow posterior (Kingma & Welling 2014; Rezende & Mohamed 2015).
    Vae(VaeConfig),
    /// A deterministic autoencoder on images (Hinton & Salakhutdinov 2006).
    Autoencoder(AutoencoderConfig),
    /// HI-VAE on an incomplete heterogeneous table, optionally with flows (Nazábal et al. 2020).
    Hivae(HivaeConfig),
}

impl ModelConfig {
    /// Checks the model section (the data's dimension is checked when the model is built).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::FlowFit(m) => {
                validate_flow(&m.flow, "model.flow_fit.flow")?;
                positive(m.eval_samples, "model.flow_fit.eval_samples")?;
            }
            ModelConfig::Density(m) => {
                m.data.validate("model.density.data")?;
                validate_flow(&m.flow, "model.density.flow")?;
            }
            ModelConfig::Vae(m) => m.validate()?,
            ModelConfig::Autoencoder(m) => m.data.validate("model.autoencoder.data")?,
            ModelConfig::Hivae(m) => m.validate()?,
        }
        Ok(())
    }

    /// The kind as a config writes it: `flow_fit`, `density`, `vae`, `autoencoder`, `hivae`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::FlowFit(_) => "flow_fit",
            ModelConfig::Density(_) => "density",
            ModelConfig::Vae(_) => "vae",
            ModelConfig::Autoencoder(_) => "autoencoder",
            ModelConfig::Hivae(_) => "hivae",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps (0: evaluate the initial weights only).
    pub steps: i64,
    /// Train for this many passes over the data instead of `steps` (image models).
    pub epochs: Option<i64>,
    pub batch_size: i64,
    pub optimizer: AdamConfig,
    pub beta: BetaSchedule,
    pub seed: u64,
    /// Clip the global gradient norm to this value (none by default).
    pub grad_clip: Option<f64>,
    /// Stop when the model's validation criterion (its first `val/` metric, lower is better)
    /// has not improved for `patience` logging steps; the best weights are kept.
    pub early_stopping: Option<EarlyStopping>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: i64,
    /// Count checks without improvement only once the β warm-up has ended (the Sylvester-flow
    /// paper's protocol: the best weights are still kept during warm-up).
    #[serde(default)]
    pub after_warmup: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 10_000,
            epochs: None,
            batch_size: 256,
            optimizer: AdamConfig::default(),
            beta: BetaSchedule::default(),
            seed: 0,
            grad_clip: None,
            early_stopping: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// `"adam"` (Kingma & Ba 2015, Algorithm 1) or `"adamax"` (ibid., Algorithm 2, the
    /// infinity-norm variant the Sylvester-flows paper trains with; ε inside the max, as
    /// torch.optim.Adamax).
    pub algorithm: Algorithm,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            algorithm: Algorithm::Adam,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Which update [`super::optim::Adam`] makes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Adam,
    Adamax,
}

/// β_t = start + (end − start) · min(1, t / anneal_steps): the inverse temperature of a
/// reverse-KL fit or the KL weight of a VAE warm-up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BetaSchedule {
    pub start: f64,
    pub end: f64,
    pub anneal_steps: i64,
    /// The warm-up length in epochs instead of steps (image models).
    pub anneal_epochs: Option<i64>,
}

impl Default for BetaSchedule {
    fn default() -> Self {
        BetaSchedule {
            start: 0.01,
            end: 1.0,
            anneal_steps: 5_000,
            anneal_epochs: None,
        }
    }
}

impl BetaSchedule {
    pub fn at(&self, step: i64) -> f64 {
        if self.anneal_steps <= 0 {
            return self.end;
        }
        let t = (step as f64 / self.anneal_steps as f64).min(1.0);
        self.start + (self.end - self.start) * t
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Scalars to TensorBoard every N steps (and the progress line).
    pub log_every: i64,
    /// A density image and parameter histograms to TensorBoard every N steps (0: never).
    pub image_every: i64,
    /// `model.safetensors` and the optimizer state every N steps (and always at the end).
    pub checkpoint_every: i64,
    /// Image models: log, validate and draw once per epoch (overrides `log_every` and
    /// `image_every`).
    pub every_epoch: bool,
    /// File format of the run's figures/: "png" or "svg" (TensorBoard always gets PNG).
    pub figure_format: crate::plot::Format,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            log_every: 100,
            image_every: 1000,
            checkpoint_every: 1000,
            every_epoch: false,
            figure_format: crate::plot::Format::Png,
        }
    }
}

/// serde's type names in words a config's author uses ("expected i64" → "expected an integer").
fn plain_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (rust, words) in [
        ("i64", "an integer"),
        ("i32", "an integer"),
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        m = m.replace(&format!("expected {rust}"), &format!("expected {words}"));
    }
    m
}

impl ExperimentConfig {
    /// Turns epoch counts into steps for a model with `steps_per_epoch` steps per pass over its
    /// data; an error if epochs are asked of a model that has none.
    pub fn resolve_epochs(&mut self, steps_per_epoch: Option<i64>) -> Result<()> {
        let asked = self.train.epochs.is_some()
            || self.train.beta.anneal_epochs.is_some()
            || self.logging.every_epoch;
        let Some(spe) = steps_per_epoch else {
            if asked {
                bail!("train.epochs, train.beta.anneal_epochs and logging.every_epoch need a model that trains on a dataset in epochs (vae, autoencoder); this one counts steps");
            }
            return Ok(());
        };
        if let Some(e) = self.train.epochs {
            self.train.steps = e * spe;
        }
        if let Some(e) = self.train.beta.anneal_epochs {
            self.train.beta.anneal_steps = e * spe;
        }
        if self.logging.every_epoch {
            self.logging.log_every = spe;
            self.logging.image_every = spe;
        }
        Ok(())
    }

    /// Reads and validates a config file; errors name the file and the field path.
    pub fn load(path: &Path) -> Result<Self> {
        super::overrides::load(path, &[])
    }

    pub fn parse(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: ExperimentConfig = match serde_path_to_error::deserialize(de) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let inner = plain_types(&e.into_inner().to_string());
                if path == "." || path.is_empty() {
                    bail!("{inner}");
                }
                bail!("field `{path}`: {inner}");
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Value checks serde cannot express.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty()
            || self.name.contains(['/', '\\'])
            || self.name == "."
            || self.name == ".."
        {
            bail!(
                "field `name`: must be a plain folder name, got {:?}",
                self.name
            );
        }
        self.validate_train()?;
        self.validate_runtime_and_logging()?;
        self.model.validate()
    }

    fn validate_train(&self) -> Result<()> {
        // 0 trains nothing: the run folder evaluates and draws the initial (or --init-from)
        // weights, e.g. to use imported PyTorch weights with `log-prob` and `sample`.
        if self.train.steps < 0 {
            bail!("field `train.steps`: must be ≥ 0, got {}", self.train.steps);
        }
        positive(self.train.batch_size, "train.batch_size")?;
        finite_pos(self.train.optimizer.lr, "train.optimizer.lr")?;
        finite_pos(self.train.optimizer.eps, "train.optimizer.eps")?;
        for (v, f) in [
            (self.train.optimizer.beta1, "train.optimizer.beta1"),
            (self.train.optimizer.beta2, "train.optimizer.beta2"),
        ] {
            if !(0.0..1.0).contains(&v) {
                bail!("field `{f}`: must be in [0, 1), got {v}");
            }
        }
        if !(self.train.optimizer.weight_decay >= 0.0
            && self.train.optimizer.weight_decay.is_finite())
        {
            bail!(
                "field `train.optimizer.weight_decay`: must be ≥ 0, got {}",
                self.train.optimizer.weight_decay
            );
        }
        if let Some(c) = self.train.grad_clip {
            finite_pos(c, "train.grad_clip")?;
        }
        let b = &self.train.beta;
        if !(b.start.is_finite() && b.end.is_finite() && b.start >= 0.0 && b.end >= 0.0) {
            bail!(
                "field `train.beta`: start and end must be finite and ≥ 0, got {} and {}",
                b.start,
                b.end
            );
        }
        if let Some(es) = &self.train.early_stopping {
            positive(es.patience, "train.early_stopping.patience")?;
        }
        if let Some(e) = self.train.epochs {
            positive(e, "train.epochs")?;
        }
        if let Some(e) = self.train.beta.anneal_epochs {
            positive(e, "train.beta.anneal_epochs")?;
        }
        Ok(())
    }

    fn validate_runtime_and_logging(&self) -> Result<()> {
        if self.runtime.threads < 1 {
            bail!(
                "field `runtime.threads`: must be at least 1, got {}",
                self.runtime.threads
            );
        }
        positive(self.logging.log_every, "logging.log_every")?;
        positive(self.logging.checkpoint_every, "logging.checkpoint_every")?;
        if self.logging.image_every < 0 {
            bail!(
                "field `logging.image_every`: must be ≥ 0, got {}",
                self.logging.image_every
            );
        }
        Ok(())
    }

    /// The built-in default: 8 planar layers fitted to U1, a couple of minutes on 2 cores.
    pub fn builtin_default() -> Self {
        Self::parse(include_str!("../../experiments/planar-u1-k8.json"))
            .expect("built-in default config is valid")
    }

    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// `field` must be positive.
fn positive(v: i64, field: &str) -> Result<()> {
    if v <= 0 {
        bail!("field `{field}`: must be positive, got {v}");
    }
    Ok(())
}

/// `field` must be a positive finite number.
fn finite_pos(v: f64, field: &str) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("field `{field}`: must be a positive finite number, got {v}");
    }
    Ok(())
}

/// A flow needs at least one layer, each valid on its own (the dimension is checked at build).
fn validate_flow(flow: &[crate::flow::LayerConfig], field: &str) -> Result<()> {
    if flow.is_empty() {
        bail!("field `{field}`: needs at least one layer");
    }
    for (i, l) in flow.iter().enumerate() {
        if let Err(e) = l.spec().validate(None) {
            bail!("field `{field}[{i}]`: {e}");
        }
    }
    Ok(())
}
