//! Coupling layers: NICE (Dinh et al. 2014; seed §4.2.1) and RealNVP (Dinh et al. 2016; seed
//! §4.2.2, eq. 59–60).
//!
//! A binary mask b splits x; the masked part passes through unchanged and conditions an
//! elementwise transformer on the rest: y = b ⊙ x + (1 − b) ⊙ g(x; θ(b ⊙ x)). The Jacobian is
//! triangular, so ln|det| = Σ_{i: b_i = 0} ln g'(x_i). NICE's additive law is g = x + t (log-det
//! 0); RealNVP's affine law is g = x ⊙ exp(s) + t with s = tanh-bounded (scale · tanh(s̃/scale))
//! for stability. Both reuse the elementwise [`Affine`] transformer.
//!
//! The same layer serves vectors (`[batch, D]`, mask `[D]`, an MLP conditioner) and images
//! (`[batch, C, H, W]`, a checkerboard or channel mask `[C, H, W]`, a convolutional conditioner):
//! the conditioner maps the masked input to twice the channels (shift, raw log-scale) along axis 1.
use super::elementwise::{Affine, Elementwise};
use super::{sum_except_batch, Bijector, FlowError, FlowResult};
use tch::Tensor;

/// The network of a coupling layer: masked input → shift (and raw log-scale) along axis 1.
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
    affine: bool,
}

impl Coupling {
    /// `net` maps the masked input `[batch, D]` to `[batch, 2D]` (shift, raw log-scale) for
    /// affine, `[batch, D]` (shift) for additive; for images `[batch, C, H, W]` to
    /// `[batch, 2C, H, W]` or `[batch, C, H, W]`.
    pub fn new(mask: Tensor, net: Box<dyn Conditioner>, affine: bool) -> Self {
        Coupling { mask, net, affine }
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

    fn transformer(&self, x: &Tensor) -> Affine {
        let keep = &self.mask;
        let free = 1.0 - keep;
        let out = self.net.forward(&(x * keep));
        let d = x.size()[1];
        let shift = out.narrow(1, 0, d) * &free;
        let log_scale = if self.affine {
            (out.narrow(1, d, d) / SCALE_BOUND).tanh() * SCALE_BOUND * &free
        } else {
            shift.zeros_like()
        };
        Affine::new(shift, log_scale)
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
        if self.affine {
            "affine_coupling".into()
        } else {
            "additive_coupling".into()
        }
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
