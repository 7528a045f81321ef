//! Every flow layer flowlab has, in one list: [`LayerConfig`].
//!
//! A layer family lives in one file of this module: the bijector math, the config struct as a
//! JSON file writes it, and the layer that holds its parameters. A config implements
//! [`LayerSpec`] (validate, build); what it builds is a [`FlowLayer`], which hands out the
//! bijectors for one step. Free and amortized parameters are one mechanism
//! ([`params::LayerParams`]): built with `features` (a VAE encoder's output width), a planar,
//! radial, Sylvester or autoregressive layer computes its parameters per data point from those
//! features; built without, they are learnable tensors. So a density flow, a prior flow and a VAE
//! posterior are all lists of the same `LayerConfig`s.
//!
//! Adding a layer: its family file (math, config with `LayerSpec`, layer with `FlowLayer`), one
//! variant and one `spec` arm here, one entry in the test list of `tests/flow_layers.rs`.
//!
//! Direction: blocks apply in list order in the forward (sampling) direction, base → data.
//! Checkpoint names: `flow.<block>.<param>`, e.g. `flow.0.u` of shape `[K, d]` for K planar
//! layers (K repeated layers are stored stacked, so the optimizer updates a handful of tensors).
pub mod actnorm;
pub mod autoregressive;
pub mod batchnorm;
pub mod coupling;
pub mod elementwise;
pub mod image;
pub mod linear;
pub mod multiscale;
pub mod multiscale_layer;
pub mod params;
pub mod permute;
pub mod planar;
pub mod radial;
pub mod sylvester;
pub mod sylvester_parts;

use crate::bijector::{Bijector, Chain};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// One block of a flow as written in a config: `{"planar": {"length": 8}}`, `{"maf": {…}}`,
/// `"sigmoid"`, … The same list serves density flows, prior flows and VAE posteriors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    /// Planar layers (Rezende & Mohamed 2015, eq. 10).
    Planar(planar::PlanarConfig),
    /// Radial layers (Rezende & Mohamed 2015, eq. 14).
    Radial(radial::RadialConfig),
    /// Masked autoregressive layers (MAF, Papamakarios et al. 2017) with an affine, additive or
    /// spline transformer; `iaf: true` inverts them (IAF direction).
    Maf(autoregressive::MafConfig),
    /// Gated IAF steps (Kingma et al. 2016, eq. 11–14).
    Iaf(autoregressive::IafConfig),
    /// Orthogonal Sylvester layers (van den Berg et al. 2018).
    OSnf(sylvester::OSnfConfig),
    /// Householder Sylvester layers.
    HSnf(sylvester::HSnfConfig),
    /// Triangular Sylvester layers.
    TSnf(sylvester::TSnfConfig),
    /// Coupling layers with alternating masks (NICE, RealNVP, neural spline couplings).
    Coupling(coupling::CouplingConfig),
    /// Batch normalization in the density direction (RealNVP, MAF).
    Batchnorm(batchnorm::BatchNormConfig),
    /// Glow's invertible 1×1 convolution for vectors (LU or plain).
    Linear(linear::LinearConfig),
    /// Glow's ActNorm with data-dependent initialization.
    Actnorm(actnorm::ActNormConfig),
    /// A fixed permutation of the coordinates.
    Permute(permute::PermuteConfig),
    /// Learnable elementwise shift and log-scale.
    Affine(elementwise::AffineConfig),
    /// Learnable PReLU, α = sigmoid(a) ∈ (0, 1).
    Prelu(elementwise::PreluConfig),
    Sigmoid,
    Tanh,
    Exp,
    /// A multi-scale image flow (Glow or RealNVP architecture) on flat images.
    Multiscale(multiscale_layer::MultiScaleConfig),
}

impl LayerConfig {
    /// The family's config behind this block (the one place that lists every kind).
    pub fn spec(&self) -> &dyn LayerSpec {
        match self {
            LayerConfig::Planar(c) => c,
            LayerConfig::Radial(c) => c,
            LayerConfig::Maf(c) => c,
            LayerConfig::Iaf(c) => c,
            LayerConfig::OSnf(c) => c,
            LayerConfig::HSnf(c) => c,
            LayerConfig::TSnf(c) => c,
            LayerConfig::Coupling(c) => c,
            LayerConfig::Batchnorm(c) => c,
            LayerConfig::Linear(c) => c,
            LayerConfig::Actnorm(c) => c,
            LayerConfig::Permute(c) => c,
            LayerConfig::Affine(c) => c,
            LayerConfig::Prelu(c) => c,
            LayerConfig::Sigmoid => &elementwise::Fixed::Sigmoid,
            LayerConfig::Tanh => &elementwise::Fixed::Tanh,
            LayerConfig::Exp => &elementwise::Fixed::Exp,
            LayerConfig::Multiscale(c) => c,
        }
    }

    /// A short label for tables: `planar-k4`, `o_snf-k4-m32`, …
    pub fn label(&self) -> String {
        self.spec().label()
    }
}

/// Where a layer is built: its variable path, the dimension it acts on, and the width of the
/// per-data-point features its parameters are computed from (`None`: free parameters).
pub struct Site<'a> {
    pub path: &'a nn::Path<'a>,
    pub dim: i64,
    pub features: Option<i64>,
}

/// A layer family's config: checks and builds it.
pub trait LayerSpec {
    /// Why this config cannot be built, if it cannot; `dim` is checked when known.
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        Ok(())
    }
    /// The parameters at `site` (call [`validate`](Self::validate) first; [`Flow`] does).
    fn build(&self, site: &Site) -> Result<Box<dyn FlowLayer>>;
    /// A short label for tables (`planar-k4`).
    fn label(&self) -> String;
}

/// Which statistics batch normalization normalizes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistics {
    /// The stored running statistics (evaluation).
    Running,
    /// The batch's, folded into the running averages with the layer's momentum (training).
    Batch,
    /// The batch's, stored as the running statistics outright (momentum 1): one pass over the
    /// whole training set gives each layer the training set's statistics (MAF, §3.4, and
    /// RealNVP, §3.7, evaluate with these).
    Record,
}

/// What a layer is given when it hands out its bijectors for one step.
pub struct LayerInput<'a> {
    /// What batch-statistics layers normalize with.
    pub statistics: Statistics,
    /// Per-data-point features (`[rows, features]`) for amortized layers.
    pub features: Option<&'a Tensor>,
    /// Samples per row of `features` (importance sampling): parameters computed once per row are
    /// repeated this many times (sample-major within a row); one row broadcasts instead.
    pub repeat: i64,
}

impl LayerInput<'_> {
    /// Evaluation mode, free parameters only.
    pub fn eval() -> LayerInput<'static> {
        LayerInput {
            statistics: Statistics::Running,
            features: None,
            repeat: 1,
        }
    }

    /// `t` (`[rows, …]`, one row per row of the features) repeated to one row per sample.
    pub fn rep(&self, t: Tensor) -> Tensor {
        let rows = self.features.map_or(1, |f| f.size()[0]);
        if self.repeat > 1 && rows > 1 {
            t.repeat_interleave_self_int(self.repeat, 0, None)
        } else {
            t
        }
    }
}

/// A built layer: its parameters, and the bijectors they make.
pub trait FlowLayer: Send {
    /// One name per bijector, forward order, without the block index (`planar.3`).
    fn names(&self) -> Vec<String>;
    /// The bijectors for the current parameter values (cheap views: call once per step so
    /// gradients reach the parameters), forward order.
    fn bijectors(&self, input: &LayerInput) -> Result<Vec<Box<dyn Bijector>>>;
    /// Data-dependent initialization from `y`, this layer's output in the forward direction (its
    /// input in the density direction). Returns how many sub-layers it set.
    fn data_init(&self, _y: &Tensor) -> Result<usize> {
        Ok(0)
    }
    /// True when the layer behaves differently in training (batch normalization).
    fn has_batch_statistics(&self) -> bool {
        false
    }
}

/// `kind.0 … kind.{k−1}`, or `kind` alone for one layer.
pub fn numbered(kind: &str, k: i64) -> Vec<String> {
    if k == 1 {
        return vec![kind.to_string()];
    }
    (0..k).map(|j| format!("{kind}.{j}")).collect()
}

/// The default `length` of a block: one layer.
pub fn one() -> i64 {
    1
}

/// Checks `length` (the number of layers a block expands to).
pub fn check_length(length: i64) -> Result<(), String> {
    if length < 1 {
        return Err(format!("length must be at least 1, got {length}"));
    }
    Ok(())
}

/// A flow: blocks built from a list of [`LayerConfig`]s.
pub struct Flow {
    blocks: Vec<Box<dyn FlowLayer>>,
    names: Vec<String>,
}

impl Flow {
    /// Builds every block under `p / i`.
    pub fn build(
        configs: &[LayerConfig],
        p: &nn::Path,
        dim: i64,
        features: Option<i64>,
    ) -> Result<Self> {
        ensure!(!configs.is_empty(), "the flow has no layers");
        let paths: Vec<nn::Path> = (0..configs.len()).map(|i| p / i).collect();
        Self::build_at(configs, &paths, dim, features)
    }

    /// One block whose variables live directly under `p` (a VAE posterior of one block keeps
    /// the short names `posterior.head`, `posterior.made.0`, …).
    pub fn single(
        config: &LayerConfig,
        p: &nn::Path,
        dim: i64,
        features: Option<i64>,
    ) -> Result<Self> {
        Self::build_at(
            std::slice::from_ref(config),
            std::slice::from_ref(p),
            dim,
            features,
        )
    }

    fn build_at(
        configs: &[LayerConfig],
        paths: &[nn::Path],
        dim: i64,
        features: Option<i64>,
    ) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut names = Vec::new();
        for (i, (cfg, path)) in configs.iter().zip(paths).enumerate() {
            let spec = cfg.spec();
            spec.validate(Some(dim))
                .map_err(|e| anyhow::anyhow!("flow[{i}]: {e}"))?;
            let site = Site {
                path,
                dim,
                features,
            };
            let block = spec.build(&site).with_context(|| format!("flow[{i}]"))?;
            names.extend(block.names().into_iter().map(|n| format!("{i}.{n}")));
            blocks.push(block);
        }
        Ok(Flow { blocks, names })
    }

    /// One name per bijector layer, in forward order (`"0.planar.3"`).
    pub fn layer_names(&self) -> &[String] {
        &self.names
    }

    /// The flow built from the current parameter values, in evaluation mode (free parameters).
    pub fn bijector(&self) -> Chain {
        self.chain(&LayerInput::eval())
            .unwrap_or_else(|e| panic!("a flow of free parameters builds without input: {e}"))
    }

    /// As [`bijector`](Self::bijector), with batch-statistics layers in training mode.
    pub fn training_bijector(&self) -> Chain {
        self.chain_with(Statistics::Batch)
    }

    fn chain_with(&self, statistics: Statistics) -> Chain {
        let input = LayerInput {
            statistics,
            ..LayerInput::eval()
        };
        self.chain(&input)
            .unwrap_or_else(|e| panic!("a flow of free parameters builds without input: {e}"))
    }

    /// Sets every batch-normalization layer's running statistics to those of `x` (the whole
    /// training set), as the MAF paper evaluates (Papamakarios et al. 2017, §3.4): one density
    /// pass with [`Statistics::Record`], so each layer records what the layers before it give
    /// in evaluation.
    pub fn record_statistics(&self, x: &Tensor) -> Result<()> {
        let _ = tch::no_grad(|| self.chain_with(Statistics::Record).inverse(x, None))?;
        Ok(())
    }

    /// The flow for `input` (amortized layers read its features).
    pub fn chain(&self, input: &LayerInput) -> Result<Chain> {
        let mut layers = Vec::with_capacity(self.names.len());
        for block in &self.blocks {
            layers.extend(block.bijectors(input)?);
        }
        Ok(Chain::new(layers))
    }

    /// Data-dependent initialization (Glow's ActNorm): passes `x` through the flow in the density
    /// direction, letting each block initialize itself from what reaches it. Returns how many
    /// sub-layers were set.
    pub fn data_init(&self, x: &Tensor) -> Result<usize> {
        tch::no_grad(|| {
            let mut done = 0;
            let mut y = x.shallow_clone();
            for block in self.blocks.iter().rev() {
                done += block.data_init(&y)?;
                for layer in block.bijectors(&LayerInput::eval())?.iter().rev() {
                    y = layer.inverse(&y, None)?.0;
                }
            }
            Ok(done)
        })
    }

    /// True when some layer behaves differently in training (batch normalization).
    pub fn has_batch_statistics(&self) -> bool {
        self.blocks.iter().any(|b| b.has_batch_statistics())
    }
}
