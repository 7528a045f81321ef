//! Elementwise bijections y_i = f(x_i): affine, PReLU (the Bijector API's example; Dillon et al. 2017), sigmoid, tanh, exp.
//!
//! Each implements [`Elementwise`], which returns the elementwise log-derivative ln|f'(x_i)|
//! rather than its sum, so coupling and autoregressive layers can use any of them as their
//! transformer; every `Elementwise` is also a [`Bijector`] whose log-det is the sum over features.
use super::{sum_except_batch, Bijector, FlowResult};
use tch::Tensor;

/// A bijection applied to each element independently.
pub trait Elementwise: Send {
    fn name(&self) -> String;
    /// `(f(x), ln|f'(x)|)`, both shaped like `x`.
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)>;
    /// `(f⁻¹(y), ln|(f⁻¹)'(y)|)`, both shaped like `y`.
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)>;
}

impl<T: Elementwise> Bijector for T {
    fn forward(&self, x: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let (y, ld) = self.forward_elementwise(x)?;
        Ok((y, sum_except_batch(&ld)))
    }
    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let (x, ld) = self.inverse_elementwise(y)?;
        Ok((x, sum_except_batch(&ld)))
    }
    fn name(&self) -> String {
        Elementwise::name(self)
    }
    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// y = shift + exp(log_scale) ⊙ x. Parameters broadcast against x (`[d]` free, `[batch, d]`
/// amortized).
pub struct Affine {
    pub shift: Tensor,
    pub log_scale: Tensor,
}

impl Affine {
    pub fn new(shift: Tensor, log_scale: Tensor) -> Self {
        Affine { shift, log_scale }
    }
}

impl Elementwise for Affine {
    fn name(&self) -> String {
        "affine".into()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let y = &self.shift + self.log_scale.exp() * x;
        let ld = self.log_scale.expand_as(&y);
        Ok((y, ld))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let x = (y - &self.shift) * (-&self.log_scale).exp();
        let ld = (-&self.log_scale).expand_as(&x);
        Ok((x, ld))
    }
}

/// Parametrized ReLU (He et al. 2015) as a bijector: f(x) = x for x ≥ 0, αx otherwise, α ∈ (0, 1].
/// f⁻¹(y) = y for y ≥ 0, y/α otherwise; ln|(f⁻¹)'(y)| = −ln α where y < 0.
/// `alpha` must already be in (0, 1] (a learnable layer passes sigmoid(a)).
pub struct PReLU {
    pub alpha: Tensor,
}

impl PReLU {
    pub fn new(alpha: Tensor) -> Self {
        PReLU { alpha }
    }
}

impl Elementwise for PReLU {
    fn name(&self) -> String {
        "prelu".into()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let neg = x.lt(0.0);
        let y = x.where_self(&neg.logical_not(), &(&self.alpha * x));
        let ld = self
            .alpha
            .log()
            .expand_as(x)
            .where_self(&neg, &x.zeros_like());
        Ok((y, ld))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let neg = y.lt(0.0);
        let x = y.where_self(&neg.logical_not(), &(y / &self.alpha));
        let ld = (-self.alpha.log())
            .expand_as(y)
            .where_self(&neg, &y.zeros_like());
        Ok((x, ld))
    }
}

/// Logistic sigmoid, ℝ → (0, 1). ln σ'(x) = −softplus(−x) − softplus(x).
pub struct Sigmoid;

impl Elementwise for Sigmoid {
    fn name(&self) -> String {
        "sigmoid".into()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let ld = -(-x).softplus() - x.softplus();
        Ok((x.sigmoid(), ld))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        // logit(y); outside (0, 1) the result is NaN, i.e. zero density.
        let log_y = y.log();
        let log_1my = (-y).log1p();
        Ok((&log_y - &log_1my, -log_y - log_1my))
    }
}

/// Hyperbolic tangent, ℝ → (−1, 1). ln tanh'(x) = 2 (ln 2 − x − softplus(−2x)), stable for large |x|.
pub struct Tanh;

impl Elementwise for Tanh {
    fn name(&self) -> String {
        "tanh".into()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let ld = (-x - (x * -2.0).softplus() + std::f64::consts::LN_2) * 2.0;
        Ok((x.tanh(), ld))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let x = y.atanh();
        // ln (d atanh/dy) = −ln(1 − y²)
        let ld = -(-y.square()).log1p();
        Ok((x, ld))
    }
}

/// Exponential, ℝ → (0, ∞). ln exp'(x) = x.
pub struct Exp;

impl Elementwise for Exp {
    fn name(&self) -> String {
        "exp".into()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        Ok((x.exp(), x.shallow_clone()))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let x = y.log();
        let ld = -&x;
        Ok((x, ld))
    }
}
