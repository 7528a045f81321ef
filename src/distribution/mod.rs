//! Distributions over `[batch, ...]` tensors: the standard and diagonal normals used as bases and
//! posteriors, and [`TransformedDistribution`], a base pushed through a bijector (change of variables; Rezende & Mohamed 2015, §3.1).
use crate::bijector::{Bijector, FlowResult};
use tch::{Device, Kind, Tensor};

/// ln 2π, the one constant of every Gaussian log-density here.
pub const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// ln N(z; μ, diag(exp(log_var))) summed over the last axis (per row).
pub fn diag_normal_log_prob(z: &Tensor, mean: &Tensor, log_var: &Tensor) -> Tensor {
    ((z - mean).square() * (-log_var).exp() + log_var + LN_2PI).sum_dim_intlist(-1, false, z.kind())
        * -0.5
}

/// ln N(z; 0, I) summed over the last axis (per row).
pub fn standard_normal_log_prob(z: &Tensor) -> Tensor {
    (z.square() + LN_2PI).sum_dim_intlist(-1, false, z.kind()) * -0.5
}

pub trait Distribution: Send {
    /// Shape of one event (without the batch axis).
    fn event_shape(&self) -> Vec<i64>;
    /// ln p(x) per sample, `[batch]`.
    fn log_prob(&self, x: &Tensor) -> FlowResult<Tensor>;
    /// `n` reparameterized samples (differentiable in the parameters).
    fn rsample(&self, n: i64) -> FlowResult<Tensor>;
    /// `n` samples without gradient.
    fn sample(&self, n: i64) -> FlowResult<Tensor> {
        tch::no_grad(|| self.rsample(n))
    }
    /// Reparameterized samples with their log-density; overridden where one pass gives both.
    fn rsample_with_log_prob(&self, n: i64) -> FlowResult<(Tensor, Tensor)> {
        let x = self.rsample(n)?;
        let lp = self.log_prob(&x)?;
        Ok((x, lp))
    }
}

fn sum_event(t: &Tensor) -> Tensor {
    crate::bijector::sum_except_batch(t)
}

/// N(0, I) over events of a given shape.
pub struct StandardNormal {
    shape: Vec<i64>,
    kind: Kind,
    device: Device,
}

impl StandardNormal {
    pub fn new(shape: Vec<i64>, kind: Kind, device: Device) -> Self {
        StandardNormal {
            shape,
            kind,
            device,
        }
    }
}

impl Distribution for StandardNormal {
    fn event_shape(&self) -> Vec<i64> {
        self.shape.clone()
    }
    fn log_prob(&self, x: &Tensor) -> FlowResult<Tensor> {
        let d: i64 = self.shape.iter().product();
        Ok(sum_event(&x.square()) * -0.5 - 0.5 * LN_2PI * d as f64)
    }
    fn rsample(&self, n: i64) -> FlowResult<Tensor> {
        let mut size = vec![n];
        size.extend(&self.shape);
        Ok(Tensor::randn(size, (self.kind, self.device)))
    }
}

/// The standard logistic distribution per coordinate, NICE's prior (Dinh et al. 2014, §3.4):
/// ln p(x) = −Σ_i [softplus(x_i) + softplus(−x_i)]; sampled as ln u − ln(1 − u), u ~ U(0, 1).
pub struct StandardLogistic {
    shape: Vec<i64>,
    kind: Kind,
    device: Device,
}

impl StandardLogistic {
    pub fn new(shape: Vec<i64>, kind: Kind, device: Device) -> Self {
        StandardLogistic {
            shape,
            kind,
            device,
        }
    }
}

impl Distribution for StandardLogistic {
    fn event_shape(&self) -> Vec<i64> {
        self.shape.clone()
    }
    fn log_prob(&self, x: &Tensor) -> FlowResult<Tensor> {
        Ok(-sum_event(&(x.softplus() + (-x).softplus())))
    }
    fn rsample(&self, n: i64) -> FlowResult<Tensor> {
        let mut size = vec![n];
        size.extend(&self.shape);
        let u = Tensor::rand(size, (self.kind, self.device)).clamp(1e-7, 1.0 - 1e-7);
        let rest: Tensor = 1.0 - &u;
        Ok(u.log() - rest.log())
    }
}

/// N(μ, diag σ²) with `loc` and `log_scale` of shape `[d]` (shared) or `[batch, d]` (amortized,
/// e.g. an encoder's output; then `rsample(n)` needs n = batch).
pub struct DiagNormal {
    pub loc: Tensor,
    pub log_scale: Tensor,
}

impl DiagNormal {
    pub fn new(loc: Tensor, log_scale: Tensor) -> Self {
        DiagNormal { loc, log_scale }
    }
}

impl Distribution for DiagNormal {
    fn event_shape(&self) -> Vec<i64> {
        vec![*self.loc.size().last().unwrap_or(&1)]
    }
    fn log_prob(&self, x: &Tensor) -> FlowResult<Tensor> {
        let z = (x - &self.loc) * (-&self.log_scale).exp();
        let per_dim = z.square() * -0.5 - &self.log_scale - 0.5 * LN_2PI;
        Ok(sum_event(&per_dim.expand_as(x)))
    }
    fn rsample(&self, n: i64) -> FlowResult<Tensor> {
        let eps = Tensor::randn(
            [n, self.event_shape()[0]],
            (self.loc.kind(), self.loc.device()),
        );
        Ok(&self.loc + self.log_scale.exp() * eps)
    }
    fn rsample_with_log_prob(&self, n: i64) -> FlowResult<(Tensor, Tensor)> {
        let eps = Tensor::randn(
            [n, self.event_shape()[0]],
            (self.loc.kind(), self.loc.device()),
        );
        let x = &self.loc + self.log_scale.exp() * &eps;
        let per_dim = eps.square() * -0.5 - &self.log_scale - 0.5 * LN_2PI;
        Ok((x, sum_event(&per_dim)))
    }
}

/// A base distribution pushed forward through a bijector (TFP's `TransformedDistribution`).
/// `log_prob(y) = base.log_prob(f⁻¹(y)) + ln|det ∂f⁻¹/∂y|`; sampling is `f(base.sample())`.
pub struct TransformedDistribution {
    pub base: Box<dyn Distribution>,
    pub bijector: Box<dyn Bijector>,
}

impl TransformedDistribution {
    pub fn new(base: Box<dyn Distribution>, bijector: Box<dyn Bijector>) -> Self {
        TransformedDistribution { base, bijector }
    }
}

impl Distribution for TransformedDistribution {
    fn event_shape(&self) -> Vec<i64> {
        self.base.event_shape()
    }
    fn log_prob(&self, y: &Tensor) -> FlowResult<Tensor> {
        let (x, ld) = self.bijector.inverse(y, None)?;
        Ok(self.base.log_prob(&x)? + ld)
    }
    fn rsample(&self, n: i64) -> FlowResult<Tensor> {
        let x = self.base.rsample(n)?;
        Ok(self.bijector.forward(&x, None)?.0)
    }
    /// One forward pass: ln q(y) = ln q0(x) − ln|det ∂f/∂x| (ibid.), no inverse needed.
    fn rsample_with_log_prob(&self, n: i64) -> FlowResult<(Tensor, Tensor)> {
        let (x, lp0) = self.base.rsample_with_log_prob(n)?;
        let (y, ld) = self.bijector.forward(&x, None)?;
        Ok((y, lp0 - ld))
    }
}
