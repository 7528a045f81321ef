//! ActNorm (Kingma & Dhariwal 2018, §3.1): a per-feature (per-channel for images) affine map
//! whose first data batch sets it so that what it passes on towards the base has zero mean and
//! unit variance. The map itself is the elementwise [`Affine`]; what makes it ActNorm is the
//! data-dependent initialization, held here for vectors and multi-scale image flows alike.
//!
//! Config: `{"actnorm": {}}`.
use super::{FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::elementwise::Affine;
use crate::bijector::Bijector;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Shift and log-scale per feature, and whether data has set them (saved with the weights).
pub struct ActNorm {
    shift: Tensor,
    log_scale: Tensor,
    /// 0 until the first data batch has set shift and scale.
    initialized: Tensor,
}

impl ActNorm {
    /// `features` learnable shifts and log-scales under `p`, zero until data sets them.
    pub fn new(p: &nn::Path, features: i64) -> Self {
        ActNorm {
            shift: p.var("shift", &[features], nn::Init::Const(0.0)),
            log_scale: p.var("log_scale", &[features], nn::Init::Const(0.0)),
            initialized: p.zeros_no_train("initialized", &[1]),
        }
    }

    /// The map y = shift + exp(log_scale) ⊙ x with the current values.
    pub fn affine(&self) -> Affine {
        Affine::new(self.shift.shallow_clone(), self.log_scale.shallow_clone())
    }

    /// (shift, log-scale), for inspection.
    pub fn values(&self) -> (Tensor, Tensor) {
        (self.shift.shallow_clone(), self.log_scale.shallow_clone())
    }

    /// If not yet initialized: sets shift and scale from `y` (the data-side input, features on
    /// axis 1) reduced over `dims`, so that (y − shift)·exp(−log_scale) has mean 0 and variance 1
    /// per feature. Returns whether it set them.
    pub fn init_from(&self, y: &Tensor, dims: &[i64]) -> bool {
        if self.initialized.double_value(&[0]) != 0.0 {
            return false;
        }
        tch::no_grad(|| {
            let (mut s, mut l, mut i) = (
                self.shift.shallow_clone(),
                self.log_scale.shallow_clone(),
                self.initialized.shallow_clone(),
            );
            s.copy_(&y.mean_dim(dims, false, y.kind()));
            l.copy_(&y.std_dim(dims, false, false).clamp_min(1e-6).log());
            let _ = i.fill_(1.0);
        });
        true
    }
}

/// `{"actnorm": {}}` for vectors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActNormConfig {}

impl LayerSpec for ActNormConfig {
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        Ok(Box::new(ActNormLayer(ActNorm::new(site.path, site.dim))))
    }

    fn label(&self) -> String {
        "actnorm".into()
    }
}

struct ActNormLayer(ActNorm);

impl FlowLayer for ActNormLayer {
    fn names(&self) -> Vec<String> {
        vec!["actnorm".into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(self.0.affine())])
    }

    fn data_init(&self, y: &Tensor) -> anyhow::Result<usize> {
        Ok(usize::from(self.0.init_from(y, &[0])))
    }
}
