//! The `Bijector` trait and its composition (the TFP-style Bijector API; Dillon et al. 2017),
//! the elementwise transformers that layers share, and the numerical checks. Flow layer families
//! (planar, coupling, MAF, …) are in [`crate::flow`].
//!
//! **Direction, fixed for the whole crate:** `forward` maps base → data (the sampling
//! direction), `inverse` maps data → base (the density direction). Both return the output and the
//! per-sample log|det J| of the map they apply, in one pass:
//!
//! ```text
//! forward(x) -> (y, ln|det ∂f/∂x|)      inverse(y) -> (x, ln|det ∂f⁻¹/∂y|)
//! ```
//!
//! so `log q(y) = log q0(x) − ln|det ∂f/∂x|` = `log q0(x) + ln|det ∂f⁻¹/∂y|` (the change of
//! variables; Rezende & Mohamed 2015, eq. 5–7).
//! Inputs are batch first, `[batch, ...]`; log-dets have shape `[batch]`.
//!
//! ```no_run
//! use flowlab::bijector::{Bijector, Chain, elementwise::Affine};
//! use flowlab::flow::planar::PlanarFlow;
//! use tch::{Kind, Tensor};
//! let opts = (Kind::Double, tch::Device::Cpu);
//! let flow = Chain::new(vec![
//!     Box::new(PlanarFlow::new(Tensor::from_slice(&[1.0, 0.0]), Tensor::from_slice(&[3.0, 0.0]), Tensor::from(0.0))),
//!     Box::new(Affine::new(Tensor::zeros([2], opts), Tensor::zeros([2], opts))),
//! ]);
//! let x = Tensor::randn([5, 2], opts);
//! let (y, log_det) = flow.forward(&x, None).unwrap();
//! let (x_back, inv_log_det) = flow.inverse(&y, None).unwrap();
//! ```
pub mod checks;
pub mod conditioner;
pub mod elementwise;
pub mod law;
pub mod spline;
pub mod tanh_solve;

use tch::{TchError, Tensor};

/// Errors a bijector reports; callers branch on them (a missing inverse, a wrong shape).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{bijector} has no usable inverse: {reason}")]
    NoInverse { bijector: String, reason: String },
    #[error("{bijector}: expected input of shape [batch, {expected}], got {got:?}")]
    Shape {
        bijector: String,
        expected: i64,
        got: Vec<i64>,
    },
    #[error("{bijector}: the numerical inverse did not converge (largest residual {residual:e} after {iterations} iterations)")]
    NotConverged {
        bijector: String,
        residual: f64,
        iterations: usize,
    },
    #[error("libtorch: {0}")]
    Torch(#[from] TchError),
}

pub type FlowResult<T> = Result<T, FlowError>;

/// An invertible map with a tractable log|det J|. `context` is an optional conditioning tensor
/// (`[batch, c]`) for conditional flows; unconditional bijectors ignore it.
pub trait Bijector: Send {
    /// Base → data: `(y, ln|det ∂y/∂x|)`.
    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)>;
    /// Data → base: `(x, ln|det ∂x/∂y|)`; a bijector without a usable inverse returns
    /// [`FlowError::NoInverse`].
    fn inverse(&self, y: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)>;
    /// A short human name (`"planar"`, `"radial"`, …) used in diagnostics.
    fn name(&self) -> String;
    /// Layer-by-layer view for diagnostics; a single layer is its own only layer.
    fn layers(&self) -> Vec<&dyn Bijector>;
}

/// Checks that `x` is `[batch, dim]`, naming the bijector otherwise.
pub fn expect_dim(x: &Tensor, dim: i64, bijector: &str) -> FlowResult<()> {
    let size = x.size();
    if size.len() != 2 || size[1] != dim {
        return Err(FlowError::Shape {
            bijector: bijector.to_string(),
            expected: dim,
            got: size,
        });
    }
    Ok(())
}

/// Sums an elementwise log-derivative over every axis but the batch axis.
pub fn sum_except_batch(t: &Tensor) -> Tensor {
    if t.dim() <= 1 {
        return t.shallow_clone();
    }
    t.flatten(1, -1).sum_dim_intlist(1, false, t.kind())
}

/// Composition f = f_K ∘ … ∘ f_1: `forward` applies the layers in order, `inverse` in reverse,
/// and the log-dets add (Rezende & Mohamed 2015, eq. 7).
pub struct Chain {
    layers: Vec<Box<dyn Bijector>>,
}

impl Chain {
    pub fn new(layers: Vec<Box<dyn Bijector>>) -> Self {
        Chain { layers }
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Forward pass that also returns each layer's log-det (for per-layer diagnostics).
    pub fn forward_layers(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
    ) -> FlowResult<(Tensor, Vec<Tensor>)> {
        let mut y = x.shallow_clone();
        let mut log_dets = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (next, ld) = layer.forward(&y, context)?;
            y = next;
            log_dets.push(ld);
        }
        Ok((y, log_dets))
    }

    /// Runs the forward pass layer by layer and names the first layer whose output or log-det is
    /// not finite: `Some((index, name))`. Used after a NaN/Inf loss to say where it arose.
    pub fn first_nonfinite_layer(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
    ) -> Option<(usize, String)> {
        let mut y = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            match layer.forward(&y, context) {
                Ok((next, ld)) => {
                    if !all_finite(&next) || !all_finite(&ld) {
                        return Some((i, layer.name()));
                    }
                    y = next;
                }
                Err(_) => return Some((i, layer.name())),
            }
        }
        None
    }
}

/// True when every element of `t` is finite.
pub fn all_finite(t: &Tensor) -> bool {
    t.numel() == 0 || t.isfinite().all().int64_value(&[]) != 0
}

fn zeros_like_batch(x: &Tensor) -> Tensor {
    Tensor::zeros([x.size()[0]], (x.kind(), x.device()))
}

impl Bijector for Chain {
    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let mut y = x.shallow_clone();
        let mut total = zeros_like_batch(x);
        for layer in &self.layers {
            let (next, ld) = layer.forward(&y, context)?;
            y = next;
            total += ld;
        }
        Ok((y, total))
    }

    fn inverse(&self, y: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let mut x = y.shallow_clone();
        let mut total = zeros_like_batch(y);
        for layer in self.layers.iter().rev() {
            let (prev, ld) = layer.inverse(&x, context)?;
            x = prev;
            total += ld;
        }
        Ok((x, total))
    }

    fn name(&self) -> String {
        let names: Vec<String> = self.layers.iter().map(|l| l.name()).collect();
        format!("chain[{}]", names.join(", "))
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        self.layers.iter().flat_map(|l| l.layers()).collect()
    }
}

/// The inverse of a bijector: `Invert(f).forward = f.inverse` and vice versa. Turns a flow built
/// for density (fast inverse) into one built for sampling, e.g. MAF ↔ IAF.
pub struct Invert(pub Box<dyn Bijector>);

impl Bijector for Invert {
    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.0.inverse(x, context)
    }
    fn inverse(&self, y: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.0.forward(y, context)
    }
    fn name(&self) -> String {
        format!("invert({})", self.0.name())
    }
    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// A conditional bijector with its context fixed (an amortized layer's context computed from an
/// encoder's features): calls the inner bijector with that context, whatever it is called with.
pub struct WithContext {
    inner: Box<dyn Bijector>,
    context: Tensor,
}

impl WithContext {
    pub fn new(inner: Box<dyn Bijector>, context: Tensor) -> Self {
        WithContext { inner, context }
    }
}

impl Bijector for WithContext {
    fn forward(&self, x: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.inner.forward(x, Some(&self.context))
    }
    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.inner.inverse(y, Some(&self.context))
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}
