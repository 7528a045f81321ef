//! Radial flow (Rezende & Mohamed 2015, §4.1, eq. 14).
//!
//! f(z) = z + β h(α, r)(z − z₀), h = 1/(α + r), r = ‖z − z₀‖, with
//! ln|det ∂f/∂z| = (d − 1) ln(1 + βh) + ln(1 + βh + βh'r), h' = −1/(α + r)² (ibid.).
//! Invertible when β ≥ −α: pass α > 0 and β ≥ −α (a learnable layer uses α = softplus(α'),
//! β = −α + softplus(β')).
//!
//! The inverse is closed form: along the ray from z₀, r_y = r_z (1 + β/(α + r_z)), i.e.
//! r_z² + (α + β − r_y) r_z − α r_y = 0, whose positive root gives r_z; then
//! z = z₀ + (y − z₀) r_z / r_y.
//!
//! ```
//! use flowlab::{bijector::Bijector, flow::radial::RadialFlow};
//! use tch::{Kind, Tensor};
//! let f = RadialFlow::new(Tensor::from_slice(&[0.5, 0.0]), Tensor::from(1.0), Tensor::from(2.0));
//! let z = Tensor::randn([4, 2], (Kind::Double, tch::Device::Cpu));
//! let (y, _) = f.forward(&z, None).unwrap();
//! let (z_back, _) = f.inverse(&y, None).unwrap();
//! assert!(z_back.allclose(&z, 1e-8, 1e-8, false));
//! ```
use super::params::{uniform, LayerParams, Piece};
use super::{check_length, numbered, FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::{Bijector, FlowResult};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

pub struct RadialFlow {
    z0: Tensor,
    alpha: Tensor,
    beta: Tensor,
}

impl RadialFlow {
    /// `z0: [d]` or `[batch, d]`; `alpha > 0` and `beta ≥ −alpha`, shape `[]` or `[batch]`.
    pub fn new(z0: Tensor, alpha: Tensor, beta: Tensor) -> Self {
        RadialFlow { z0, alpha, beta }
    }

    /// Maps unconstrained (α', β') to α = softplus(α'), β = −α + softplus(β').
    pub fn from_unconstrained(z0: Tensor, alpha_raw: &Tensor, beta_raw: &Tensor) -> Self {
        let alpha = alpha_raw.softplus();
        let beta = -&alpha + beta_raw.softplus();
        RadialFlow { z0, alpha, beta }
    }

    /// Splits stacked unconstrained parameters `z0: [K, d]`, `alpha_raw, beta_raw: [K]`.
    pub fn stack(z0: &Tensor, alpha_raw: &Tensor, beta_raw: &Tensor) -> Vec<RadialFlow> {
        let alpha = alpha_raw.softplus();
        let beta = -&alpha + beta_raw.softplus();
        z0.unbind(0)
            .into_iter()
            .zip(alpha.unbind(0))
            .zip(beta.unbind(0))
            .map(|((z0, alpha), beta)| RadialFlow { z0, alpha, beta })
            .collect()
    }

    pub fn alpha(&self) -> &Tensor {
        &self.alpha
    }

    pub fn beta(&self) -> &Tensor {
        &self.beta
    }

    fn dim(&self) -> i64 {
        *self.z0.size().last().unwrap_or(&0)
    }

    /// ln|det| from h = 1/(α + r) (ibid.): (d − 1) ln(1 + βh) + ln(1 + βh + βh'r), where
    /// 1 + βh + βh'r = 1 + βα/(α + r)² = 1 + βαh².
    fn log_det_from_h(&self, h: &Tensor) -> Tensor {
        let beta_h = &self.beta * h;
        let radial_term = (&self.beta * &self.alpha * h.square()).log1p();
        beta_h.log1p() * (self.dim() - 1) as f64 + radial_term
    }
}

/// ‖t‖ over the last axis. The clamp keeps the gradient finite (zero) at r = 0, where √ has an
/// infinite derivative; it changes r only below 1e-15.
fn norm_last(t: &Tensor) -> Tensor {
    t.square()
        .sum_dim_intlist(-1, false, t.kind())
        .clamp_min(1e-30)
        .sqrt()
}

impl Bijector for RadialFlow {
    fn forward(&self, z: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        crate::bijector::expect_dim(z, self.dim(), "radial")?;
        let diff = z - &self.z0;
        let r = norm_last(&diff);
        let h = (&self.alpha + &r).reciprocal();
        let y = z + (&self.beta * &h).unsqueeze(-1) * &diff;
        let log_det = self.log_det_from_h(&h);
        Ok((y, log_det))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        crate::bijector::expect_dim(y, self.dim(), "radial")?;
        let diff = y - &self.z0;
        let r_y = norm_last(&diff);
        // Positive root of r² + p r − α r_y = 0, p = α + β − r_y, in the form that avoids
        // cancellation for either sign of p.
        let p = &self.alpha + &self.beta - &r_y;
        let s = (p.square() + &self.alpha * &r_y * 4.0).sqrt();
        let r_z = ((&s - &p) * 0.5).where_self(&p.le(0.0), &(&self.alpha * &r_y * 2.0 / (&p + &s)));
        // z − z₀ = (y − z₀) r_z / r_y; at r_y = 0 the point is z₀ itself.
        let ratio = (&r_z / r_y.clamp_min(1e-300))
            .where_self(&r_y.gt(0.0), &(&self.alpha / (&self.alpha + &self.beta)));
        let z = &self.z0 + ratio.unsqueeze(-1) * diff;
        Ok((z, -self.log_det_from_h(&(&self.alpha + &r_z).reciprocal())))
    }

    fn name(&self) -> String {
        "radial".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// `{"radial": {"length": K}}`: K radial layers. Free parameters start as in normflows:
/// z₀ ~ N(0, I), α′, β′ ~ U(±√(1/d)); amortized ones come from one linear head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RadialConfig {
    #[serde(default = "super::one")]
    pub length: i64,
}

impl LayerSpec for RadialConfig {
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let d = site.dim;
        let lim = (1.0 / d as f64).sqrt();
        let normal = nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let pieces = vec![
            Piece::new("z0", d, normal),
            Piece::new("alpha", 0, uniform(lim)),
            Piece::new("beta", 0, uniform(lim)),
        ];
        Ok(Box::new(RadialLayer(LayerParams::new(
            site.path,
            self.length,
            pieces,
            site.features,
        ))))
    }

    fn label(&self) -> String {
        format!("radial-k{}", self.length)
    }
}

struct RadialLayer(LayerParams);

impl FlowLayer for RadialLayer {
    fn names(&self) -> Vec<String> {
        numbered("radial", self.0.len())
    }

    fn bijectors(&self, input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        self.0.bijectors(
            input,
            |v| RadialFlow::stack(&v[0], &v[1], &v[2]),
            |p| RadialFlow::from_unconstrained(p[0].shallow_clone(), &p[1], &p[2]),
        )
    }
}
