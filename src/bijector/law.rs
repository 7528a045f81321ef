//! Elementwise transformer laws shared by coupling and autoregressive layers (flowjax's idea: a
//! layer takes any elementwise bijection as its transformer, so one code path serves the
//! additive (NICE), affine (RealNVP, MAF) and rational-quadratic spline (Durkan et al. 2019)
//! variants). Each law says how many conditioner outputs it needs per transformed coordinate.
use super::spline::raw_params_per_element;
use serde::{Deserialize, Serialize};

/// The elementwise transformer of a coupling or autoregressive layer, as written in a config: `"additive"`, `"affine"`,
/// or `{"spline": {"bins": 8, "bound": 3.0}}`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Law {
    /// NICE: y₂ = x₂ + t(x₁), volume preserving.
    Additive,
    /// RealNVP: y₂ = x₂ ⊙ exp(s(x₁)) + t(x₁), s tanh-bounded.
    #[default]
    Affine,
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
            Law::Affine => 2,
            Law::Spline { bins, .. } => raw_params_per_element(*bins),
        }
    }

    /// A config's law, or why it cannot be built.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Law::Spline { bins, bound } if bins < 2 => Err(format!(
                "spline bins must be at least 2, got {bins} (bound {bound})"
            )),
            Law::Spline { bound, .. } if !(bound.is_finite() && bound > 0.0) => Err(format!(
                "spline bound must be positive and finite, got {bound}"
            )),
            _ => Ok(()),
        }
    }

    /// `"additive"`, `"affine"` or `"spline"`: layers name themselves after their law.
    pub fn label(&self) -> &'static str {
        match self {
            Law::Additive => "additive",
            Law::Affine => "affine",
            Law::Spline { .. } => "spline",
        }
    }
}
