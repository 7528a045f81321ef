//! Free (learnable, not amortized) parameters for a stack of flow layers, built from config.
//!
//! Parameters of K repeated layers are stored stacked (`u: [K, d]`, …) so the optimizer updates a
//! handful of tensors instead of 3K tiny ones and the planar constraint runs once for all K.
//! Names in checkpoints: `flow.<block>.<param>`, e.g. `flow.0.u` of shape `[K, d]`.
use crate::bijector::autoregressive::MaskedAutoregressive;
use crate::bijector::coupling::{alternating_mask, Coupling};
use crate::bijector::elementwise::{Affine, Exp, PReLU, Sigmoid, Tanh};
use crate::bijector::planar::PlanarFlow;
use crate::bijector::radial::RadialFlow;
use crate::bijector::{Bijector, Chain, Invert};
use crate::nn::{made::Made, mlp::Mlp};
use serde::{Deserialize, Serialize};
use tch::nn;

fn one() -> i64 {
    1
}

fn default_momentum() -> f64 {
    0.1
}

fn default_hidden() -> Vec<i64> {
    vec![64, 64]
}

/// Variable order of successive MADE layers.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// 1..D, then D..1, alternating (MAF and IAF papers).
    #[default]
    Reverse,
    /// A seeded random permutation per layer.
    Random,
}

/// The elementwise law of a coupling layer.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CouplingLaw {
    /// NICE: y₂ = x₂ + t(x₁), volume preserving.
    Additive,
    /// RealNVP: y₂ = x₂ ⊙ exp(s(x₁)) + t(x₁), s tanh-bounded.
    #[default]
    Affine,
}

/// One block of a flow, as written in an experiment config:
/// `{"planar": {"length": 8}}`, `{"radial": {"length": 4}}`, `{"affine": {}}`, `{"prelu": {}}`,
/// `"sigmoid"`, `"tanh"`, `"exp"`. Blocks apply in list order in the forward (sampling) direction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    /// K planar layers (Rezende & Mohamed 2015, seed eq. 37).
    Planar {
        #[serde(default = "one")]
        length: i64,
    },
    /// K radial layers (seed eq. 40).
    Radial {
        #[serde(default = "one")]
        length: i64,
    },
    /// K masked autoregressive layers (MAF, Papamakarios et al. 2017), MADE conditioners with
    /// the given hidden sizes; `iaf: true` inverts each layer (IAF: fast sampling, slow density).
    Maf {
        #[serde(default = "one")]
        length: i64,
        #[serde(default = "default_hidden")]
        hidden: Vec<i64>,
        #[serde(default)]
        order: Order,
        #[serde(default)]
        iaf: bool,
    },
    /// K coupling layers with alternating masks (NICE: additive, RealNVP: affine), MLP
    /// conditioners with the given hidden sizes.
    Coupling {
        #[serde(default = "one")]
        length: i64,
        #[serde(default = "default_hidden")]
        hidden: Vec<i64>,
        #[serde(default)]
        law: CouplingLaw,
    },
    /// Batch normalization in the density direction (RealNVP, MAF): batch statistics while
    /// training, running averages (updated with `momentum`) otherwise. Density models only.
    Batchnorm {
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// Learnable elementwise shift and log-scale.
    Affine {},
    /// Learnable PReLU (seed eq. 61), α = sigmoid(a) ∈ (0, 1).
    Prelu {},
    Sigmoid,
    Tanh,
    Exp,
}

impl LayerConfig {
    /// Number of bijector layers this block expands to.
    pub fn count(&self) -> i64 {
        match self {
            LayerConfig::Planar { length }
            | LayerConfig::Radial { length }
            | LayerConfig::Maf { length, .. }
            | LayerConfig::Coupling { length, .. } => *length,
            _ => 1,
        }
    }
}

enum Block {
    Planar {
        u: tch::Tensor,
        w: tch::Tensor,
        b: tch::Tensor,
    },
    Radial {
        z0: tch::Tensor,
        alpha: tch::Tensor,
        beta: tch::Tensor,
    },
    Maf {
        mades: Vec<Made>,
        iaf: bool,
    },
    Coupling {
        nets: Vec<(tch::Tensor, Mlp)>,
        affine: bool,
    },
    BatchNorm {
        log_gamma: tch::Tensor,
        beta: tch::Tensor,
        running_mean: tch::Tensor,
        running_var: tch::Tensor,
        momentum: f64,
    },
    Affine {
        shift: tch::Tensor,
        log_scale: tch::Tensor,
    },
    PReLU {
        a: tch::Tensor,
    },
    Sigmoid,
    Tanh,
    Exp,
}

/// The learnable parameters of a flow; `bijector()` assembles the current layers.
pub struct FlowParams {
    blocks: Vec<Block>,
    names: Vec<String>,
}

impl FlowParams {
    /// Creates the parameters under `p` (initialized as in normflows, for like-for-like
    /// comparisons: u ~ U(±√2), w ~ U(±√(2/d))·…, b = 0; radial z₀ ~ N(0, I), α', β' ~ U(±√(1/d))).
    pub fn build(layers: &[LayerConfig], p: &nn::Path, dim: i64) -> anyhow::Result<Self> {
        anyhow::ensure!(!layers.is_empty(), "the flow has no layers");
        let mut blocks = Vec::new();
        let mut names = Vec::new();
        for (i, cfg) in layers.iter().enumerate() {
            let q = p / i;
            anyhow::ensure!(
                cfg.count() >= 1,
                "flow[{i}]: length must be at least 1, got {}",
                cfg.count()
            );
            let k = cfg.count();
            let uni = |name: &str, shape: Vec<i64>, lim: f64| {
                q.var(name, &shape, nn::Init::Uniform { lo: -lim, up: lim })
            };
            let block = match cfg {
                LayerConfig::Planar { .. } => Block::Planar {
                    u: uni("u", vec![k, dim], 2f64.sqrt()),
                    w: uni("w", vec![k, dim], (2.0 / dim as f64).sqrt()),
                    b: q.var("b", &[k], nn::Init::Const(0.0)),
                },
                LayerConfig::Radial { .. } => Block::Radial {
                    z0: q.var(
                        "z0",
                        &[k, dim],
                        nn::Init::Randn {
                            mean: 0.0,
                            stdev: 1.0,
                        },
                    ),
                    alpha: uni("alpha", vec![k], (1.0 / dim as f64).sqrt()),
                    beta: uni("beta", vec![k], (1.0 / dim as f64).sqrt()),
                },
                LayerConfig::Maf {
                    hidden, order, iaf, ..
                } => {
                    anyhow::ensure!(dim >= 2, "flow[{i}]: maf needs at least 2 dimensions");
                    anyhow::ensure!(
                        hidden.iter().all(|&h| h >= 1),
                        "flow[{i}]: hidden sizes must be positive"
                    );
                    let orders = crate::nn::made::orders(dim, k as usize, *order == Order::Random);
                    let mades = orders
                        .iter()
                        .enumerate()
                        .map(|(j, o)| Made::new(&(&q / j), o, hidden, 2, 0))
                        .collect();
                    Block::Maf { mades, iaf: *iaf }
                }
                LayerConfig::Coupling { hidden, law, .. } => {
                    anyhow::ensure!(dim >= 2, "flow[{i}]: coupling needs at least 2 dimensions");
                    anyhow::ensure!(
                        hidden.iter().all(|&h| h >= 1),
                        "flow[{i}]: hidden sizes must be positive"
                    );
                    let affine = *law == CouplingLaw::Affine;
                    let out = if affine { 2 * dim } else { dim };
                    let nets = (0..k as usize)
                        .map(|j| {
                            (
                                alternating_mask(dim, j, q.device()),
                                Mlp::new(&(&q / j), dim, hidden, out, true),
                            )
                        })
                        .collect();
                    Block::Coupling { nets, affine }
                }
                LayerConfig::Batchnorm { momentum } => {
                    anyhow::ensure!(
                        (0.0..=1.0).contains(momentum) && *momentum > 0.0,
                        "flow[{i}]: batchnorm momentum must be in (0, 1], got {momentum}"
                    );
                    Block::BatchNorm {
                        log_gamma: q.var("log_gamma", &[dim], nn::Init::Const(0.0)),
                        beta: q.var("beta", &[dim], nn::Init::Const(0.0)),
                        running_mean: q.zeros_no_train("running_mean", &[dim]),
                        running_var: q.ones_no_train("running_var", &[dim]),
                        momentum: *momentum,
                    }
                }
                LayerConfig::Affine {} => Block::Affine {
                    shift: q.var("shift", &[dim], nn::Init::Const(0.0)),
                    log_scale: q.var("log_scale", &[dim], nn::Init::Const(0.0)),
                },
                // sigmoid(2) ≈ 0.88: starts close to the identity.
                LayerConfig::Prelu {} => Block::PReLU {
                    a: q.var("a", &[dim], nn::Init::Const(2.0)),
                },
                LayerConfig::Sigmoid => Block::Sigmoid,
                LayerConfig::Tanh => Block::Tanh,
                LayerConfig::Exp => Block::Exp,
            };
            let kind = match cfg {
                LayerConfig::Planar { .. } => "planar",
                LayerConfig::Radial { .. } => "radial",
                LayerConfig::Maf { iaf: false, .. } => "maf",
                LayerConfig::Maf { iaf: true, .. } => "iaf",
                LayerConfig::Coupling {
                    law: CouplingLaw::Affine,
                    ..
                } => "affine_coupling",
                LayerConfig::Coupling {
                    law: CouplingLaw::Additive,
                    ..
                } => "additive_coupling",
                LayerConfig::Batchnorm { .. } => "batchnorm",
                LayerConfig::Affine {} => "affine",
                LayerConfig::Prelu {} => "prelu",
                LayerConfig::Sigmoid => "sigmoid",
                LayerConfig::Tanh => "tanh",
                LayerConfig::Exp => "exp",
            };
            for j in 0..k {
                names.push(if k > 1 {
                    format!("{i}.{kind}.{j}")
                } else {
                    format!("{i}.{kind}")
                });
            }
            blocks.push(block);
        }
        Ok(FlowParams { blocks, names })
    }

    /// One name per bijector layer, in forward order (`"0.planar.3"`).
    pub fn layer_names(&self) -> &[String] {
        &self.names
    }

    /// The flow as a chain of bijectors built from the current parameter values (cheap views;
    /// call it once per step so gradients reach the parameters), in evaluation mode.
    pub fn bijector(&self) -> Chain {
        self.build_chain(false)
    }

    /// As [`bijector`](Self::bijector), with batch-statistics layers in training mode (their
    /// density pass uses and records the batch's statistics).
    pub fn training_bijector(&self) -> Chain {
        self.build_chain(true)
    }

    /// True when some layer behaves differently in training (batch normalization).
    pub fn has_batch_statistics(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, Block::BatchNorm { .. }))
    }

    fn build_chain(&self, training: bool) -> Chain {
        let mut layers: Vec<Box<dyn Bijector>> = Vec::with_capacity(self.names.len());
        for block in &self.blocks {
            match block {
                Block::Planar { u, w, b } => layers.extend(
                    PlanarFlow::stack(u, w, b)
                        .into_iter()
                        .map(|l| Box::new(l) as Box<dyn Bijector>),
                ),
                Block::Radial { z0, alpha, beta } => layers.extend(
                    RadialFlow::stack(z0, alpha, beta)
                        .into_iter()
                        .map(|l| Box::new(l) as Box<dyn Bijector>),
                ),
                Block::Maf { mades, iaf } => {
                    for made in mades {
                        let maf = MaskedAutoregressive::new(made.shallow_clone());
                        layers.push(if *iaf {
                            Box::new(Invert(Box::new(maf)))
                        } else {
                            Box::new(maf)
                        });
                    }
                }
                Block::Coupling { nets, affine } => {
                    for (mask, net) in nets {
                        let mask = mask.to_kind(net.kind());
                        layers.push(Box::new(Coupling::new(mask, net.shallow_clone(), *affine)));
                    }
                }
                Block::BatchNorm {
                    log_gamma,
                    beta,
                    running_mean,
                    running_var,
                    momentum,
                } => layers.push(Box::new(crate::bijector::batchnorm::BatchNorm::new(
                    log_gamma.shallow_clone(),
                    beta.shallow_clone(),
                    running_mean.shallow_clone(),
                    running_var.shallow_clone(),
                    *momentum,
                    training,
                ))),
                Block::Affine { shift, log_scale } => layers.push(Box::new(Affine::new(
                    shift.shallow_clone(),
                    log_scale.shallow_clone(),
                ))),
                Block::PReLU { a } => layers.push(Box::new(PReLU::new(a.sigmoid()))),
                Block::Sigmoid => layers.push(Box::new(Sigmoid)),
                Block::Tanh => layers.push(Box::new(Tanh)),
                Block::Exp => layers.push(Box::new(Exp)),
            }
        }
        Chain::new(layers)
    }
}
