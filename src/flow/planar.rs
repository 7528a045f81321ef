//! Planar flow (Rezende & Mohamed 2015, §4.1, eq. 10–12).
//!
//! f(z) = z + û h(wᵀz + b), h = tanh, with log|det ∂f/∂z| = ln|1 + h'(wᵀz + b) wᵀû| (eq. 12).
//! f is invertible when wᵀû ≥ −1; the constraint is enforced by construction:
//! û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(x) = −1 + softplus(x) (paper, appendix A.1; normflows).
//!
//! `"constraint": "bounded"` is a numerically safe variant for amortized posteriors. The paper's
//! m moves every û (m(x) ≠ x everywhere), by |m(wᵀu) − wᵀu|/‖w‖, without bound as an encoder
//! drives ‖w‖ → 0 (m(0) − 0 ≈ −0.31); and m → −1 exactly once softplus underflows, making the
//! map singular. The bounded variant uses m(x) = x for x ≥ 0 and
//! m(x) = −(1 − δ) + (1 − δ) exp(x/(1 − δ)) below (C¹ at 0, δ = 10⁻⁴ as the Sylvester layers'
//! margin): û = u wherever wᵀu ≥ 0, ‖û‖ ≤ 2‖u‖ always, and wᵀû ≥ −(1 − δ), so
//! |det| ≥ δ and ln|det| ≥ ln δ ≈ −9.2.
//!
//! The parameters are plain tensors: `[d]` for a free layer, `[batch, d]` (and `[batch]` for b)
//! when an encoder produces them per sample. The layer does not know which.
//!
//! The inverse has no closed form. Writing a = wᵀz, the equation wᵀy = a + wᵀû tanh(a + b) is
//! scalar and monotone in a, so it is solved per sample by [`tanh_solve`](crate::bijector::tanh_solve)
//! (safeguarded Newton in [wᵀy − |wᵀû|, wᵀy + |wᵀû|]), then z = y − û tanh(a + b). Cost:
//! O(batch · d) plus O(batch) per iteration (typically under 10 iterations, at most 100).
//!
//! ```
//! use flowlab::{bijector::Bijector, flow::planar::PlanarFlow};
//! use tch::{Kind, Tensor};
//! let f = PlanarFlow::new(Tensor::from_slice(&[1.0, 0.0]), Tensor::from_slice(&[5.0, 0.0]), Tensor::from(0.0));
//! let z = Tensor::randn([4, 2], (Kind::Double, tch::Device::Cpu));
//! let (y, ld) = f.forward(&z, None).unwrap();
//! let (z_back, ld_inv) = f.inverse(&y, None).unwrap();
//! assert!(z_back.allclose(&z, 1e-8, 1e-8, false));
//! ```
use super::params::{uniform, LayerParams, Piece};
use super::{check_length, numbered, FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::{Bijector, FlowResult};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// How û is made to satisfy wᵀû > −1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// The paper's m(x) = −1 + softplus(x).
    #[default]
    Softplus,
    /// m(x) = x for x ≥ 0, a margin of 10⁻⁴ below −1 otherwise; bounded û.
    Bounded,
}

/// The bounded constraint's margin δ: wᵀû ≥ −(1 − δ).
pub const MARGIN: f64 = 1e-4;

pub struct PlanarFlow {
    /// û, already constrained so that wᵀû ≥ −1.
    u_hat: Tensor,
    w: Tensor,
    b: Tensor,
    /// wᵀû, shape `[]` or `[batch]`.
    wu: Tensor,
}

impl PlanarFlow {
    /// Builds the layer from unconstrained u, w and b; û is computed here.
    pub fn new(u: Tensor, w: Tensor, b: Tensor) -> Self {
        Self::with_constraint(u, w, b, Constraint::Softplus)
    }

    /// As [`new`](Self::new), with the given constraint on û.
    pub fn with_constraint(u: Tensor, w: Tensor, b: Tensor, c: Constraint) -> Self {
        let u_hat = Self::constrain(&u, &w, c);
        let wu = dot(&w, &u_hat);
        PlanarFlow { u_hat, w, b, wu }
    }

    /// û = u + (m(wᵀu) − wᵀu) w/‖w‖²: then wᵀû = m(wᵀu) > −1. Works on any leading shape
    /// (`[d]`, `[K, d]`, `[batch, d]`), so a stack of K layers is constrained in one call.
    pub fn constrain(u: &Tensor, w: &Tensor, c: Constraint) -> Tensor {
        let wu = dot(w, u);
        let m = match c {
            Constraint::Softplus => wu.softplus() - 1.0,
            Constraint::Bounded => {
                let keep = 1.0 - MARGIN;
                // exp of min(x, 0): the branch not taken must not overflow.
                let below = (wu.clamp_max(0.0) / keep).exp() * keep - keep;
                wu.where_self(&wu.ge(0.0), &below)
            }
        };
        let w_norm_sq = dot(w, w).clamp_min(1e-12);
        u + ((m - wu) / w_norm_sq).unsqueeze(-1) * w
    }

    /// Splits stacked parameters `u, w: [K, d]`, `b: [K]` into K layers, constraining all of them
    /// with one vectorized call.
    pub fn stack(u: &Tensor, w: &Tensor, b: &Tensor, c: Constraint) -> Vec<PlanarFlow> {
        let u_hat = Self::constrain(u, w, c);
        let wu = dot(w, &u_hat);
        let parts = (u_hat.unbind(0), w.unbind(0), b.unbind(0), wu.unbind(0));
        parts
            .0
            .into_iter()
            .zip(parts.1)
            .zip(parts.2)
            .zip(parts.3)
            .map(|(((u_hat, w), b), wu)| PlanarFlow { u_hat, w, b, wu })
            .collect()
    }

    /// The constrained û (for tests and inspection).
    pub fn u_hat(&self) -> &Tensor {
        &self.u_hat
    }

    /// wᵀû (≥ −1 by construction).
    pub fn w_dot_u_hat(&self) -> &Tensor {
        &self.wu
    }

    /// ln|1 + h'(a + b) wᵀû| from h = tanh(a + b), h' = 1 − h² (eq. 12).
    fn log_det_from_tanh(&self, h: &Tensor) -> Tensor {
        let h_prime: Tensor = 1.0 - h.square();
        (h_prime * &self.wu + 1.0).abs().log()
    }
}

/// Inner product over the last axis.
fn dot(a: &Tensor, b: &Tensor) -> Tensor {
    (a * b).sum_dim_intlist(-1, false, a.kind())
}

impl Bijector for PlanarFlow {
    fn forward(&self, z: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        crate::bijector::expect_dim(z, *self.w.size().last().unwrap_or(&0), "planar")?;
        let h = (dot(z, &self.w) + &self.b).tanh();
        let y = z + &self.u_hat * h.unsqueeze(-1);
        let log_det = self.log_det_from_tanh(&h);
        Ok((y, log_det))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        crate::bijector::expect_dim(y, *self.w.size().last().unwrap_or(&0), "planar")?;
        // wᵀy = a + wᵀû tanh(a + b), a = wᵀz: a scalar equation per sample.
        let a = crate::bijector::tanh_solve::solve(
            &dot(y, &self.w),
            &self.wu,
            &self.wu.ones_like(),
            &self.b,
            "planar",
        )?;
        let h = (&a + &self.b).tanh();
        let z = y - &self.u_hat * h.unsqueeze(-1);
        Ok((z, -self.log_det_from_tanh(&h)))
    }

    fn name(&self) -> String {
        "planar".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// `{"planar": {"length": K}}`: K planar layers. Free parameters start as in normflows (for
/// like-for-like comparisons): u ~ U(±√2), w ~ U(±√(2/d)), b = 0; amortized ones come from one
/// linear head of the encoder's features.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanarConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    /// `"softplus"` (the paper's, default) or `"bounded"` (safe for amortized posteriors).
    #[serde(default)]
    pub constraint: Constraint,
}

impl LayerSpec for PlanarConfig {
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let d = site.dim;
        let pieces = vec![
            Piece::new("u", d, uniform(2f64.sqrt())),
            Piece::new("w", d, uniform((2.0 / d as f64).sqrt())),
            Piece::new("b", 0, nn::Init::Const(0.0)),
        ];
        Ok(Box::new(PlanarLayer(
            LayerParams::new(site.path, self.length, pieces, site.features),
            self.constraint,
        )))
    }

    fn label(&self) -> String {
        format!("planar-k{}", self.length)
    }
}

struct PlanarLayer(LayerParams, Constraint);

impl FlowLayer for PlanarLayer {
    fn names(&self) -> Vec<String> {
        numbered("planar", self.0.len())
    }

    fn bijectors(&self, input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        // Amortized: the constraint runs after repetition, on each sample's copy.
        self.0.bijectors(
            input,
            |v| PlanarFlow::stack(&v[0], &v[1], &v[2], self.1),
            |p| {
                PlanarFlow::with_constraint(
                    p[0].shallow_clone(),
                    p[1].shallow_clone(),
                    p[2].shallow_clone(),
                    self.1,
                )
            },
        )
    }
}
