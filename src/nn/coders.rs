//! Encoders and decoders for 28×28-style images, shared by every model of a comparison so that
//! differences come from the posterior only:
//!
//! - `mlp`: fully connected, e.g. 784–300–300 with ReLU (the encoder outputs the last hidden
//!   layer, the decoder mirrors it);
//! - `gated_conv`: the gated convolutions of the Sylvester-flow paper (van den Berg et al. 2018,
//!   appendix; Dauphin et al. 2017): each layer is conv(x) ⊙ σ(conv_g(x)). The encoder maps a
//!   28×28 image to 256 features in six layers (strides 1, 2, 1, 2, 1 and a 7×7 valid
//!   convolution; 7×5 for Frey Faces' 28×20, as the paper's code), the decoder mirrors it with
//!   transposed convolutions and ends in a 1×1 convolution.
//!
//! The encoder returns the features h; the heads that turn h into μ, σ and flow parameters live
//! with the posterior ([`crate::model::posterior`]).
use super::init::Init;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

fn default_hidden() -> Vec<i64> {
    vec![300, 300]
}

/// `{"mlp": {"hidden": [300, 300]}}` or `{"gated_conv": {}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    Mlp {
        #[serde(default = "default_hidden")]
        hidden: Vec<i64>,
    },
    GatedConv {},
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture::Mlp {
            hidden: default_hidden(),
        }
    }
}

impl Architecture {
    pub fn validate(&self, rows: i64, cols: i64, field: &str) -> Result<()> {
        match self {
            Architecture::Mlp { hidden } => ensure!(
                !hidden.is_empty() && hidden.iter().all(|&h| h > 0),
                "field `{field}.mlp.hidden`: needs at least one positive layer size, got {hidden:?}"
            ),
            Architecture::GatedConv {} => ensure!(
                rows % 4 == 0 && cols % 4 == 0 && rows >= 8 && cols >= 8,
                "field `{field}`: gated_conv halves the image twice (28×28 → 7×7, 28×20 → 7×5), so both sides must be multiples of 4 and at least 8; the data has {rows}×{cols}"
            ),
        }
        Ok(())
    }
}

/// A 2-D convolution, plain or transposed, with a rectangular kernel (Frey Faces' 28×20 images
/// need a 7×5 one); its variables are named, shaped and drawn as tch's own conv layers'.
struct Conv {
    ws: Tensor,
    bs: Tensor,
    stride: i64,
    padding: i64,
    output_padding: i64,
    transposed: bool,
}

impl Conv {
    fn new(
        p: &nn::Path,
        i: i64,
        o: i64,
        k: [i64; 2],
        shape: (i64, i64, i64),
        transposed: bool,
    ) -> Self {
        let (stride, padding, output_padding) = shape;
        let bs = p.var("bias", &[o], nn::Init::Const(0.0));
        let dims = if transposed {
            [i, o, k[0], k[1]]
        } else {
            [o, i, k[0], k[1]]
        };
        let ws = p.var("weight", &dims, nn::init::DEFAULT_KAIMING_UNIFORM);
        Conv {
            ws,
            bs,
            stride,
            padding,
            output_padding,
            transposed,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (s, p) = ([self.stride; 2], [self.padding; 2]);
        if self.transposed {
            let op = [self.output_padding; 2];
            x.conv_transpose2d(&self.ws, Some(&self.bs), s, p, op, 1, [1, 1])
        } else {
            x.conv2d(&self.ws, Some(&self.bs), s, p, [1, 1], 1)
        }
    }
}

/// conv(x) ⊙ σ(conv_g(x)), as a plain or transposed convolution.
struct Gated {
    h: Conv,
    g: Conv,
}

impl Gated {
    /// `shape`: (stride, padding, output padding of a transposed convolution).
    fn new(
        p: &nn::Path,
        i: i64,
        o: i64,
        k: [i64; 2],
        shape: (i64, i64, i64),
        transposed: bool,
    ) -> Self {
        Gated {
            h: Conv::new(&(p / "h"), i, o, k, shape, transposed),
            g: Conv::new(&(p / "g"), i, o, k, shape, transposed),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.h.forward(x) * self.g.forward(x).sigmoid()
    }
}

enum Net {
    Mlp(Vec<nn::Linear>),
    Conv {
        layers: Vec<Gated>,
        out: Option<nn::Conv2D>,
    },
}

fn mlp(p: &nn::Path, sizes: &[i64]) -> Net {
    Net::Mlp(
        sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Init::Kaiming.linear(&(p / i), w[0], w[1]))
            .collect(),
    )
}

/// x `[batch, rows·cols]` → h `[batch, features]`.
pub struct Encoder {
    net: Net,
    rows: i64,
    cols: i64,
    pub features: i64,
}

impl Encoder {
    pub fn new(p: &nn::Path, arch: &Architecture, rows: i64, cols: i64) -> Self {
        let (net, features) = match arch {
            Architecture::Mlp { hidden } => {
                let mut sizes = vec![rows * cols];
                sizes.extend(hidden);
                (mlp(p, &sizes), *hidden.last().unwrap_or(&(rows * cols)))
            }
            Architecture::GatedConv {} => {
                // The last kernel covers what two stride-2 layers leave: 7×7 of 28×28, 7×5 of 28×20.
                let last = [rows / 4, cols / 4];
                let spec = [
                    (1, 32, [5, 5], 1, 2),
                    (32, 32, [5, 5], 2, 2),
                    (32, 64, [5, 5], 1, 2),
                    (64, 64, [5, 5], 2, 2),
                    (64, 64, [5, 5], 1, 2),
                    (64, 256, last, 1, 0),
                ];
                let layers = spec
                    .iter()
                    .enumerate()
                    .map(|(i, &(a, b, k, s, pad))| {
                        Gated::new(&(p / i), a, b, k, (s, pad, 0), false)
                    })
                    .collect();
                (Net::Conv { layers, out: None }, 256)
            }
        };
        Encoder {
            net,
            rows,
            cols,
            features,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        match &self.net {
            Net::Mlp(layers) => layers
                .iter()
                .fold(x.shallow_clone(), |h, l| l.forward(&h).relu()),
            Net::Conv { layers, .. } => {
                let img = x.reshape([-1, 1, self.rows, self.cols]);
                layers
                    .iter()
                    .fold(img, |h, l| l.forward(&h))
                    .reshape([-1, self.features])
            }
        }
    }
}

/// z `[batch, latent]` → `[batch, channels · rows · cols]` unconstrained outputs (channel-major:
/// all pixels of output channel 0 first), e.g. Bernoulli logits or Gaussian (mean, log-variance).
pub struct Decoder {
    net: Net,
    rows: i64,
    cols: i64,
    channels: i64,
}

impl Decoder {
    pub fn new(
        p: &nn::Path,
        arch: &Architecture,
        latent: i64,
        rows: i64,
        cols: i64,
        channels: i64,
    ) -> Self {
        let net = match arch {
            Architecture::Mlp { hidden } => {
                let mut sizes = vec![latent];
                sizes.extend(hidden.iter().rev());
                sizes.push(channels * rows * cols);
                mlp(p, &sizes)
            }
            Architecture::GatedConv {} => {
                let first = [rows / 4, cols / 4];
                let spec = [
                    (latent, 64, first, 1, 0, 0),
                    (64, 64, [5, 5], 1, 2, 0),
                    (64, 32, [5, 5], 2, 2, 1),
                    (32, 32, [5, 5], 1, 2, 0),
                    (32, 32, [5, 5], 2, 2, 1),
                    (32, 32, [5, 5], 1, 2, 0),
                ];
                let layers = spec
                    .iter()
                    .enumerate()
                    .map(|(i, &(a, b, k, s, pad, op))| {
                        Gated::new(&(p / i), a, b, k, (s, pad, op), true)
                    })
                    .collect();
                let out = nn::conv2d(p / "out", 32, channels, 1, Default::default());
                Net::Conv {
                    layers,
                    out: Some(out),
                }
            }
        };
        Decoder {
            net,
            rows,
            cols,
            channels,
        }
    }

    pub fn forward(&self, z: &Tensor) -> Tensor {
        match &self.net {
            Net::Mlp(layers) => {
                let n = layers.len();
                layers
                    .iter()
                    .enumerate()
                    .fold(z.shallow_clone(), |h, (i, l)| {
                        let y = l.forward(&h);
                        if i + 1 < n {
                            y.relu()
                        } else {
                            y
                        }
                    })
            }
            Net::Conv { layers, out } => {
                let h = layers
                    .iter()
                    .fold(z.reshape([-1, z.size()[1], 1, 1]), |h, l| l.forward(&h));
                let h = match out {
                    Some(o) => o.forward(&h),
                    None => h,
                };
                h.reshape([-1, self.channels * self.rows * self.cols])
            }
        }
    }
}
