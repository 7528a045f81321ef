//! Invertible linear maps over the feature axis — Glow's invertible 1×1 convolution (Kingma &
//! Dhariwal 2018, §3.2) for vectors, where a "pixel" is one sample — and ActNorm (§3.1).
//!
//! `InvertibleLinear` maps x ↦ W x with ln|det| = ln|det W| (a per-layer constant). Two forms:
//! - plain: W is a free matrix; ln|det W| and W⁻¹ cost O(D³) per call;
//! - LU (Glow eq. 10): W = P L (U + diag(s)), P a fixed permutation, L unit lower triangular, U
//!   strictly upper triangular, so ln|det W| = Σ ln|s_i| costs O(D) and W⁻¹ is two triangular
//!   solves.
//!
//! Both start from the same random rotation, so at initialization they are the same map.
//!
//! ActNorm (§3.1) is the elementwise [`Affine`](super::elementwise::Affine) map with a
//! data-dependent initialization; see `nn::flow_params`.
use super::{expect_dim, Bijector, FlowResult};
use tch::Tensor;

/// How the weight is given.
pub enum LinearWeight {
    Plain(Tensor),
    /// (P, L raw, U raw, log|s|, sign s): L and U are masked to their triangles here.
    Lu {
        p: Tensor,
        lower: Tensor,
        upper: Tensor,
        log_s: Tensor,
        sign_s: Tensor,
    },
}

pub struct InvertibleLinear {
    weight: LinearWeight,
}

impl InvertibleLinear {
    pub fn new(weight: LinearWeight) -> Self {
        InvertibleLinear { weight }
    }

    /// The matrix W (D × D).
    pub fn matrix(&self) -> Tensor {
        match &self.weight {
            LinearWeight::Plain(w) => w.shallow_clone(),
            LinearWeight::Lu {
                p,
                lower,
                upper,
                log_s,
                sign_s,
            } => {
                let d = log_s.size()[0];
                let eye = Tensor::eye(d, (log_s.kind(), log_s.device()));
                let l = lower.tril(-1) + &eye;
                let u = upper.triu(1) + (sign_s * log_s.exp()).diag_embed(0, -2, -1);
                p.matmul(&l).matmul(&u)
            }
        }
    }

    /// ln|det W|.
    pub fn log_abs_det(&self) -> Tensor {
        match &self.weight {
            LinearWeight::Plain(w) => w.slogdet().1,
            LinearWeight::Lu { log_s, .. } => log_s.sum(log_s.kind()),
        }
    }

    fn dim(&self) -> i64 {
        match &self.weight {
            LinearWeight::Plain(w) => w.size()[0],
            LinearWeight::Lu { log_s, .. } => log_s.size()[0],
        }
    }
}

impl Bijector for InvertibleLinear {
    fn forward(&self, x: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(x, self.dim(), "linear")?;
        let y = x.matmul(&self.matrix().tr());
        let ld = self
            .log_abs_det()
            .to_kind(x.kind())
            .expand([x.size()[0]], false);
        Ok((y, ld))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(y, self.dim(), "linear")?;
        let x = match &self.weight {
            LinearWeight::Plain(w) => Tensor::linalg_solve(w, &y.tr(), true).tr(),
            LinearWeight::Lu {
                p,
                lower,
                upper,
                log_s,
                sign_s,
            } => {
                // W x = y with W = P L U': x = U'⁻¹ L⁻¹ Pᵀ y, two triangular solves.
                let d = log_s.size()[0];
                let eye = Tensor::eye(d, (log_s.kind(), log_s.device()));
                let l = lower.tril(-1) + &eye;
                let u = upper.triu(1) + (sign_s * log_s.exp()).diag_embed(0, -2, -1);
                let b = p.tr().matmul(&y.tr());
                let z = l.linalg_solve_triangular(&b, false, true, true);
                u.linalg_solve_triangular(&z, true, true, false).tr()
            }
        };
        let ld = (-self.log_abs_det())
            .to_kind(y.kind())
            .expand([y.size()[0]], false);
        Ok((x, ld))
    }

    fn name(&self) -> String {
        match self.weight {
            LinearWeight::Plain(_) => "linear".into(),
            LinearWeight::Lu { .. } => "linear_lu".into(),
        }
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}
