//! Masked autoregressive flow (MAF; Papamakarios et al. 2017; seed §4.2.3, eq. 44–49) and, by
//! inversion, the inverse autoregressive flow (IAF; Kingma et al. 2016; seed §4.1.2).
//!
//! With u the base variable and x the data, MAF sets x_i = u_i exp(α_i) + μ_i where
//! (μ_i, α_i) = MADE(x_{<i}). So the density direction (data → base, `inverse`) is one MADE pass:
//! u = (x − μ(x)) ⊙ exp(−α(x)), ln|det ∂u/∂x| = −Σ_i α_i (eq. 48–49), while sampling
//! (`forward`) needs D sequential passes. `Invert(MaskedAutoregressive)` is the IAF: one pass to
//! sample, D passes for density.
//!
//! The elementwise transformer is [`Affine`]; any [`Elementwise`] with two parameters per
//! dimension would slot in the same way.
use super::elementwise::{Affine, Elementwise};
use super::{expect_dim, sum_except_batch, Bijector, FlowResult};
use crate::nn::made::Made;
use tch::Tensor;

pub struct MaskedAutoregressive {
    made: Made,
}

impl MaskedAutoregressive {
    /// `made` must output 2 parameters per dimension (shift, log-scale).
    pub fn new(made: Made) -> Self {
        MaskedAutoregressive { made }
    }

    /// The elementwise map u ↦ x given the conditioner's outputs on (a guess of) x.
    fn transformer(&self, x: &Tensor, context: Option<&Tensor>) -> Affine {
        let p = self.made.forward(x, context);
        Affine::new(p.select(1, 0), p.select(1, 1))
    }
}

impl Bijector for MaskedAutoregressive {
    /// Base → data, D sequential passes: after pass k the first k dimensions in the order are final.
    fn forward(&self, u: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(u, self.made.dim(), "maf")?;
        // Pass k reads dimensions of order < k, all final after pass k − 1; so pass D computes
        // every dimension (and its log-scale) from the final x.
        let mut x = u.zeros_like();
        let mut ld = u.zeros_like();
        for _ in 0..self.made.dim() {
            (x, ld) = self.transformer(&x, context).forward_elementwise(u)?;
        }
        Ok((x, sum_except_batch(&ld)))
    }

    /// Data → base, one pass.
    fn inverse(&self, x: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(x, self.made.dim(), "maf")?;
        let (u, ld) = self.transformer(x, context).inverse_elementwise(x)?;
        Ok((u, sum_except_batch(&ld)))
    }

    fn name(&self) -> String {
        "maf".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// The IAF step of the IAF paper (Kingma et al. 2016, eq. 11–14; seed eq. 51), in its gated,
/// LSTM-like form: (m, s) = MADE(z, h), σ = sigmoid(s + forget_bias),
/// z′ = σ ⊙ z + (1 − σ) ⊙ m, ln|det ∂z′/∂z| = Σ_i ln σ_i.
///
/// This is the affine transformer with log-scale ln σ and shift (1 − σ) ⊙ m, computed from the
/// layer's own input: sampling (`forward`) is one MADE pass, density (`inverse`) D passes. The
/// forget bias (1 here, as in the paper's code) starts σ near 0.73 so early steps stay close to
/// the identity. `h` (the context) is the encoder's summary of x in an amortized posterior.
pub struct GatedIaf {
    made: Made,
    forget_bias: f64,
}

impl GatedIaf {
    /// `made` must output 2 parameters per dimension (m, s).
    pub fn new(made: Made, forget_bias: f64) -> Self {
        GatedIaf { made, forget_bias }
    }

    fn transformer(&self, z: &Tensor, context: Option<&Tensor>) -> Affine {
        let p = self.made.forward(z, context);
        let s = p.select(1, 1) + self.forget_bias;
        // 1 − σ(s) = σ(−s), computed without cancellation.
        Affine::new(p.select(1, 0) * (-&s).sigmoid(), s.log_sigmoid())
    }
}

impl Bijector for GatedIaf {
    fn forward(&self, z: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(z, self.made.dim(), "iaf")?;
        let (y, ld) = self.transformer(z, context).forward_elementwise(z)?;
        Ok((y, sum_except_batch(&ld)))
    }

    fn inverse(&self, y: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(y, self.made.dim(), "iaf")?;
        let mut z = y.zeros_like();
        let mut ld = y.zeros_like();
        for _ in 0..self.made.dim() {
            (z, ld) = self.transformer(&z, context).inverse_elementwise(y)?;
        }
        Ok((z, sum_except_batch(&ld)))
    }

    fn name(&self) -> String {
        "iaf".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}
