//! Coupling layers: NICE (Dinh et al. 2014; seed §4.2.1) and RealNVP (Dinh et al. 2016; seed
//! §4.2.2, eq. 59–60).
//!
//! A binary mask b splits x; the masked part passes through unchanged and conditions an
//! elementwise transformer on the rest: y = b ⊙ x + (1 − b) ⊙ g(x; θ(b ⊙ x)). The Jacobian is
//! triangular, so ln|det| = Σ_{i: b_i = 0} ln g'(x_i). NICE's additive law is g = x + t (log-det
//! 0); RealNVP's affine law is g = x ⊙ exp(s) + t with s = tanh-bounded (scale · tanh(s̃/scale))
//! for stability. Both reuse the elementwise [`Affine`] transformer.
use super::elementwise::{Affine, Elementwise};
use super::{sum_except_batch, Bijector, FlowResult};
use crate::nn::mlp::Mlp;
use tch::Tensor;

/// Bound on |s| of the affine coupling: exp(±3) per layer.
pub const SCALE_BOUND: f64 = 3.0;

pub struct Coupling {
    /// 1 for the dimensions that pass through (and condition), 0 for the transformed ones.
    mask: Tensor,
    net: Mlp,
    affine: bool,
}

impl Coupling {
    /// `net` maps the masked input `[batch, D]` to `[batch, 2D]` (shift, raw log-scale) for
    /// affine, `[batch, D]` (shift) for additive.
    pub fn new(mask: Tensor, net: Mlp, affine: bool) -> Self {
        Coupling { mask, net, affine }
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
        super::expect_dim(x, self.mask.size()[0], "coupling")?;
        let (y, ld) = self.transformer(x).forward_elementwise(x)?;
        Ok((y, sum_except_batch(&ld)))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        super::expect_dim(y, self.mask.size()[0], "coupling")?;
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
