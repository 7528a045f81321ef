//! Batch normalization as a bijector (RealNVP, Dinh et al. 2016, §3.7; MAF, Papamakarios et al.
//! 2017, §3.4), applied in the density direction.
//!
//! Data → base: u = (x − m) / √(v + ε) ⊙ exp(log γ) + β, with (m, v) the batch mean and variance
//! in training and the running averages in evaluation, so
//! ln|det ∂u/∂x| = Σ_i (log γ_i − ½ ln(v_i + ε)). Base → data inverts that map with the same
//! statistics. In training the statistics depend on the whole batch, so per-sample Jacobians do
//! not exist (the log-det above is the one RealNVP and MAF use); in evaluation the layer is an
//! elementwise affine map and passes the three checks.
use super::{FlowLayer, LayerInput, LayerSpec, Site, Statistics};
use crate::bijector::{expect_dim, Bijector, FlowResult};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

pub const EPS: f64 = 1e-5;

pub struct BatchNorm {
    log_gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: f64,
    training: bool,
}

impl BatchNorm {
    /// `running_mean`/`running_var` are updated in place on each training-mode density pass with
    /// `momentum` (new = (1 − momentum)·old + momentum·batch).
    pub fn new(
        log_gamma: Tensor,
        beta: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        momentum: f64,
        training: bool,
    ) -> Self {
        BatchNorm {
            log_gamma,
            beta,
            running_mean,
            running_var,
            momentum,
            training,
        }
    }

    /// The statistics for this pass: the batch's (updating the running averages) in training,
    /// the running averages otherwise.
    fn stats(&self, x: &Tensor) -> (Tensor, Tensor) {
        if self.training && x.size()[0] > 1 {
            let mean = x.mean_dim(0, false, x.kind());
            let var = x.var_dim(0, false, false);
            tch::no_grad(|| {
                let mut rm = self.running_mean.shallow_clone();
                let mut rv = self.running_var.shallow_clone();
                let _ = rm
                    .g_mul_scalar_(1.0 - self.momentum)
                    .g_add_(&(mean.detach().to_kind(rm.kind()) * self.momentum));
                let _ = rv
                    .g_mul_scalar_(1.0 - self.momentum)
                    .g_add_(&(var.detach().to_kind(rv.kind()) * self.momentum));
            });
            (mean, var)
        } else {
            (
                self.running_mean.to_kind(x.kind()),
                self.running_var.to_kind(x.kind()),
            )
        }
    }

    fn log_det(&self, var: &Tensor, batch: i64) -> Tensor {
        let per_dim = &self.log_gamma - (var + EPS).log() * 0.5;
        per_dim
            .sum(Kind::Double)
            .to_kind(var.kind())
            .expand([batch], false)
    }
}

impl Bijector for BatchNorm {
    /// Base → data: x = (u − β) ⊙ exp(−log γ) ⊙ √(v + ε) + m.
    fn forward(&self, u: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(u, self.beta.size()[0], "batchnorm")?;
        let mean = self.running_mean.to_kind(u.kind());
        let var = self.running_var.to_kind(u.kind());
        let x = (u - &self.beta) * (-&self.log_gamma).exp() * (&var + EPS).sqrt() + mean;
        Ok((x, -self.log_det(&var, u.size()[0])))
    }

    /// Data → base, with batch statistics in training.
    fn inverse(&self, x: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(x, self.beta.size()[0], "batchnorm")?;
        let (mean, var) = self.stats(x);
        let u = (x - &mean) / (&var + EPS).sqrt() * self.log_gamma.exp() + &self.beta;
        Ok((u, self.log_det(&var, x.size()[0])))
    }

    fn name(&self) -> String {
        "batchnorm".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// The learnable scale and shift and the running statistics of one batch-normalization layer.
pub struct BatchNormParams {
    log_gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: f64,
}

impl BatchNormParams {
    /// The identity at the start: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(q: &nn::Path, dim: i64, momentum: f64) -> Self {
        BatchNormParams {
            log_gamma: q.var("log_gamma", &[dim], nn::Init::Const(0.0)),
            beta: q.var("beta", &[dim], nn::Init::Const(0.0)),
            running_mean: q.zeros_no_train("running_mean", &[dim]),
            running_var: q.ones_no_train("running_var", &[dim]),
            momentum,
        }
    }

    pub fn bijector(&self, statistics: Statistics) -> BatchNorm {
        let momentum = match statistics {
            Statistics::Record => 1.0,
            _ => self.momentum,
        };
        BatchNorm::new(
            self.log_gamma.shallow_clone(),
            self.beta.shallow_clone(),
            self.running_mean.shallow_clone(),
            self.running_var.shallow_clone(),
            momentum,
            statistics != Statistics::Running,
        )
    }
}

fn default_momentum() -> f64 {
    0.1
}

/// `{"batchnorm": {"momentum": 0.1}}`: batch statistics while training, running averages
/// (updated with `momentum`) otherwise. Density models only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchNormConfig {
    #[serde(default = "default_momentum")]
    pub momentum: f64,
}

impl LayerSpec for BatchNormConfig {
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        let m = self.momentum;
        if !(m > 0.0 && m <= 1.0) {
            return Err(format!("batchnorm momentum must be in (0, 1], got {m}"));
        }
        Ok(())
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        anyhow::ensure!(
            site.features.is_none(),
            "batchnorm needs data batches; it cannot be part of a VAE posterior"
        );
        Ok(Box::new(BatchNormLayer(BatchNormParams::new(
            site.path,
            site.dim,
            self.momentum,
        ))))
    }

    fn label(&self) -> String {
        "batchnorm".into()
    }
}

struct BatchNormLayer(BatchNormParams);

impl FlowLayer for BatchNormLayer {
    fn names(&self) -> Vec<String> {
        vec!["batchnorm".into()]
    }

    fn bijectors(&self, input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(self.0.bijector(input.statistics))])
    }

    fn has_batch_statistics(&self) -> bool {
        true
    }
}
