//! What an experiment config builds. Every model answers the same few questions for the one
//! [trainer](crate::experiment::trainer::train): a loss for this step, its named terms, final
//! metrics and figures. A model never writes files or loops over steps itself.
pub mod autoencoder;
pub mod base;
pub mod density;
pub mod density_data;
pub mod flow_fit;
pub mod hivae;
pub mod hivae_config;
pub mod hivae_data;
pub mod hivae_heads;
pub mod hivae_impute;
pub mod hivae_lik;
pub mod hivae_masked;
pub mod likelihood;
pub mod posterior;
pub mod preprocess;
pub mod vae;
pub mod vae_eval;

use crate::experiment::config::Dtype;
use crate::plot::Figure;
use anyhow::Result;
use tch::{nn, Kind, Tensor};

/// What the trainer tells a model at each step.
pub struct StepContext {
    pub step: i64,
    /// Inverse temperature / KL weight of the annealing schedule at this step.
    pub beta: f64,
    pub batch_size: i64,
    /// True on logging steps: the model should also fill `Losses::layers`.
    pub diagnostics: bool,
}

/// The scalar to minimize and named terms to log (as `train/<name>`): the same names mean the
/// same things across models so TensorBoard overlays them.
pub struct Losses {
    pub loss: Tensor,
    pub terms: Vec<(&'static str, Tensor)>,
    /// Per-layer mean log|det|, `(layer name, scalar)`, on diagnostic steps.
    pub layers: Vec<(String, Tensor)>,
}

/// What the trainer drives. The core is the loss, the NaN locator and evaluation; figures and
/// pictures default to none. What else a model can do it says through the capability methods
/// (`sampler`, `log_density`, `flow_view`), so commands ask for what they need and no model
/// carries methods it cannot honour.
pub trait Model {
    fn var_store(&self) -> &nn::VarStore;
    fn var_store_mut(&mut self) -> &mut nn::VarStore;
    /// The loss of one training step.
    fn loss(&mut self, ctx: &StepContext) -> Result<Losses>;
    /// After a non-finite loss: re-runs the step's computation layer by layer and names the first
    /// layer that produced NaN/Inf, if any.
    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String>;
    /// Held-out metrics logged as `val/<name>` at every logging step (none by default).
    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![])
    }
    /// True when a larger first validation metric is better (an ELBO); early stopping follows it.
    fn validation_higher_is_better(&self) -> bool {
        false
    }
    /// Training steps in one pass over the data, for models that train in epochs (`train.epochs`,
    /// `train.beta.anneal_epochs`, `logging.every_epoch`).
    fn steps_per_epoch(&self, _batch_size: i64) -> Option<i64> {
        None
    }
    /// Whether the loss reads the annealed β (`train.beta`); only then is `train/beta` logged.
    fn uses_beta(&self) -> bool {
        false
    }
    /// Final metrics (name, value) for `metrics.json`.
    fn evaluate(&self) -> Result<Vec<(String, f64)>>;
    /// Figures for the run folder, `(file stem, image)` (none by default).
    fn figures(&self) -> Result<Vec<(String, Figure)>> {
        Ok(vec![])
    }
    /// A small picture of the current state for TensorBoard (none by default).
    fn snapshot(&self) -> Result<Option<Figure>> {
        Ok(None)
    }
    /// The TensorBoard tag of the snapshot image.
    fn snapshot_tag(&self) -> &'static str {
        "density"
    }
    /// The model as a sampler (`flowlab sample`), if it is one.
    fn sampler(&self) -> Option<&dyn Sampler> {
        None
    }
    /// The model as a density (`flowlab log-prob`), if it has one.
    fn log_density(&self) -> Option<&dyn LogDensity> {
        None
    }
    /// The model's flow (`flowlab check`), if it is built around one.
    fn flow_view(&self) -> Option<&dyn HasFlow> {
        None
    }
    /// Files (name, text) the run folder keeps beside config.json: what the model needs to be
    /// rebuilt without its training data (none by default).
    fn run_files(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![])
    }
    /// Called once when training ends, before the final weights are saved and evaluated;
    /// returns true when it changed weights or buffers (none by default).
    fn finish_training(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// Casts the weights (and any data the model holds) to `dtype` (`runtime.dtype`,
    /// `--dtype`). Models that only compute in float32 refuse float64.
    fn set_dtype(&mut self, dtype: Dtype) -> Result<()> {
        anyhow::ensure!(
            dtype == Dtype::F32,
            "dtype f64 is available for flow_fit, density and vae runs; this model computes in float32 only"
        );
        Ok(())
    }
}

/// The floating kind of a model's weights: float32 unless cast by [`Model::set_dtype`].
pub fn weight_kind(vs: &nn::VarStore) -> Kind {
    vs.variables()
        .values()
        .find(|t| t.is_floating_point())
        .map(|t| t.kind())
        .unwrap_or(Kind::Float)
}

/// The capability methods of a `Model` impl whose type is each capability listed:
/// `capabilities!(sampler, log_density, flow_view);`.
#[macro_export]
macro_rules! capabilities {
    ($($cap:ident),*) => {
        $($crate::capabilities!(@one $cap);)*
    };
    (@one sampler) => {
        fn sampler(&self) -> Option<&dyn $crate::model::Sampler> {
            Some(self)
        }
    };
    (@one log_density) => {
        fn log_density(&self) -> Option<&dyn $crate::model::LogDensity> {
            Some(self)
        }
    };
    (@one flow_view) => {
        fn flow_view(&self) -> Option<&dyn $crate::model::HasFlow> {
            Some(self)
        }
    };
}

/// A model that draws data.
pub trait Sampler {
    /// Width of one sample (columns of `sample` and `log_prob` CSVs).
    fn data_dim(&self) -> i64;
    /// `n` samples from the model, `[n, data_dim]`, at temperature `t` (1: the model itself).
    fn sample(&self, n: i64, t: f64) -> Result<Tensor>;
    /// What a row of `sample` is, for users (e.g. a VAE's decoder means, not binary draws).
    fn sample_meaning(&self) -> &'static str {
        "samples"
    }
    /// `(rows, cols)` when a sample is an image with grey levels in [0, 1].
    fn image_shape(&self) -> Option<(i64, i64)> {
        None
    }
}

/// A model with a (log-)density of data.
pub trait LogDensity: Sampler {
    /// ln p(x) per row of `x: [n, data_dim]`.
    fn log_prob(&self, x: &Tensor) -> Result<Tensor>;
}

/// A model built around one flow on its data space.
pub trait HasFlow: Sampler {
    /// The flow (current parameters) with a name per layer.
    fn flow(&self) -> (crate::bijector::Chain, Vec<String>);
}
