//! Parameters of a multi-scale image flow ([`crate::flow::multiscale`]) built from config:
//!
//! - `glow` (Kingma & Dhariwal 2018, Fig. 2): per level, squeeze then K steps of ActNorm,
//!   invertible 1×1 convolution (LU or plain) and affine coupling with a channel mask;
//! - `realnvp` (Dinh et al. 2016, §3.6): per level, K checkerboard couplings, squeeze, K channel
//!   couplings; the last level K + 1 checkerboard couplings.
//!
//! Every level but the last factors out half of its channels through a learned conditional prior;
//! the top has a learned per-channel Gaussian. Coupling networks are [`ConvNet`]s.
use super::actnorm::ActNorm;
use super::linear::{build_linear, yes};
use super::{FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::elementwise::Affine;
use crate::bijector::law::Law;
use crate::bijector::{Bijector, Chain, Invert};
use crate::flow::coupling::Coupling;
use crate::flow::image::{channel_mask, checkerboard_mask, PerPixel, Squeeze};
use crate::flow::linear::{InvertibleLinear, LinearWeight};
use crate::flow::multiscale::{Level, MultiScale, SplitPrior};
use crate::nn::convnet::ConvNet;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MultiScaleKind {
    #[default]
    Glow,
    Realnvp,
}

/// A multi-scale image flow as written in a config, e.g. `{"multiscale": {"kind": "glow",
/// "levels": 2, "steps": 4, "hidden": 32, "lu": true, "law": "affine"}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultiScaleConfig {
    #[serde(default)]
    pub kind: MultiScaleKind,
    #[serde(default = "two")]
    pub levels: i64,
    /// Flow steps per level (Glow: ActNorm, 1×1 conv, coupling; RealNVP: couplings per mask).
    #[serde(default = "four")]
    pub steps: i64,
    /// Channels of the coupling networks' hidden layers.
    #[serde(default = "sixty_four")]
    pub hidden: i64,
    /// Glow's 1×1 convolution in the LU-decomposed form (false: a plain matrix).
    #[serde(default = "yes")]
    pub lu: bool,
    /// The couplings' elementwise law: affine (the papers'), additive (Glow's ablation) or a
    /// rational-quadratic spline (Durkan et al. 2019 use it in a Glow-like architecture).
    #[serde(default)]
    pub law: Law,
    /// `[C, H, W]` of the flat rows (default: one square channel).
    #[serde(default)]
    pub shape: Option<[i64; 3]>,
}

fn two() -> i64 {
    2
}
fn four() -> i64 {
    4
}
fn sixty_four() -> i64 {
    64
}

enum Step {
    Squeeze,
    ActNorm(ActNorm),
    InvConv(LinearWeight),
    Coupling {
        mask: Tensor,
        net: ConvNet,
        law: Law,
    },
}

struct LevelParams {
    /// In the density direction (data → base).
    steps: Vec<Step>,
    split: Option<ConvNet>,
}

pub struct MultiScaleParams {
    shape: [i64; 3],
    levels: Vec<LevelParams>,
    top: (Tensor, Tensor),
    pieces: Vec<Vec<i64>>,
}

impl MultiScaleParams {
    /// The parameters `cfg` describes for images of `shape` (`cfg.shape` is not consulted).
    pub fn build(p: &nn::Path, shape: [i64; 3], cfg: &MultiScaleConfig) -> Result<Self> {
        LayerSpec::validate(cfg, None).map_err(anyhow::Error::msg)?;
        let dev = p.device();
        let mut cur = shape;
        let mut out = Vec::new();
        for l in 0..cfg.levels {
            out.push(build_level(&(p / l), cfg, &mut cur, shape, l)?);
        }
        let t = p / "top";
        let top = (t.zeros("shift", &[cur[0]]), t.zeros("log_scale", &[cur[0]]));
        let mut params = MultiScaleParams {
            shape,
            levels: out,
            top,
            pieces: vec![],
        };
        let probe = MultiScale::new(shape, params.levels(), params.top(), (Kind::Float, dev))?;
        params.pieces = probe.pieces().to_vec();
        Ok(params)
    }

    fn levels(&self) -> Vec<Level> {
        self.levels
            .iter()
            .map(|l| Level {
                // Chain order is forward (base → data): the density order reversed.
                flow: Chain::new(l.steps.iter().rev().map(Self::step_bijector).collect()),
                split: l.split.as_ref().map(|n| SplitPrior {
                    net: Box::new(n.shallow_clone()),
                }),
            })
            .collect()
    }

    fn top(&self) -> Box<dyn Bijector> {
        Box::new(PerPixel(Box::new(Affine::new(
            self.top.0.shallow_clone(),
            self.top.1.shallow_clone(),
        ))))
    }

    fn step_bijector(step: &Step) -> Box<dyn Bijector> {
        match step {
            // Density direction squeezes: the forward (sampling) direction un-squeezes.
            Step::Squeeze => Box::new(Invert(Box::new(Squeeze))),
            Step::ActNorm(a) => Box::new(PerPixel(Box::new(a.affine()))),
            Step::InvConv(w) => {
                Box::new(PerPixel(Box::new(InvertibleLinear::new(w.shallow_clone()))))
            }
            Step::Coupling { mask, net, law } => Box::new(Coupling::new(
                mask.shallow_clone(),
                Box::new(net.shallow_clone()),
                *law,
            )),
        }
    }

    pub fn bijector(&self) -> MultiScale {
        MultiScale::with_pieces(self.shape, self.levels(), self.top(), self.pieces.clone())
    }

    /// Glow's ActNorm initialization: walks `x` (flat `[B, C·H·W]`) through the levels in the density
    /// direction and sets each uninitialized ActNorm so that its output has zero mean and unit
    /// variance per channel on this batch. Returns how many it set.
    pub fn data_init(&self, x: &Tensor) -> Result<usize> {
        let mut done = 0;
        tch::no_grad(|| -> Result<()> {
            let [c, h, w] = self.shape;
            let mut y = x.reshape([x.size()[0], c, h, w]);
            for level in &self.levels {
                for step in &level.steps {
                    if let Step::ActNorm(a) = step {
                        done += usize::from(a.init_from(&y, &[0, 2, 3]));
                    }
                    y = Self::step_bijector(step).inverse(&y, None)?.0;
                }
                if level.split.is_some() {
                    let ch = y.size()[1];
                    y = y.narrow(1, ch / 2, ch - ch / 2);
                }
            }
            Ok(())
        })?;
        Ok(done)
    }
}

impl MultiScaleParams {
    /// (shift, log-scale) of every ActNorm, in density order (for inspection and tests).
    pub fn actnorms(&self) -> Vec<(Tensor, Tensor)> {
        self.levels
            .iter()
            .flat_map(|l| l.steps.iter())
            .filter_map(|s| match s {
                Step::ActNorm(a) => Some(a.values()),
                _ => None,
            })
            .collect()
    }
}

impl LayerSpec for MultiScaleConfig {
    fn validate(&self, dim: Option<i64>) -> Result<(), String> {
        if self.levels < 1 || self.steps < 1 || self.hidden < 1 {
            return Err("multiscale: levels, steps and hidden must be at least 1".into());
        }
        self.law
            .validate()
            .map_err(|e| format!("multiscale: {e}"))?;
        match dim {
            Some(d) => self.image_shape(d).map(|_| ()),
            None => Ok(()),
        }
    }

    fn build(&self, site: &Site) -> Result<Box<dyn FlowLayer>> {
        ensure!(
            site.features.is_none(),
            "multiscale image flows cannot be part of a VAE posterior"
        );
        let shape = self.image_shape(site.dim).map_err(anyhow::Error::msg)?;
        Ok(Box::new(MultiScaleParams::build(site.path, shape, self)?))
    }

    fn label(&self) -> String {
        format!("multiscale-{:?}", self.kind).to_lowercase()
    }
}

impl MultiScaleConfig {
    /// `[C, H, W]` of rows of `dim` values: `shape`, or one square channel.
    fn image_shape(&self, dim: i64) -> Result<[i64; 3], String> {
        let shape = match self.shape {
            Some(s) => s,
            None => {
                let side = (dim as f64).sqrt().round() as i64;
                if side * side != dim {
                    return Err(format!("multiscale needs images; {dim} values per row are not a square single-channel image (set `shape`: [C, H, W])"));
                }
                [1, side, side]
            }
        };
        if shape.iter().product::<i64>() != dim {
            return Err(format!("multiscale shape {shape:?} does not hold the data's {dim} values per row (images of the wrong size?)"));
        }
        Ok(shape)
    }
}

impl FlowLayer for MultiScaleParams {
    fn names(&self) -> Vec<String> {
        vec!["multiscale".into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(self.bijector())])
    }

    fn data_init(&self, y: &Tensor) -> Result<usize> {
        MultiScaleParams::data_init(self, y)
    }
}

/// Level `l` of the flow on images of `cur` channels×rows×cols (updated to what the level passes
/// on): its steps in the density direction and, but for the last level, its split prior.
fn build_level(
    q: &nn::Path,
    cfg: &MultiScaleConfig,
    cur: &mut [i64; 3],
    shape: [i64; 3],
    l: i64,
) -> Result<LevelParams> {
    let last = l + 1 == cfg.levels;
    let st = level_steps(q, cfg, cur, shape, l)?;
    let hidden = cfg.hidden;
    let split = (!last).then(|| {
        let keep = cur[0] - cur[0] / 2;
        let net = ConvNet::new(&(q / "split_prior"), keep, hidden, 2 * (cur[0] / 2));
        *cur = [keep, cur[1], cur[2]];
        net
    });
    ensure!(
        last || cur[0] >= 1,
        "multiscale: nothing left to factor out at level {}",
        l + 1
    );
    Ok(LevelParams { steps: st, split })
}

/// The steps of level `l` in the density direction (Glow: squeeze, then K × (ActNorm, 1×1
/// convolution, channel coupling); RealNVP: checkerboard couplings, squeeze, channel couplings).
fn level_steps(
    q: &nn::Path,
    cfg: &MultiScaleConfig,
    cur: &mut [i64; 3],
    shape: [i64; 3],
    l: i64,
) -> Result<Vec<Step>> {
    let MultiScaleConfig {
        kind,
        levels,
        steps,
        hidden,
        lu,
        law,
        ..
    } = *cfg;
    let dev = q.device();
    let squeeze = |cur: &mut [i64; 3], l: i64| -> Result<()> {
        ensure!(
            cur[1] % 2 == 0 && cur[2] % 2 == 0,
            "multiscale: level {} cannot squeeze a {}×{} image (needs even sides); the data's images are {}×{}×{} — use fewer levels",
            l + 1, cur[1], cur[2], shape[0], shape[1], shape[2]
        );
        *cur = [cur[0] * 4, cur[1] / 2, cur[2] / 2];
        Ok(())
    };
    let last = l + 1 == levels;
    let mut st = Vec::new();
    let mut k = 0;
    let mut coupling = |cur: [i64; 3], checker: bool, st: &mut Vec<Step>| {
        let mask = if checker {
            checkerboard_mask(cur, k % 2, dev)
        } else {
            channel_mask(cur, k % 2, dev)
        };
        st.push(Step::Coupling {
            mask,
            net: ConvNet::new(
                &(q / format!("coupling{k}")),
                cur[0],
                hidden,
                law.params_per_dim() * cur[0],
            ),
            law,
        });
        k += 1;
    };
    match kind {
        MultiScaleKind::Glow => {
            squeeze(cur, l)?;
            st.push(Step::Squeeze);
            for s in 0..steps {
                let a = q / format!("actnorm{s}");
                st.push(Step::ActNorm(ActNorm::new(&a, cur[0])));
                st.push(Step::InvConv(build_linear(
                    &(q / format!("invconv{s}")),
                    cur[0],
                    lu,
                )));
                coupling(*cur, false, &mut st);
            }
        }
        MultiScaleKind::Realnvp => {
            for _ in 0..steps + i64::from(last) {
                coupling(*cur, true, &mut st);
            }
            if !last {
                squeeze(cur, l)?;
                st.push(Step::Squeeze);
                for _ in 0..steps {
                    coupling(*cur, false, &mut st);
                }
            }
        }
    }
    Ok(st)
}
