//! The base distribution q0 of a flow model, as configured: fixed N(0, I) or a learnable
//! diagonal normal.
use crate::distribution::{DiagNormal, Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum BaseConfig {
    /// N(0, I), fixed.
    #[default]
    StandardNormal,
    /// N(μ, diag σ²) with learnable μ and ln σ (named `base.loc`, `base.log_scale`).
    DiagNormal,
    /// The standard logistic per coordinate, fixed (NICE's prior).
    Logistic,
}

pub struct Base {
    dim: i64,
    params: Option<(Tensor, Tensor)>,
    logistic: bool,
}

impl Base {
    /// Creates the parameters (if any) under `p / "base"`.
    pub fn build(cfg: &BaseConfig, p: &nn::Path, dim: i64) -> Self {
        let params = match cfg {
            BaseConfig::StandardNormal | BaseConfig::Logistic => None,
            BaseConfig::DiagNormal => {
                let b = p / "base";
                Some((
                    b.var("loc", &[dim], nn::Init::Const(0.0)),
                    b.var("log_scale", &[dim], nn::Init::Const(0.0)),
                ))
            }
        };
        Base {
            dim,
            params,
            logistic: *cfg == BaseConfig::Logistic,
        }
    }

    /// `n` samples at temperature `t` (Glow §5: the base's noise scaled by t; t = 1 is plain
    /// sampling), without gradients.
    pub fn sample_tempered(&self, n: i64, t: f64, kind: tch::Kind, device: tch::Device) -> Tensor {
        let eps = if self.logistic {
            tch::no_grad(|| {
                crate::distribution::StandardLogistic::new(vec![self.dim], kind, device).rsample(n)
            })
            .unwrap_or_else(|_| Tensor::zeros([n, self.dim], (kind, device)))
                * t
        } else {
            Tensor::randn([n, self.dim], (kind, device)) * t
        };
        match &self.params {
            None => eps,
            Some((loc, log_scale)) => tch::no_grad(|| loc + log_scale.exp() * eps),
        }
    }

    /// The distribution with the current parameters; `kind`/`device` are used by N(0, I).
    pub fn distribution(&self, kind: tch::Kind, device: tch::Device) -> Box<dyn Distribution> {
        if self.logistic {
            return Box::new(crate::distribution::StandardLogistic::new(
                vec![self.dim],
                kind,
                device,
            ));
        }
        match &self.params {
            None => Box::new(StandardNormal::new(vec![self.dim], kind, device)),
            Some((loc, log_scale)) => Box::new(DiagNormal::new(
                loc.shallow_clone(),
                log_scale.shallow_clone(),
            )),
        }
    }
}
