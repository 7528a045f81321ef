//! The multi-scale architecture of RealNVP (Dinh et al. 2016, §3.6) and Glow (Kingma & Dhariwal
//! 2018, §3, Fig. 2): the flow works on images, and after each level half of the channels are
//! factored out, modelled by a learned prior, and not transformed further.
//!
//! In the density direction (`inverse`), level l maps h_l to h'_l, splits h'_l into (z_l, h_{l+1})
//! along channels, and the factored half goes through a [`SplitPrior`]: ε_l = (z_l − μ(h_{l+1}))
//! · exp(−ln σ(h_{l+1})), Glow's "learned prior" per level (a conditional Gaussian) written as an
//! affine bijector conditioned on the kept half, so the base stays N(0, I). The last level's
//! output passes a learned per-channel affine map (the top prior). The base vector is the
//! concatenation of every ε_l and the top, flattened. ln|det| sums every level's.
use crate::bijector::conditioner::Conditioner;
use crate::bijector::law::bounded_log_scale;
use crate::bijector::{Bijector, Chain, FlowError, FlowResult};
use tch::Tensor;

/// z = ε ⊙ exp(ln σ(h)) + μ(h) with (μ, ln σ) = NN(h), h the kept half (passed as context).
pub struct SplitPrior {
    pub net: Box<dyn Conditioner>,
}

impl SplitPrior {
    fn params(&self, h: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let h = h.ok_or_else(|| FlowError::NoInverse {
            bijector: "split prior".into(),
            reason: "needs the kept half as context".into(),
        })?;
        let out = self.net.forward(h);
        let c = out.size()[1] / 2;
        // Bounded like the couplings' scales, for the same stability reason.
        Ok((out.narrow(1, 0, c), bounded_log_scale(&out.narrow(1, c, c))))
    }
}

impl Bijector for SplitPrior {
    fn forward(&self, eps: &Tensor, h: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let (mu, ls) = self.params(h)?;
        Ok((eps * ls.exp() + mu, crate::bijector::sum_except_batch(&ls)))
    }

    fn inverse(&self, z: &Tensor, h: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let (mu, ls) = self.params(h)?;
        Ok((
            (z - mu) * (-&ls).exp(),
            -crate::bijector::sum_except_batch(&ls),
        ))
    }

    fn name(&self) -> String {
        "split_prior".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

pub struct Level {
    /// The level's layers in forward (base → data) order, on `[B, C, H, W]`.
    pub flow: Chain,
    /// Present on every level but the last.
    pub split: Option<SplitPrior>,
}

/// A multi-scale flow on flat `[B, C·H·W]` vectors (the data's layout in flowlab).
pub struct MultiScale {
    shape: [i64; 3],
    levels: Vec<Level>,
    top: Box<dyn Bijector>,
    /// Shapes `[C, H, W]` of each level's factored-out part and of the top, in base order.
    pieces: Vec<Vec<i64>>,
}

impl MultiScale {
    /// Builds the flow and works out the base layout by passing one zero image through it.
    pub fn new(
        shape: [i64; 3],
        levels: Vec<Level>,
        top: Box<dyn Bijector>,
        options: (tch::Kind, tch::Device),
    ) -> FlowResult<Self> {
        let mut m = MultiScale {
            shape,
            levels,
            top,
            pieces: vec![],
        };
        let probe = Tensor::zeros([1, shape.iter().product::<i64>()], options);
        let (_, pieces) = tch::no_grad(|| m.density(&probe))?;
        m.pieces = pieces.iter().map(|p| p.size()[1..].to_vec()).collect();
        Ok(m)
    }

    /// The same with a known base layout (from [`MultiScale::pieces`] of an earlier build).
    pub fn with_pieces(
        shape: [i64; 3],
        levels: Vec<Level>,
        top: Box<dyn Bijector>,
        pieces: Vec<Vec<i64>>,
    ) -> Self {
        MultiScale {
            shape,
            levels,
            top,
            pieces,
        }
    }

    /// Shapes `[C, H, W]` of the factored-out parts and the top, in base order.
    pub fn pieces(&self) -> &[Vec<i64>] {
        &self.pieces
    }

    /// Data → base, keeping the unflattened pieces.
    fn density(&self, x: &Tensor) -> FlowResult<(Tensor, Vec<Tensor>)> {
        let [c, h, w] = self.shape;
        crate::bijector::expect_dim(x, c * h * w, "multiscale")?;
        let b = x.size()[0];
        let mut h = x.reshape([b, c, h, w]);
        let mut ld = Tensor::zeros([b], (x.kind(), x.device()));
        let mut pieces = Vec::new();
        for level in &self.levels {
            let (next, l) = level.flow.inverse(&h, None)?;
            ld += l;
            h = next;
            if let Some(split) = &level.split {
                let ch = h.size()[1];
                let (z, keep) = (h.narrow(1, 0, ch / 2), h.narrow(1, ch / 2, ch - ch / 2));
                let (eps, l) = split.inverse(&z, Some(&keep))?;
                ld += l;
                pieces.push(eps);
                h = keep;
            }
        }
        let (top, l) = self.top.inverse(&h, None)?;
        pieces.push(top);
        Ok((ld + l, pieces))
    }
}

impl Bijector for MultiScale {
    fn forward(&self, u: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let sizes: Vec<i64> = self.pieces.iter().map(|p| p.iter().product()).collect();
        crate::bijector::expect_dim(u, sizes.iter().sum(), "multiscale")?;
        let b = u.size()[0];
        let parts = u.split_with_sizes(&sizes, 1);
        let shaped = |i: usize| parts[i].reshape([&[b][..], &self.pieces[i][..]].concat());
        let (mut h, mut ld) = self.top.forward(&shaped(parts.len() - 1), None)?;
        let mut piece = parts.len() - 1;
        for level in self.levels.iter().rev() {
            if let Some(split) = &level.split {
                piece -= 1;
                let (z, l) = split.forward(&shaped(piece), Some(&h))?;
                ld += l;
                h = Tensor::cat(&[z, h], 1);
            }
            let (next, l) = level.flow.forward(&h, None)?;
            ld += l;
            h = next;
        }
        Ok((h.reshape([b, -1]), ld))
    }

    fn inverse(&self, x: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let (ld, pieces) = self.density(x)?;
        let b = x.size()[0];
        let flat: Vec<Tensor> = pieces.iter().map(|p| p.reshape([b, -1])).collect();
        Ok((Tensor::cat(&flat, 1), ld))
    }

    fn name(&self) -> String {
        format!("multiscale({} levels)", self.levels.len())
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}
