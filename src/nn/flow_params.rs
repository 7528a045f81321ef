//! Free (learnable, not amortized) parameters for a stack of flow layers, built from config.
//!
//! Parameters of K repeated layers are stored stacked (`u: [K, d]`, …) so the optimizer updates a
//! handful of tensors instead of 3K tiny ones and the planar constraint runs once for all K.
//! Names in checkpoints: `flow.<block>.<param>`, e.g. `flow.0.u` of shape `[K, d]`.
use crate::bijector::autoregressive::MaskedAutoregressive;
use crate::bijector::coupling::{alternating_mask, Coupling};
use crate::bijector::elementwise::{Affine, Exp, PReLU, Sigmoid, Tanh};
use crate::bijector::linear::{InvertibleLinear, LinearWeight, LuWeight};
use crate::bijector::planar::PlanarFlow;
use crate::bijector::radial::RadialFlow;
use crate::bijector::{Bijector, Chain, Invert};
use crate::nn::multiscale::{MultiScaleConfig, MultiScaleParams};
use crate::nn::{made::Made, mlp::Mlp};
use serde::{Deserialize, Serialize};
use tch::nn;

fn one() -> i64 {
    1
}

pub(crate) fn yes() -> bool {
    true
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

pub use crate::bijector::coupling::CouplingLaw;

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
    /// `batchnorm: true` follows each MADE with batch normalization in the density direction, as
    /// in the paper's experiments (momentum 0.1), keeping the block's orders (reversed or
    /// random) between layers. Density models only.
    Maf {
        #[serde(default = "one")]
        length: i64,
        #[serde(default = "default_hidden")]
        hidden: Vec<i64>,
        #[serde(default)]
        order: Order,
        #[serde(default)]
        iaf: bool,
        #[serde(default)]
        batchnorm: bool,
    },
    /// K coupling layers with alternating masks (NICE: additive, RealNVP: affine, neural
    /// spline: `{"spline": {"bins": 8, "bound": 3}}`), MLP conditioners with the given hidden
    /// sizes.
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
    /// Glow's invertible 1×1 convolution for vectors: an invertible linear map, LU-parameterized
    /// (`"lu": true`, O(D) log-det) or a plain matrix; initialized to a random rotation.
    Linear {
        #[serde(default = "yes")]
        lu: bool,
    },
    /// Glow's ActNorm: a per-feature affine map whose first data batch sets it so that the
    /// activations it passes on (towards the base) have zero mean and unit variance.
    Actnorm {},
    /// A fixed permutation of the coordinates: `"reverse"` or a seeded `"random"` order.
    Permute {
        #[serde(default)]
        order: Order,
    },
    /// Learnable elementwise shift and log-scale.
    Affine {},
    /// Learnable PReLU (seed eq. 61), α = sigmoid(a) ∈ (0, 1).
    Prelu {},
    Sigmoid,
    Tanh,
    Exp,
    /// A multi-scale image flow (Glow or RealNVP architecture) on flat images.
    Multiscale(MultiScaleConfig),
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
        /// One per MADE, or none.
        batchnorms: Vec<BatchNormParams>,
    },
    Coupling {
        nets: Vec<(tch::Tensor, Mlp)>,
        law: CouplingLaw,
    },
    BatchNorm(BatchNormParams),
    Linear(LinearWeight),
    ActNorm {
        shift: tch::Tensor,
        log_scale: tch::Tensor,
        /// 0 until the first data batch has set shift and scale; saved with the weights.
        initialized: tch::Tensor,
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
    MultiScale(Box<MultiScaleParams>),
    Permute(Vec<i64>),
}

struct BatchNormParams {
    log_gamma: tch::Tensor,
    beta: tch::Tensor,
    running_mean: tch::Tensor,
    running_var: tch::Tensor,
    momentum: f64,
}

impl BatchNormParams {
    /// The identity at the start: γ = 1, β = 0, running mean 0 and variance 1.
    fn new(q: &nn::Path, dim: i64, momentum: f64) -> Self {
        BatchNormParams {
            log_gamma: q.var("log_gamma", &[dim], nn::Init::Const(0.0)),
            beta: q.var("beta", &[dim], nn::Init::Const(0.0)),
            running_mean: q.zeros_no_train("running_mean", &[dim]),
            running_var: q.ones_no_train("running_var", &[dim]),
            momentum,
        }
    }

    fn bijector(&self, training: bool) -> crate::bijector::batchnorm::BatchNorm {
        crate::bijector::batchnorm::BatchNorm::new(
            self.log_gamma.shallow_clone(),
            self.beta.shallow_clone(),
            self.running_mean.shallow_clone(),
            self.running_var.shallow_clone(),
            self.momentum,
            training,
        )
    }
}

/// A random rotation (QR of a Gaussian matrix), as a plain matrix or in Glow's LU form.
pub fn build_linear(q: &nn::Path, dim: i64, lu: bool) -> LinearWeight {
    let (rot, _) = tch::Tensor::linalg_qr(
        &tch::Tensor::randn([dim, dim], (tch::Kind::Float, tch::Device::Cpu)),
        "reduced",
    );
    let rot = rot.to_device(q.device());
    if !lu {
        return LinearWeight::Plain(q.var_copy("weight", &rot));
    }
    let (p, l, u) = tch::Tensor::linalg_lu(&rot, true);
    let s = u.diagonal(0, 0, 1);
    let fixed = |name: &str, t: &tch::Tensor| {
        let mut v = q.zeros_no_train(name, &t.size());
        tch::no_grad(|| v.copy_(t));
        v
    };
    LinearWeight::Lu(LuWeight {
        p: fixed("p", &p),
        lower: q.var_copy("lower", &l.tril(-1)),
        upper: q.var_copy("upper", &u.triu(1)),
        log_s: q.var_copy("log_s", &s.abs().log()),
        sign_s: fixed("sign_s", &s.sign()),
    })
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
                    hidden,
                    order,
                    iaf,
                    batchnorm,
                    ..
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
                    let batchnorms = (0..k)
                        .filter(|_| *batchnorm)
                        .map(|j| BatchNormParams::new(&(&q / format!("bn{j}")), dim, 0.1))
                        .collect();
                    Block::Maf {
                        mades,
                        iaf: *iaf,
                        batchnorms,
                    }
                }
                LayerConfig::Coupling { hidden, law, .. } => {
                    anyhow::ensure!(dim >= 2, "flow[{i}]: coupling needs at least 2 dimensions");
                    anyhow::ensure!(
                        hidden.iter().all(|&h| h >= 1),
                        "flow[{i}]: hidden sizes must be positive"
                    );
                    law.validate()
                        .map_err(|e| anyhow::anyhow!("flow[{i}]: {e}"))?;
                    let out = law.params_per_dim() * dim;
                    let nets = (0..k as usize)
                        .map(|j| {
                            (
                                alternating_mask(dim, j, q.device()),
                                Mlp::new(&(&q / j), dim, hidden, out, true),
                            )
                        })
                        .collect();
                    Block::Coupling { nets, law: *law }
                }
                LayerConfig::Batchnorm { momentum } => {
                    anyhow::ensure!(
                        (0.0..=1.0).contains(momentum) && *momentum > 0.0,
                        "flow[{i}]: batchnorm momentum must be in (0, 1], got {momentum}"
                    );
                    Block::BatchNorm(BatchNormParams::new(&q, dim, *momentum))
                }
                LayerConfig::Linear { lu } => Block::Linear(build_linear(&q, dim, *lu)),
                LayerConfig::Actnorm {} => Block::ActNorm {
                    shift: q.var("shift", &[dim], nn::Init::Const(0.0)),
                    log_scale: q.var("log_scale", &[dim], nn::Init::Const(0.0)),
                    initialized: q.zeros_no_train("initialized", &[1]),
                },
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
                LayerConfig::Permute { order } => Block::Permute(match order {
                    Order::Reverse => (0..dim).rev().collect(),
                    Order::Random => crate::bijector::permute::random_order(dim),
                }),
                LayerConfig::Multiscale(ms) => {
                    let shape = match ms.shape {
                        Some(s) => s,
                        None => {
                            let side = (dim as f64).sqrt().round() as i64;
                            anyhow::ensure!(
                                side * side == dim,
                                "flow[{i}]: multiscale needs images; {dim} values per row are not a square single-channel image (set `shape`: [C, H, W])"
                            );
                            [1, side, side]
                        }
                    };
                    anyhow::ensure!(
                        shape.iter().product::<i64>() == dim,
                        "flow[{i}]: multiscale shape {shape:?} does not hold the data's {dim} values per row (images of the wrong size?)"
                    );
                    Block::MultiScale(Box::new(MultiScaleParams::build(&q, shape, ms)?))
                }
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
                LayerConfig::Coupling {
                    law: CouplingLaw::Spline { .. },
                    ..
                } => "spline_coupling",
                LayerConfig::Batchnorm { .. } => "batchnorm",
                LayerConfig::Linear { lu: true } => "linear_lu",
                LayerConfig::Linear { lu: false } => "linear",
                LayerConfig::Actnorm {} => "actnorm",
                LayerConfig::Affine {} => "affine",
                LayerConfig::Prelu {} => "prelu",
                LayerConfig::Sigmoid => "sigmoid",
                LayerConfig::Tanh => "tanh",
                LayerConfig::Exp => "exp",
                LayerConfig::Multiscale(_) => "multiscale",
                LayerConfig::Permute { .. } => "permute",
            };
            for j in 0..k {
                let name = if k > 1 {
                    format!("{i}.{kind}.{j}")
                } else {
                    format!("{i}.{kind}")
                };
                // Forward order: the batch normalization comes before its MADE, i.e. after it
                // in the density direction.
                if let LayerConfig::Maf {
                    batchnorm: true, ..
                } = cfg
                {
                    names.push(format!("{name}.batchnorm"));
                }
                names.push(name);
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

    /// Data-dependent initialization (Glow's ActNorm): passes `x` through the flow in the density
    /// direction and sets every ActNorm block not yet initialized so that what it passes on has
    /// zero mean and unit variance per feature. Returns how many blocks it set.
    pub fn data_init(&self, x: &tch::Tensor) -> anyhow::Result<usize> {
        let mut done = 0;
        tch::no_grad(|| -> anyhow::Result<()> {
            let chain = self.build_chain(false);
            let layers = chain.layers();
            // Layer index ranges of each block, in forward order.
            let mut ranges = Vec::new();
            let mut start = 0;
            for block in &self.blocks {
                let n = match block {
                    Block::Planar { u, .. } => u.size()[0] as usize,
                    Block::Radial { z0, .. } => z0.size()[0] as usize,
                    Block::Maf {
                        mades, batchnorms, ..
                    } => mades.len() + batchnorms.len(),
                    Block::Coupling { nets, .. } => nets.len(),
                    _ => 1,
                };
                ranges.push(start..start + n);
                start += n;
            }
            let mut y = x.shallow_clone();
            for (block, range) in self.blocks.iter().zip(ranges).rev() {
                if let Block::MultiScale(m) = block {
                    done += m.data_init(&y)?;
                }
                if let Block::ActNorm {
                    shift,
                    log_scale,
                    initialized,
                } = block
                {
                    if initialized.double_value(&[0]) == 0.0 {
                        // Density direction: u = (y − shift)·exp(−log_scale) → mean 0, variance 1.
                        let (mut s, mut l, mut i) = (
                            shift.shallow_clone(),
                            log_scale.shallow_clone(),
                            initialized.shallow_clone(),
                        );
                        s.copy_(&y.mean_dim(0, false, y.kind()));
                        l.copy_(&y.std_dim(0, false, false).clamp_min(1e-6).log());
                        let _ = i.fill_(1.0);
                        done += 1;
                    }
                }
                for layer in layers[range].iter().rev() {
                    y = layer.inverse(&y, None)?.0;
                }
            }
            Ok(())
        })?;
        Ok(done)
    }

    /// True when some layer behaves differently in training (batch normalization).
    pub fn has_batch_statistics(&self) -> bool {
        self.blocks.iter().any(|b| match b {
            Block::BatchNorm(_) => true,
            Block::Maf { batchnorms, .. } => !batchnorms.is_empty(),
            _ => false,
        })
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
                Block::Maf {
                    mades,
                    iaf,
                    batchnorms,
                } => {
                    for (j, made) in mades.iter().enumerate() {
                        if let Some(bn) = batchnorms.get(j) {
                            layers.push(Box::new(bn.bijector(training)));
                        }
                        let maf = MaskedAutoregressive::new(made.shallow_clone());
                        layers.push(if *iaf {
                            Box::new(Invert(Box::new(maf)))
                        } else {
                            Box::new(maf)
                        });
                    }
                }
                Block::Coupling { nets, law } => {
                    for (mask, net) in nets {
                        let mask = mask.to_kind(net.kind());
                        layers.push(Box::new(Coupling::new(
                            mask,
                            Box::new(net.shallow_clone()),
                            *law,
                        )));
                    }
                }
                Block::BatchNorm(bn) => layers.push(Box::new(bn.bijector(training))),
                Block::Linear(w) => layers.push(Box::new(InvertibleLinear::new(w.shallow_clone()))),
                Block::ActNorm {
                    shift, log_scale, ..
                } => layers.push(Box::new(Affine::new(
                    shift.shallow_clone(),
                    log_scale.shallow_clone(),
                ))),
                Block::Affine { shift, log_scale } => layers.push(Box::new(Affine::new(
                    shift.shallow_clone(),
                    log_scale.shallow_clone(),
                ))),
                Block::PReLU { a } => layers.push(Box::new(PReLU::new(a.sigmoid()))),
                Block::Sigmoid => layers.push(Box::new(Sigmoid)),
                Block::Tanh => layers.push(Box::new(Tanh)),
                Block::Exp => layers.push(Box::new(Exp)),
                Block::MultiScale(m) => layers.push(Box::new(m.bijector())),
                Block::Permute(p) => layers.push(Box::new(
                    crate::bijector::permute::Permute::new(p)
                        .unwrap_or_else(|_| unreachable!("built from a permutation")),
                )),
            }
        }
        Chain::new(layers)
    }
}
