//! Coupling layers: NICE (Dinh et al. 2014; seed §4.2.1) and RealNVP (Dinh et al. 2016; seed
//! §4.2.2, eq. 59–60).
//!
//! A binary mask b splits x; the masked part passes through unchanged and conditions an
//! elementwise transformer on the rest: y = b ⊙ x + (1 − b) ⊙ g(x; θ(b ⊙ x)). The Jacobian is
//! triangular, so ln|det| = Σ_{i: b_i = 0} ln g'(x_i). NICE's additive law is g = x + t (log-det
//! 0); RealNVP's affine law is g = x ⊙ exp(s) + t with s = tanh-bounded (scale · tanh(s̃/scale))
//! for stability. Both reuse the elementwise [`Affine`] transformer. The neural-spline law
//! (Durkan et al. 2019, RQ-NSF (C)) makes g a [`RationalQuadraticSpline`] per dimension: the layer
//! takes any elementwise bijection as its transformer ([`CouplingLaw`]).
//!
//! The same layer serves vectors (`[batch, D]`, mask `[D]`, an MLP conditioner) and images
//! (`[batch, C, H, W]`, a checkerboard or channel mask `[C, H, W]`, a convolutional conditioner):
//! the conditioner maps the masked input to P times the channels along axis 1, P being the
//! law's parameter count per dimension (affine: shift and raw log-scale).
use super::elementwise::{Affine, Elementwise};
use super::spline::{raw_params_per_element, RationalQuadraticSpline};
use super::{sum_except_batch, Bijector, FlowError, FlowResult};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The elementwise law of a coupling layer, as written in a config: `"additive"`, `"affine"`,
/// or `{"spline": {"bins": 8, "bound": 3.0}}`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CouplingLaw {
    /// NICE: y₂ = x₂ + t(x₁), volume preserving.
    Additive,
    /// RealNVP: y₂ = x₂ ⊙ exp(s(x₁)) + t(x₁), s tanh-bounded.
    #[default]
    Affine,
    /// Neural spline flow: y₂ = RQS(x₂; θ(x₁)) with `bins` bins on [−bound, bound], identity
    /// outside.
    Spline {
        #[serde(default = "default_bins")]
        bins: i64,
        #[serde(default = "default_bound")]
        bound: f64,
    },
}

fn default_bins() -> i64 {
    8
}

fn default_bound() -> f64 {
    3.0
}

impl CouplingLaw {
    /// How many conditioner outputs each transformed dimension needs.
    pub fn params_per_dim(&self) -> i64 {
        match self {
            CouplingLaw::Additive => 1,
            CouplingLaw::Affine => 2,
            CouplingLaw::Spline { bins, .. } => raw_params_per_element(*bins),
        }
    }

    /// A config's law, or why it cannot be built.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            CouplingLaw::Spline { bins, bound } if bins < 2 => Err(format!(
                "spline bins must be at least 2, got {bins} (bound {bound})"
            )),
            CouplingLaw::Spline { bound, .. } if !(bound.is_finite() && bound > 0.0) => Err(
                format!("spline bound must be positive and finite, got {bound}"),
            ),
            _ => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            CouplingLaw::Additive => "additive_coupling",
            CouplingLaw::Affine => "affine_coupling",
            CouplingLaw::Spline { .. } => "spline_coupling",
        }
    }
}

/// The network of a coupling layer: masked input → the law's parameters along axis 1.
pub trait Conditioner: Send {
    fn forward(&self, x: &Tensor) -> Tensor;
}

impl Conditioner for crate::nn::mlp::Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::nn::mlp::Mlp::forward(self, x)
    }
}

/// Bound on |s| of the affine coupling: exp(±3) per layer.
pub const SCALE_BOUND: f64 = 3.0;

pub struct Coupling {
    /// 1 for the dimensions that pass through (and condition), 0 for the transformed ones.
    mask: Tensor,
    net: Box<dyn Conditioner>,
    law: CouplingLaw,
}

impl Coupling {
    /// `net` maps the masked input `[batch, D]` to `[batch, P·D]` with P =
    /// [`CouplingLaw::params_per_dim`] (affine: shift then raw log-scale; additive: shift;
    /// spline: P blocks of D raw spline parameters); for images `[batch, C, H, W]` to
    /// `[batch, P·C, H, W]`.
    pub fn new(mask: Tensor, net: Box<dyn Conditioner>, law: CouplingLaw) -> Self {
        Coupling { mask, net, law }
    }

    fn check(&self, x: &Tensor) -> FlowResult<()> {
        let size = x.size();
        if size.len() < 2 || size[1..] != self.mask.size()[..] {
            return Err(FlowError::Shape {
                bijector: format!("coupling (mask {:?})", self.mask.size()),
                expected: self.mask.size()[0],
                got: size,
            });
        }
        Ok(())
    }

    fn transformer(&self, x: &Tensor) -> Box<dyn Elementwise> {
        let keep = &self.mask;
        let free = 1.0 - keep;
        let out = self.net.forward(&(x * keep));
        let d = x.size()[1];
        match self.law {
            CouplingLaw::Additive => {
                let shift = out.narrow(1, 0, d) * &free;
                let zero = shift.zeros_like();
                Box::new(Affine::new(shift, zero))
            }
            CouplingLaw::Affine => {
                let shift = out.narrow(1, 0, d) * &free;
                let log_scale = (out.narrow(1, d, d) / SCALE_BOUND).tanh() * SCALE_BOUND * &free;
                Box::new(Affine::new(shift, log_scale))
            }
            CouplingLaw::Spline { bins, bound } => {
                // [batch, P·D, ...] → [batch, P, D, ...] → parameters last: [batch, D, ..., P].
                let mut shape = out.size();
                shape[1] = d;
                shape.insert(1, self.law.params_per_dim());
                let raw = out.view(&shape[..]).movedim([1], [shape.len() as i64 - 1]);
                Box::new(Masked {
                    inner: RationalQuadraticSpline::from_raw(&raw, bins, bound),
                    free,
                })
            }
        }
    }
}

/// An elementwise map applied where `free` is 1 and the identity where it is 0.
struct Masked<T: Elementwise> {
    inner: T,
    free: Tensor,
}

impl<T: Elementwise> Elementwise for Masked<T> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let (y, ld) = self.inner.forward_elementwise(x)?;
        Ok((x + (y - x) * &self.free, ld * &self.free))
    }
    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let (x, ld) = self.inner.inverse_elementwise(y)?;
        Ok((y + (x - y) * &self.free, ld * &self.free))
    }
}

impl Bijector for Coupling {
    fn forward(&self, x: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.check(x)?;
        let (y, ld) = self.transformer(x).forward_elementwise(x)?;
        Ok((y, sum_except_batch(&ld)))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.check(y)?;
        // The masked part of y equals that of x, so the transformer's parameters are the same.
        let (x, ld) = self.transformer(y).inverse_elementwise(y)?;
        Ok((x, sum_except_batch(&ld)))
    }

    fn name(&self) -> String {
        self.law.name().into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// Alternating masks over D dimensions: layer l keeps the dimensions whose index has parity l.
pub fn alternating_mask(dim: i64, layer: usize, device: tch::Device) -> Tensor {
    let v: Vec<f32> = (0..dim)
        .map(|i| {
            if (i as usize + layer).is_multiple_of(2) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_slice(&v).to_device(device)
}
