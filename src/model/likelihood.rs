//! The decoder likelihoods p(x|z) of the image VAEs: Bernoulli for binarized pixels, Gaussian
//! for grey levels, and a 256-way categorical per pixel (discrete grey levels, reported in
//! bits/dim).
use super::posterior::diag_normal_log_prob;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The decoder's p(x|z).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Likelihood {
    /// Bernoulli with logits (binarized pixels; Kingma & Welling 2014, Appendix C.1).
    #[default]
    Bernoulli,
    /// Gaussian with per-pixel mean σ(·) ∈ (0, 1) and log-variance ≥ ln(1/256²) (grey levels;
    /// Kingma & Welling 2014, Appendix C.2). The floor keeps the density of saturated pixels bounded.
    Gaussian,
    /// A 256-way categorical per pixel over the grey levels 0..=255 (the Sylvester-flow paper's
    /// Frey Faces decoder): a discrete likelihood, so −ELBO is reported in bits/dim too.
    Categorical,
}

/// The categorical decoder's number of grey levels.
const LEVELS: i64 = 256;

/// ln σ² floor of the Gaussian decoder: σ ≥ 1/256, one grey level.
const LOG_VAR_FLOOR: f64 = -11.090_354_888_959_125;

impl Likelihood {
    /// Decoder outputs per pixel.
    pub fn channels(self) -> i64 {
        match self {
            Likelihood::Bernoulli => 1,
            Likelihood::Gaussian => 2,
            Likelihood::Categorical => LEVELS,
        }
    }

    /// True when ln p(x|z) is a log-probability of discrete pixels (bits/dim are meaningful).
    pub fn is_discrete(self) -> bool {
        self != Likelihood::Gaussian
    }

    /// The decoder's `[rows, 256·P]` outputs as `[rows, 256, P]` log-probabilities.
    fn level_log_probs(out: &Tensor) -> Tensor {
        let p = out.size()[1] / LEVELS;
        out.reshape([-1, LEVELS, p]).log_softmax(1, out.kind())
    }

    /// ln p(x|z) per row from the decoder's outputs.
    pub fn log_prob(self, out: &Tensor, x: &Tensor) -> Tensor {
        match self {
            // x·l − softplus(l) = ln σ(l)^x (1 − σ(l))^(1−x), stable for any logit.
            Likelihood::Bernoulli => {
                (x * out - out.softplus()).sum_dim_intlist(-1, false, out.kind())
            }
            Likelihood::Gaussian => {
                let (mean, log_var) = self.split(out);
                diag_normal_log_prob(x, &mean, &log_var)
            }
            Likelihood::Categorical => {
                // Grey level k/255 → class k (pixels arrive scaled by 1/255).
                let level = (x * (LEVELS - 1) as f64).round().to_kind(Kind::Int64);
                Self::level_log_probs(out)
                    .gather(1, &level.unsqueeze(1), false)
                    .squeeze_dim(1)
                    .sum_dim_intlist(-1, false, out.kind())
            }
        }
    }

    fn split(self, out: &Tensor) -> (Tensor, Tensor) {
        let p = out.size()[1] / 2;
        let raw = out.narrow(1, p, p);
        (
            out.narrow(1, 0, p).sigmoid(),
            (raw - LOG_VAR_FLOOR).softplus() + LOG_VAR_FLOOR,
        )
    }

    /// The mean image E[x|z], for figures.
    pub fn mean(self, out: &Tensor) -> Tensor {
        match self {
            Likelihood::Bernoulli => out.sigmoid(),
            Likelihood::Gaussian => self.split(out).0,
            Likelihood::Categorical => {
                let probs = Self::level_log_probs(out).exp();
                let levels =
                    Tensor::arange(LEVELS, (out.kind(), out.device())) / (LEVELS - 1) as f64;
                (probs * levels.reshape([1, LEVELS, 1])).sum_dim_intlist(1, false, out.kind())
            }
        }
    }
}
