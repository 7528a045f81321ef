//! Coupling layers: NICE (Dinh, Krueger & Bengio 2014, §3.2) and RealNVP (Dinh, Sohl-Dickstein &
//! Bengio 2016, eq. 4–9).
//!
//! A binary mask b splits x; the masked part passes through unchanged and conditions an
//! elementwise transformer on the rest: y = b ⊙ x + (1 − b) ⊙ g(x; θ(b ⊙ x)). The Jacobian is
//! triangular, so ln|det| = Σ_{i: b_i = 0} ln g'(x_i). NICE's additive law is g = x + t (log-det
//! 0); RealNVP's affine law is g = x ⊙ exp(s) + t with s soft-bounded (3 · tanh(s̃/3), see
//! [`Law`]) for stability. Both reuse the elementwise affine transformer. The neural-spline law
//! (Durkan et al. 2019, RQ-NSF (C)) makes g a [`RationalQuadraticSpline`] per dimension: the layer
//! takes any elementwise bijection as its transformer ([`Law`]).
//!
//! The same layer serves vectors (`[batch, D]`, mask `[D]`, an MLP conditioner) and images
//! (`[batch, C, H, W]`, a checkerboard or channel mask `[C, H, W]`, a convolutional conditioner):
//! the conditioner maps the masked input to P times the channels along axis 1, P being the
//! law's parameter count per dimension (affine: shift and raw log-scale). For vectors the layer
//! computes the same thing on the two halves only (the split form of NICE, Dinh et al. 2014, §3.2): the
//! conditioner reads the kept coordinates and emits parameters for the transformed ones
//! ([`Conditioner::forward_restricted`]), and the law runs on those alone.
//!
//! Config: `{"coupling": {"length": K, "hidden": [64, 64], "law": "affine"}}`: K layers with
//! alternating masks and MLP conditioners (the last layer zero, so each starts as the identity).
use super::{check_length, numbered, FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::conditioner::Conditioner;
use crate::bijector::elementwise::Elementwise;
use crate::bijector::law::Law;
use crate::bijector::spline::RationalQuadraticSpline;
use crate::bijector::{sum_except_batch, Bijector, FlowError, FlowResult};
use crate::nn::mlp::Mlp;
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub struct Coupling {
    /// 1 for the dimensions that pass through (and condition), 0 for the transformed ones.
    mask: Tensor,
    net: Box<dyn Conditioner>,
    law: Law,
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
    /// [`Law::params_per_dim`] (affine: shift then raw log-scale; additive: shift;
    /// spline: P blocks of D raw spline parameters); for images `[batch, C, H, W]` to
    /// `[batch, P·C, H, W]`.
    pub fn new(mask: Tensor, net: Box<dyn Conditioner>, law: Law) -> Self {
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
            law @ (Law::Additive | Law::Affine | Law::AffineUnbounded) => {
                // Masking the raw log-scale masks the bounded one too (the bound maps 0 to 0).
                let raw = (law != Law::Additive).then(|| masked(out.narrow(1, d, d)));
                let shift = masked(out.narrow(1, 0, d));
                Box::new(law.affine(shift, raw).expect("an affine-family law"))
            }
            Law::Spline { bins, bound } => {
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
        format!("{}_coupling", self.law.label())
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

fn default_hidden() -> Vec<i64> {
    vec![64, 64]
}

/// K coupling layers with alternating masks (NICE: additive, RealNVP: affine, neural spline:
/// `{"spline": {"bins": 8, "bound": 3}}`), MLP conditioners with the given hidden sizes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CouplingConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    #[serde(default = "default_hidden")]
    pub hidden: Vec<i64>,
    #[serde(default)]
    pub law: Law,
}

impl LayerSpec for CouplingConfig {
    fn validate(&self, dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)?;
        if self.hidden.iter().any(|&h| h < 1) {
            return Err(format!(
                "hidden sizes must be positive, got {:?}",
                self.hidden
            ));
        }
        if let Some(d) = dim.filter(|&d| d < 2) {
            return Err(format!("coupling needs at least 2 dimensions, got {d}"));
        }
        self.law.validate()
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let (dim, q) = (site.dim, site.path);
        let out = self.law.params_per_dim() * dim;
        let nets = (0..self.length as usize)
            .map(|j| {
                (
                    alternating_mask(dim, j, q.device()),
                    Mlp::new(&(q / j), dim, &self.hidden, out, true),
                )
            })
            .collect();
        Ok(Box::new(CouplingLayer {
            nets,
            law: self.law,
        }))
    }

    fn label(&self) -> String {
        format!("{}_coupling-k{}", self.law.label(), self.length)
    }
}

struct CouplingLayer {
    nets: Vec<(Tensor, Mlp)>,
    law: Law,
}

impl FlowLayer for CouplingLayer {
    fn names(&self) -> Vec<String> {
        numbered(
            &format!("{}_coupling", self.law.label()),
            self.nets.len() as i64,
        )
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(self
            .nets
            .iter()
            .map(|(mask, net)| {
                let mask = mask.to_kind(net.kind());
                Box::new(Coupling::new(mask, Box::new(net.shallow_clone()), self.law))
                    as Box<dyn Bijector>
            })
            .collect())
    }
}
