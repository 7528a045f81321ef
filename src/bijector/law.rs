//! Elementwise transformer laws shared by coupling and autoregressive layers (flowjax's idea: a
//! layer takes any elementwise bijection as its transformer, so one code path serves the
//! additive (NICE), affine (RealNVP, MAF) and rational-quadratic spline (Durkan et al. 2019)
//! variants). Each law says how many conditioner outputs it needs per transformed coordinate.
//!
//! The affine law bounds its log-scale softly, α = B·tanh(α̃/B) with B = [`LOG_SCALE_BOUND`]:
//! each layer scales by at most e^{±B}, so a point far from the training data cannot drive
//! exp(−α) to overflow and the density stays finite on all of ℝ^D (nflows and zuko bound
//! theirs too). `"affine_unbounded"` keeps the papers' raw α (MAF, Papamakarios et al. 2017,
//! eq. 4) for reproductions.
use super::elementwise::Affine;
use super::spline::raw_params_per_element;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// |α| ≤ 3 for the affine law: a factor of at most e³ ≈ 20 per layer, either way. Identity-like
/// near 0 (tanh(a) ≈ a), so small scales train as if unbounded.
pub const LOG_SCALE_BOUND: f64 = 3.0;

/// α = B·tanh(α̃/B) with B = [`LOG_SCALE_BOUND`].
pub fn bounded_log_scale(raw: &Tensor) -> Tensor {
    (raw / LOG_SCALE_BOUND).tanh() * LOG_SCALE_BOUND
}

/// The elementwise transformer of a coupling or autoregressive layer, as written in a config: `"additive"`, `"affine"`,
/// or `{"spline": {"bins": 8, "bound": 3.0}}`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Law {
    /// NICE: y₂ = x₂ + t(x₁), volume preserving.
    Additive,
    /// RealNVP: y₂ = x₂ ⊙ exp(s(x₁)) + t(x₁), s soft-bounded to [−3, 3].
    #[default]
    Affine,
    /// The affine law with an unbounded log-scale, as the MAF and RealNVP papers write it. A
    /// point far from the data can then get a NaN or ±inf density.
    AffineUnbounded,
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

impl Law {
    /// How many conditioner outputs each transformed dimension needs.
    pub fn params_per_dim(&self) -> i64 {
        match self {
            Law::Additive => 1,
            Law::Affine | Law::AffineUnbounded => 2,
            Law::Spline { bins, .. } => raw_params_per_element(*bins),
        }
    }

    /// A config's law, or why it cannot be built.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Law::Spline { bins, bound } if bins < 2 => Err(format!(
                "spline bins must be at least 2, got {bins} (bound {bound})"
            )),
            // Each bin keeps at least MIN_BIN of the interval: with 1/MIN_BIN bins or more the
            // floors alone fill it and the learned widths would be zero or negative.
            Law::Spline { bins, .. } if bins as f64 * super::spline::MIN_BIN >= 1.0 => Err(format!(
                "spline bins must be fewer than {} (each bin keeps at least {} of the interval), got {bins}",
                (1.0 / super::spline::MIN_BIN).round(),
                super::spline::MIN_BIN
            )),
            Law::Spline { bound, .. } if !(bound.is_finite() && bound > 0.0) => Err(format!(
                "spline bound must be positive and finite, got {bound}"
            )),
            _ => Ok(()),
        }
    }

    /// `"additive"`, `"affine"` or `"spline"`: layers name themselves (and their weights) after
    /// their law; both affine laws have the same parameters, so they share a label.
    pub fn label(&self) -> &'static str {
        match self {
            Law::Additive => "additive",
            Law::Affine | Law::AffineUnbounded => "affine",
            Law::Spline { .. } => "spline",
        }
    }

    /// The elementwise map of the additive and affine laws from the conditioner's outputs:
    /// `shift`, and the raw log-scale (`None` for the additive law). `None` for the spline law.
    pub fn affine(&self, shift: Tensor, raw_log_scale: Option<Tensor>) -> Option<Affine> {
        let log_scale = match (self, raw_log_scale) {
            (Law::Additive, _) => shift.zeros_like(),
            (Law::Affine, Some(raw)) => bounded_log_scale(&raw),
            (Law::AffineUnbounded, Some(raw)) => raw,
            _ => return None,
        };
        Some(Affine::new(shift, log_scale))
    }
}
