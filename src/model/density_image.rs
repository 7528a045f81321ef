//! Images as density-estimation data (RealNVP, Dinh et al. 2016, §4.1): uniform dequantization
//! and the logit transform, with the bookkeeping that makes bits/dim honest.
//!
//! A pixel with integer level x ∈ {0, …, 255} becomes ỹ = x + u, u ~ U[0, 1) (so a density on ỹ
//! lower-bounds the discrete likelihood: ln P(x) ≥ E_u ln p(x + u), bins of width 1), then
//! s = α + (1 − 2α) ỹ/256 ∈ (α, 1 − α) and z = logit(s), which the flow models. Per image
//!
//! ```text
//! ln p(ỹ) = ln p_flow(z) + Σ_i ln|dz_i/dỹ_i|,   dz/dỹ = (1 − 2α) / (256 · s (1 − s)),
//! NLL = −ln p(ỹ) (nats per image),   bits/dim = NLL / (D · ln 2),
//! ```
//!
//! which is the figure the papers report (RealNVP, Glow: bits/dim on the 0–255 scale). Evaluation
//! uses one fixed draw of u.
use crate::data::images::{ImageData, ImageDataConfig};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

fn default_alpha() -> f64 {
    0.05
}

/// `{"mnist": {"images": {...ImageDataConfig...}, "alpha": 0.05}}` in a density config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    #[serde(default)]
    pub images: ImageDataConfig,
    /// α of the logit transform.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

pub struct Dequantizer {
    pub alpha: f64,
    pub shape: [i64; 3],
}

impl Dequantizer {
    /// Grey levels in [0, 1] (level/255) and U[0, 1) noise → (z, Σ ln|dz/dỹ|).
    pub fn to_flow(&self, grey: &Tensor, noise: &Tensor) -> (Tensor, Tensor) {
        let a = self.alpha;
        let y = ((grey * 255.0).round() + noise) / 256.0;
        let s: Tensor = y * (1.0 - 2.0 * a) + a;
        let one_minus: Tensor = 1.0 - &s;
        let z = s.log() - one_minus.log();
        let lj = -(s.log() + one_minus.log()) + ((1.0 - 2.0 * a).ln() - 256f64.ln());
        (z, lj.sum_dim_intlist(1, false, Kind::Float))
    }

    /// Flow-space z → grey levels in [0, 1] (samples).
    pub fn to_image(&self, z: &Tensor) -> Tensor {
        ((z.sigmoid() - self.alpha) / (1.0 - 2.0 * self.alpha)).clamp(0.0, 1.0)
    }

    pub fn bits_per_dim(&self, nll: f64) -> f64 {
        nll / (self.shape.iter().product::<i64>() as f64 * 2f64.ln())
    }
}

/// Train, validation and test grey images and the dequantizer.
pub fn load(src: &ImageSource, device: Device) -> Result<(Tensor, Tensor, Tensor, Dequantizer)> {
    ensure!(
        src.alpha > 0.0 && src.alpha < 0.5,
        "model.density.data.mnist.alpha must be in (0, 0.5), got {}",
        src.alpha
    );
    ensure!(
        src.images.binarize == crate::data::images::Binarization::None,
        "model.density.data.mnist.images.binarize must be `none`: density models dequantize grey levels"
    );
    let d = ImageData::load(&src.images, device)?;
    let shape = [1, d.rows, d.cols];
    Ok((
        d.train,
        d.val,
        d.test,
        Dequantizer {
            alpha: src.alpha,
            shape,
        },
    ))
}
