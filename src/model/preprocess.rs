//! How data reach a density model's flow: a data transform written as bijectors at the data end
//! of the chain, so a density model is "data transform ∘ flow ∘ base" and one change of
//! variables gives ln p(x) in the data's own units.
//!
//! - Toy sets: the identity.
//! - Tables (MAF's UCI protocol; Papamakarios et al. 2017, §4.2): x = μ + σ ⊙ z, the elementwise
//!   affine map with the training split's mean and standard deviation (saved with the weights as
//!   `data.mean`, `data.std`). Metrics report NLL in the standardized units the papers use, i.e.
//!   with Σ ln σ added back ([`Preprocess::metric_offset`]).
//! - Images (RealNVP, Dinh et al. 2016, §4.1): a pixel with integer level k becomes ỹ = k + u,
//!   u ~ U[0, 1) (uniform dequantization, so a density on ỹ lower-bounds the discrete likelihood),
//!   and the flow models z = logit(α + (1 − 2α) ỹ/256). In the sampling direction that is
//!   sigmoid, then the affine map s ↦ 256 (s − α)/(1 − 2α): `[Sigmoid, Affine]`. NLL is in nats
//!   per image of ỹ and bits/dim = NLL / (D ln 2), the papers' figure on the 0–255 scale.
use crate::bijector::elementwise::{Affine, Sigmoid};
use crate::bijector::{Bijector, Chain};
use tch::{Device, Kind, Tensor};

/// A density model's data transform.
pub enum Preprocess {
    Identity,
    /// Per-column mean and standard deviation of the training split.
    Standardize {
        mean: Tensor,
        std: Tensor,
    },
    /// Dequantization and the logit transform of grey images of `shape` (`[C, H, W]`).
    Dequantize {
        alpha: f64,
        shape: [i64; 3],
    },
}

impl Preprocess {
    /// The transform, model space → data space (the sampling direction); empty for the identity.
    /// Its constants are built in the model's floating `kind` on its `device`, so the log-det it
    /// adds to the flow's is a tensor of the same kind on the same device (a 0-dim CPU constant
    /// expanded to `[B, D]` would stay on the CPU and, in float64, promote a float32 log-det).
    pub fn chain(&self, kind: Kind, device: Device) -> Chain {
        let layers: Vec<Box<dyn Bijector>> = match self {
            Preprocess::Identity => vec![],
            Preprocess::Standardize { mean, std } => {
                let on_model = |t: &Tensor| t.to_device(device).to_kind(kind);
                vec![Box::new(Affine::new(on_model(mean), on_model(std).log()))]
            }
            Preprocess::Dequantize { alpha, .. } => {
                let scale = 256.0 / (1.0 - 2.0 * alpha);
                let constant = |v: f64| Tensor::full([], v, (kind, device));
                vec![
                    Box::new(Sigmoid),
                    Box::new(Affine::new(constant(-alpha * scale), constant(scale.ln()))),
                ]
            }
        };
        Chain::new(layers)
    }

    /// Data as the model sees them: an image's grey levels g ∈ [0, 1] become ỹ = round(255 g) + u
    /// with `noise` u (a fresh U[0, 1) draw when `None`); other data pass unchanged.
    pub fn observe(&self, x: &Tensor, noise: Option<&Tensor>) -> Tensor {
        match self {
            Preprocess::Dequantize { .. } => {
                let levels = (x * 255.0).round();
                match noise {
                    Some(u) => levels + u,
                    None => &levels + levels.rand_like(),
                }
            }
            _ => x.shallow_clone(),
        }
    }

    /// Model-space data back in the form users give them: images as grey levels in [0, 1].
    pub fn present(&self, x: &Tensor) -> Tensor {
        match self {
            Preprocess::Dequantize { .. } => (x / 256.0).clamp(0.0, 1.0),
            _ => x.shallow_clone(),
        }
    }

    /// What metrics add to ln p(x) to report it in the units the papers use: Σ ln σ for tables
    /// (standardized units), 0 otherwise.
    pub fn metric_offset(&self) -> f64 {
        match self {
            Preprocess::Standardize { std, .. } => std.log().sum(Kind::Double).double_value(&[]),
            _ => 0.0,
        }
    }

    /// Bits per dimension of an NLL in nats per image (images only).
    pub fn bits_per_dim(&self, nll: f64) -> Option<f64> {
        self.image_shape()
            .map(|s| nll / (s.iter().product::<i64>() as f64 * 2f64.ln()))
    }

    /// `[C, H, W]` for image data.
    pub fn image_shape(&self) -> Option<[i64; 3]> {
        match self {
            Preprocess::Dequantize { shape, .. } => Some(*shape),
            _ => None,
        }
    }

    /// Rows per evaluation chunk: 128 images keep a 32-channel activation of a 28×28 image flow
    /// near 13 MB, under glibc's mmap threshold (with 500 every chunk page-faulted fresh memory).
    pub fn eval_chunk(&self) -> i64 {
        if self.image_shape().is_some() {
            128
        } else {
            8192
        }
    }
}
