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
//! Config: `{"linear": {"lu": true}}`. ActNorm is in [`super::actnorm`].
use super::{FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::{expect_dim, Bijector, FlowResult};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// How the weight is given.
/// Glow's LU form: P fixed, `lower`/`upper` masked to their strict triangles here, s = sign_s ⊙
/// exp(log_s) on the diagonal (sign fixed, log|s| learned).
pub struct LuWeight {
    pub p: Tensor,
    pub lower: Tensor,
    pub upper: Tensor,
    pub log_s: Tensor,
    pub sign_s: Tensor,
}

pub enum LinearWeight {
    Plain(Tensor),
    Lu(LuWeight),
}

impl LinearWeight {
    /// A copy sharing the same tensors.
    pub fn shallow_clone(&self) -> Self {
        match self {
            LinearWeight::Plain(w) => LinearWeight::Plain(w.shallow_clone()),
            LinearWeight::Lu(lu) => LinearWeight::Lu(LuWeight {
                p: lu.p.shallow_clone(),
                lower: lu.lower.shallow_clone(),
                upper: lu.upper.shallow_clone(),
                log_s: lu.log_s.shallow_clone(),
                sign_s: lu.sign_s.shallow_clone(),
            }),
        }
    }
}

impl LuWeight {
    /// (P, L, U') with W = P L U', L unit lower triangular, U' = U + diag(s) upper triangular.
    fn factors(&self) -> (Tensor, Tensor, Tensor) {
        let eye = Tensor::eye(
            self.log_s.size()[0],
            (self.log_s.kind(), self.log_s.device()),
        );
        let l = self.lower.tril(-1) + &eye;
        let u = self.upper.triu(1) + (&self.sign_s * self.log_s.exp()).diag_embed(0, -2, -1);
        (self.p.shallow_clone(), l, u)
    }
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
            LinearWeight::Lu(lu) => {
                let (p, l, u) = lu.factors();
                p.matmul(&l).matmul(&u)
            }
        }
    }

    /// ln|det W|.
    pub fn log_abs_det(&self) -> Tensor {
        match &self.weight {
            LinearWeight::Plain(w) => w.slogdet().1,
            LinearWeight::Lu(lu) => lu.log_s.sum(lu.log_s.kind()),
        }
    }

    fn dim(&self) -> i64 {
        match &self.weight {
            LinearWeight::Plain(w) => w.size()[0],
            LinearWeight::Lu(lu) => lu.log_s.size()[0],
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
            LinearWeight::Lu(lu) => {
                // W x = y with W = P L U': x = U'⁻¹ L⁻¹ Pᵀ y, two triangular solves.
                let (p, l, u) = lu.factors();
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
            LinearWeight::Lu(_) => "linear_lu".into(),
        }
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// A random rotation (QR of a Gaussian matrix), as a plain matrix or in Glow's LU form.
pub fn build_linear(q: &nn::Path, dim: i64, lu: bool) -> LinearWeight {
    let (rot, _) = Tensor::linalg_qr(
        &Tensor::randn([dim, dim], (tch::Kind::Float, tch::Device::Cpu)),
        "reduced",
    );
    let rot = rot.to_device(q.device());
    if !lu {
        return LinearWeight::Plain(q.var_copy("weight", &rot));
    }
    let (p, l, u) = Tensor::linalg_lu(&rot, true);
    let s = u.diagonal(0, 0, 1);
    let fixed = |name: &str, t: &Tensor| {
        let mut v = q.zeros_no_train(name, &t.size());
        tch::no_grad(|| v.copy_(t));
        v
    };
    LinearWeight::Lu(LuWeight {
        p: fixed("p", &p),
        lower: q.var_copy("lower", &l.tril(-1)),
        upper: q.var_copy("upper", &u.triu(1)),
        log_s: q.var_copy("log_s", &s.abs().log()),
        sign_s: fixed("sign_s", &s.sign()),
    })
}

pub(crate) fn yes() -> bool {
    true
}

/// Glow's invertible 1×1 convolution for vectors: LU-parameterized (`"lu": true`, O(D) log-det)
/// or a plain matrix; initialized to a random rotation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    #[serde(default = "yes")]
    pub lu: bool,
}

impl LayerSpec for LinearConfig {
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        Ok(Box::new(LinearLayer {
            weight: build_linear(site.path, site.dim, self.lu),
            lu: self.lu,
        }))
    }

    fn label(&self) -> String {
        if self.lu { "linear_lu" } else { "linear" }.into()
    }
}

struct LinearLayer {
    weight: LinearWeight,
    lu: bool,
}

impl FlowLayer for LinearLayer {
    fn names(&self) -> Vec<String> {
        vec![if self.lu { "linear_lu" } else { "linear" }.into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(InvertibleLinear::new(
            self.weight.shallow_clone(),
        ))])
    }
}
