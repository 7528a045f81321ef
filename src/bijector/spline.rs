//! Rational-quadratic spline (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline
//! Flows", §3.1; Gregory & Delbourgo 1982): a monotone elementwise map made of K rational-
//! quadratic pieces on [−B, B] and the identity outside (the paper's linear tails).
//!
//! Knots (x⁽ᵏ⁾, y⁽ᵏ⁾), k = 0..K, come from softmaxed bin widths and heights that span [−B, B];
//! derivatives δ⁽ᵏ⁾ > 0 at the K − 1 interior knots come from a softplus, and δ⁽⁰⁾ = δ⁽ᴷ⁾ = 1 so
//! that the spline joins the identity tails smoothly. In bin k, with ξ = (x − x⁽ᵏ⁾)/w⁽ᵏ⁾ and
//! s⁽ᵏ⁾ = h⁽ᵏ⁾/w⁽ᵏ⁾ (paper eq. 4–5):
//!
//!   y = y⁽ᵏ⁾ + h⁽ᵏ⁾ [s ξ² + δ⁽ᵏ⁾ ξ(1−ξ)] / [s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s) ξ(1−ξ)]
//!   dy/dx = s² [δ⁽ᵏ⁺¹⁾ ξ² + 2s ξ(1−ξ) + δ⁽ᵏ⁾ (1−ξ)²] / [s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s) ξ(1−ξ)]²
//!
//! and the inverse is the root in [0, 1] of a quadratic in ξ (paper eq. 6–8), taken in the
//! cancellation-free form ξ = 2c / (−b − √(b² − 4ac)).
//!
//! With all raw parameters zero the spline is the identity (uniform bins, unit derivatives), so a
//! coupling whose network starts at zero starts as the identity, as Glow's do.
//!
//! ```
//! use flowlab::bijector::elementwise::Elementwise;
//! use flowlab::bijector::spline::RationalQuadraticSpline;
//! use tch::{Kind, Tensor};
//! // One spline per element of a [2, 3] input, 4 bins, bound 3: raw parameters [2, 3, 3·4 − 1].
//! let raw = Tensor::randn([2, 3, 11], (Kind::Double, tch::Device::Cpu));
//! let spline = RationalQuadraticSpline::from_raw(&raw, 4, 3.0);
//! let x = Tensor::randn([2, 3], (Kind::Double, tch::Device::Cpu));
//! let (y, ld) = spline.forward_elementwise(&x).unwrap();
//! let (back, ld_inv) = spline.inverse_elementwise(&y).unwrap();
//! assert!((back - &x).abs().max().double_value(&[]) < 1e-9);
//! assert!((ld + ld_inv).abs().max().double_value(&[]) < 1e-9);
//! ```
use super::elementwise::Elementwise;
use super::FlowResult;
use tch::{Kind, Tensor};

/// Smallest bin width and height, as fractions of 2B, and smallest interior derivative (the
/// paper's reference code uses the same 1e-3 floors): keeps every piece well conditioned. The
/// floors take `MIN_BIN · bins` of the interval, so fewer than 1/MIN_BIN bins fit.
pub const MIN_BIN: f64 = 1e-3;
const MIN_DERIVATIVE: f64 = 1e-3;

/// Monotone rational-quadratic spline on [−bound, bound], identity outside; one spline per
/// element of the input, parameters in the trailing axis.
pub struct RationalQuadraticSpline {
    /// Knot positions x⁽⁰⁾..x⁽ᴷ⁾ and y⁽⁰⁾..y⁽ᴷ⁾, shaped `[..., K + 1]`.
    knots_x: Tensor,
    knots_y: Tensor,
    /// Derivatives δ⁽⁰⁾..δ⁽ᴷ⁾ at the knots, `[..., K + 1]`.
    derivatives: Tensor,
    bound: f64,
}

/// The number of raw parameters per element for `bins` bins: K widths, K heights and K − 1
/// interior derivatives.
pub fn raw_params_per_element(bins: i64) -> i64 {
    3 * bins - 1
}

impl RationalQuadraticSpline {
    /// From unconstrained parameters `[..., 3K − 1]` (widths, heights, interior derivatives).
    pub fn from_raw(raw: &Tensor, bins: i64, bound: f64) -> Self {
        let last = raw.size().len() as i64 - 1;
        let knots = |unnormalized: Tensor| {
            let fraction =
                unnormalized.softmax(-1, raw.kind()) * (1.0 - MIN_BIN * bins as f64) + MIN_BIN;
            let mut cum = fraction.cumsum(-1, raw.kind()) * (2.0 * bound) - bound;
            // Pin the last knot at +B exactly (the cumulative sum may miss it by rounding).
            cum = Tensor::cat(
                &[
                    cum.narrow(-1, 0, bins - 1),
                    cum.narrow(-1, bins - 1, 1).full_like(bound),
                ],
                -1,
            );
            Tensor::cat(&[cum.narrow(-1, 0, 1).full_like(-bound), cum], -1)
        };
        let knots_x = knots(raw.narrow(last, 0, bins));
        let knots_y = knots(raw.narrow(last, bins, bins));
        // softplus(u + c) with c = ln(e^{1 − floor} − 1): raw zero gives derivative exactly 1.
        let shift = ((1.0 - MIN_DERIVATIVE).exp() - 1.0).ln();
        let interior = (raw.narrow(last, 2 * bins, bins - 1) + shift).softplus() + MIN_DERIVATIVE;
        let one = interior.narrow(-1, 0, 1).ones_like();
        let derivatives = Tensor::cat(&[&one, &interior, &one], -1);
        RationalQuadraticSpline {
            knots_x,
            knots_y,
            derivatives,
            bound,
        }
    }

    /// Index of the bin holding each value of `v` (clamped to [0, K − 1]) given knots `[..., K + 1]`.
    fn bin_of(v: &Tensor, knots: &Tensor) -> Tensor {
        let bins = knots.size()[knots.dim() - 1] - 1;
        let inner = knots.narrow(-1, 1, bins - 1);
        v.unsqueeze(-1)
            .ge_tensor(&inner)
            .sum_dim_intlist(-1, true, Kind::Int64)
            .clamp(0, bins - 1)
    }

    /// Per-element bin quantities at bin index `k` (`[..., 1]`): x⁽ᵏ⁾, w, y⁽ᵏ⁾, h, δ⁽ᵏ⁾, δ⁽ᵏ⁺¹⁾.
    fn gather(&self, k: &Tensor) -> [Tensor; 6] {
        // Parameters shared across a batch ([D, K + 1] for input [N, D]) are expanded to it.
        let mut shape = k.size();
        *shape.last_mut().unwrap() = self.knots_x.size()[self.knots_x.dim() - 1];
        let at = |t: &Tensor, i: &Tensor| {
            t.expand(&shape[..], false)
                .gather(-1, i, false)
                .squeeze_dim(-1)
        };
        let k1 = k + 1;
        let x0 = at(&self.knots_x, k);
        let y0 = at(&self.knots_y, k);
        [
            x0.shallow_clone(),
            at(&self.knots_x, &k1) - x0,
            y0.shallow_clone(),
            at(&self.knots_y, &k1) - y0,
            at(&self.derivatives, k),
            at(&self.derivatives, &k1),
        ]
    }

    /// True where v lies in [−B, B], the spline's domain.
    fn inside(&self, v: &Tensor) -> Tensor {
        v.ge(-self.bound).logical_and(&v.le(self.bound))
    }

    /// ln dy/dx in bin (w, h, δ⁽ᵏ⁾, δ⁽ᵏ⁺¹⁾) at relative position ξ (paper eq. 5).
    fn log_slope(xi: &Tensor, w: &Tensor, h: &Tensor, d0: &Tensor, d1: &Tensor) -> Tensor {
        let s = h / w;
        let t = xi * (1.0 - xi);
        let num = s.square() * (d1 * xi.square() + &s * &t * 2.0 + d0 * (-xi + 1.0).square());
        let den = &s + (d1 + d0 - &s * 2.0) * &t;
        num.log() - den.square().log()
    }
}

impl Elementwise for RationalQuadraticSpline {
    fn name(&self) -> String {
        "rq_spline".into()
    }

    fn forward_elementwise(&self, x: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let inside = self.inside(x);
        // Outside [−B, B] the value is clamped only to keep the unused spline branch finite.
        let xc = x.clamp(-self.bound, self.bound);
        let k = Self::bin_of(&xc, &self.knots_x);
        let [x0, w, y0, h, d0, d1] = self.gather(&k);
        let xi = ((&xc - &x0) / &w).clamp(0.0, 1.0);
        let s = &h / &w;
        let t = &xi * (1.0 - &xi);
        let num = &h * (&s * xi.square() + &d0 * &t);
        let den = &s + (&d1 + &d0 - &s * 2.0) * &t;
        let y = &y0 + num / den;
        let ld = Self::log_slope(&xi, &w, &h, &d0, &d1);
        Ok((
            x.where_self(&inside.logical_not(), &y),
            ld.where_self(&inside, &ld.zeros_like()),
        ))
    }

    fn inverse_elementwise(&self, y: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        let inside = self.inside(y);
        let yc = y.clamp(-self.bound, self.bound);
        let k = Self::bin_of(&yc, &self.knots_y);
        let [x0, w, y0, h, d0, d1] = self.gather(&k);
        let s = &h / &w;
        let dy = &yc - &y0;
        let spread = &d1 + &d0 - &s * 2.0;
        // a ξ² + b ξ + c = 0 (paper eq. 6–8).
        let a = &h * (&s - &d0) + &dy * &spread;
        let b = &h * &d0 - &dy * &spread;
        let c = -&s * &dy;
        let disc = (b.square() - &a * &c * 4.0).clamp_min(0.0);
        let xi = ((&c * 2.0) / (-&b - disc.sqrt())).clamp(0.0, 1.0);
        let x = &x0 + &xi * &w;
        let ld = -Self::log_slope(&xi, &w, &h, &d0, &d1);
        Ok((
            y.where_self(&inside.logical_not(), &x),
            ld.where_self(&inside, &ld.zeros_like()),
        ))
    }
}
