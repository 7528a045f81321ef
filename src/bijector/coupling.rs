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
//! law's parameter count per dimension (affine: shift and raw log-scale). For vectors the layer
//! computes the same thing on the two halves only (the split form of NICE, seed §4.2.1): the
//! conditioner reads the kept coordinates and emits parameters for the transformed ones
//! ([`Conditioner::forward_restricted`]), and the law runs on those alone.
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

    /// For `[batch, D]` inputs: the output columns `outputs` of [`forward`](Self::forward) on
    /// an input that is zero except in the columns `inputs`, given as `x_in` =
    /// `[batch, |inputs|]`. The default builds the zero-filled input; an MLP skips the zeros.
    fn forward_restricted(
        &self,
        x_in: &Tensor,
        inputs: &Tensor,
        width: i64,
        outputs: &Tensor,
    ) -> Tensor {
        let full = x_in
            .new_zeros([x_in.size()[0], width], (x_in.kind(), x_in.device()))
            .index_copy(1, inputs, x_in);
        self.forward(&full).index_select(1, outputs)
    }
}

impl Conditioner for crate::nn::mlp::Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::nn::mlp::Mlp::forward(self, x)
    }

    fn forward_restricted(
        &self,
        x_in: &Tensor,
        inputs: &Tensor,
        _: i64,
        outputs: &Tensor,
    ) -> Tensor {
        crate::nn::mlp::Mlp::forward_restricted(self, x_in, inputs, outputs)
    }
}

/// Bound on |s| of the affine coupling: exp(±3) per layer.
pub const SCALE_BOUND: f64 = 3.0;

pub struct Coupling {
    /// 1 for the dimensions that pass through (and condition), 0 for the transformed ones.
    mask: Tensor,
    net: Box<dyn Conditioner>,
    law: CouplingLaw,
    /// Vectors only: the kept and the transformed coordinates, and the conditioner outputs the
    /// transformed ones use (P blocks).
    halves: Option<Halves>,
}

struct Halves {
    kept: Tensor,
    free: Tensor,
    outputs: Tensor,
}

impl Coupling {
    /// `net` maps the masked input `[batch, D]` to `[batch, P·D]` with P =
    /// [`CouplingLaw::params_per_dim`] (affine: shift then raw log-scale; additive: shift;
    /// spline: P blocks of D raw spline parameters); for images `[batch, C, H, W]` to
    /// `[batch, P·C, H, W]`.
    pub fn new(mask: Tensor, net: Box<dyn Conditioner>, law: CouplingLaw) -> Self {
        let halves = (mask.dim() == 1).then(|| {
            let d = mask.size()[0];
            let kept = mask.gt(0.5).nonzero().view([-1]);
            let free = mask.le(0.5).nonzero().view([-1]);
            let outputs = Tensor::cat(
                &(0..law.params_per_dim())
                    .map(|p| &free + p * d)
                    .collect::<Vec<_>>(),
                0,
            );
            Halves {
                kept,
                free,
                outputs,
            }
        });
        let halves = halves.filter(|h| h.kept.size()[0] > 0 && h.free.size()[0] > 0);
        Coupling {
            mask,
            net,
            law,
            halves,
        }
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

    /// Applies the law to `x` (the transformer's parameters come from the part `x` shares with
    /// the layer's output, so this serves both directions): (output, log|det| per row).
    fn apply(&self, x: &Tensor, inverse: bool) -> FlowResult<(Tensor, Tensor)> {
        let run = |t: Box<dyn Elementwise>, v: &Tensor| {
            if inverse {
                t.inverse_elementwise(v)
            } else {
                t.forward_elementwise(v)
            }
        };
        if let Some(h) = &self.halves {
            let out = self.net.forward_restricted(
                &x.index_select(1, &h.kept),
                &h.kept,
                x.size()[1],
                &h.outputs,
            );
            let part = x.index_select(1, &h.free);
            let (y, ld) = run(self.transformer(out, h.free.size()[0], None), &part)?;
            return Ok((x.index_copy(1, &h.free, &y), sum_except_batch(&ld)));
        }
        let keep = &self.mask;
        let free = 1.0 - keep;
        let out = self.net.forward(&(x * keep));
        let (y, ld) = run(self.transformer(out, x.size()[1], Some(free)), x)?;
        Ok((y, sum_except_batch(&ld)))
    }

    /// The law with parameters `out` (`[batch, P·d, ...]`) for `d` coordinates; with `free`,
    /// only where it is 1 (the identity elsewhere).
    fn transformer(&self, out: Tensor, d: i64, free: Option<Tensor>) -> Box<dyn Elementwise> {
        let masked = |t: Tensor| match &free {
            Some(f) => t * f,
            None => t,
        };
        match self.law {
            CouplingLaw::Additive => {
                let shift = masked(out.narrow(1, 0, d));
                let zero = shift.zeros_like();
                Box::new(Affine::new(shift, zero))
            }
            CouplingLaw::Affine => {
                let shift = masked(out.narrow(1, 0, d));
                let log_scale = masked((out.narrow(1, d, d) / SCALE_BOUND).tanh() * SCALE_BOUND);
                Box::new(Affine::new(shift, log_scale))
            }
            CouplingLaw::Spline { bins, bound } => {
                // [batch, P·D, ...] → [batch, P, D, ...] → parameters last: [batch, D, ..., P].
                let mut shape = out.size();
                shape[1] = d;
                shape.insert(1, self.law.params_per_dim());
                let raw = out.view(&shape[..]).movedim([1], [shape.len() as i64 - 1]);
                let inner = RationalQuadraticSpline::from_raw(&raw, bins, bound);
                match free {
                    Some(free) => Box::new(Masked { inner, free }),
                    None => Box::new(inner),
                }
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
        self.apply(x, false)
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.check(y)?;
        // The masked part of y equals that of x, so the transformer's parameters are the same.
        self.apply(y, true)
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
