//! Amortized posteriors q_K(z_K | x) of the VAE family (seed §5): a Gaussian q0(z0 | x) from the
//! encoder features h, optionally pushed through K flow steps whose parameters are computed from
//! h per sample:
//!
//! - `planar`, `radial` (Rezende & Mohamed 2015; seed §5.1): one linear head from h gives every
//!   step's (u, w, b) or (z₀, α′, β′); constraints are applied by the bijectors;
//! - `iaf` (Kingma et al. 2016; seed §5.2, eq. 51): K gated IAF steps whose MADEs are shared over
//!   data points and read a context vector computed from h; orders reversed between steps;
//! - `o_snf`, `h_snf`, `t_snf` (van den Berg et al. 2018; seed §5.3): per sample R₁, R₂ (upper
//!   triangular, diagonals through tanh), b, and Q (orthogonalized, Householder, or a permutation).
//!
//! Variables: `encoder.mean`, `encoder.var` (q0's heads, shared with a plain VAE so that a
//! trained VAE can initialize a flow VAE) and `posterior.*` (the flow's heads and networks).
use crate::bijector::autoregressive::GatedIaf;
use crate::bijector::planar::PlanarFlow;
use crate::bijector::radial::RadialFlow;
use crate::bijector::sylvester::{self, SylvesterFlow};
use crate::bijector::{Bijector, Chain};
use crate::nn::made::{orders, Made};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

fn default_iaf_hidden() -> Vec<i64> {
    vec![320, 320]
}
fn default_context() -> i64 {
    64
}
fn default_forget_bias() -> f64 {
    1.0
}

/// `"gaussian"`, `{"planar": {"length": 4}}`, `{"iaf": {"length": 4}}`,
/// `{"o_snf": {"length": 4, "columns": 32}}`, `{"h_snf": {"length": 4, "reflections": 8}}`,
/// `{"t_snf": {"length": 4}}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PosteriorConfig {
    /// Diagonal Gaussian q0 alone (the plain VAE; KL computed analytically, seed eq. 20).
    #[default]
    Gaussian,
    Planar {
        length: i64,
    },
    Radial {
        length: i64,
    },
    Iaf {
        length: i64,
        #[serde(default = "default_iaf_hidden")]
        hidden: Vec<i64>,
        /// Width of the context vector computed from h.
        #[serde(default = "default_context")]
        context: i64,
        #[serde(default = "default_forget_bias")]
        forget_bias: f64,
    },
    /// Orthogonal Sylvester flow: Q has `columns` (M ≤ latent size) orthonormal columns.
    OSnf {
        length: i64,
        columns: i64,
    },
    /// Householder Sylvester flow: Q is a product of `reflections` reflections (M = D).
    HSnf {
        length: i64,
        reflections: i64,
    },
    /// Triangular Sylvester flow: Q alternates between I and the reversal permutation.
    TSnf {
        length: i64,
    },
}

impl PosteriorConfig {
    pub fn length(&self) -> i64 {
        match self {
            PosteriorConfig::Gaussian => 0,
            PosteriorConfig::Planar { length }
            | PosteriorConfig::Radial { length }
            | PosteriorConfig::Iaf { length, .. }
            | PosteriorConfig::OSnf { length, .. }
            | PosteriorConfig::HSnf { length, .. }
            | PosteriorConfig::TSnf { length } => *length,
        }
    }

    /// A short label for tables: `planar-k4`, `o_snf-k4-m32`, …
    pub fn label(&self) -> String {
        let k = self.length();
        match self {
            PosteriorConfig::Gaussian => "gaussian".into(),
            PosteriorConfig::Planar { .. } => format!("planar-k{k}"),
            PosteriorConfig::Radial { .. } => format!("radial-k{k}"),
            PosteriorConfig::Iaf { .. } => format!("iaf-k{k}"),
            PosteriorConfig::OSnf { columns, .. } => format!("o_snf-k{k}-m{columns}"),
            PosteriorConfig::HSnf { reflections, .. } => format!("h_snf-k{k}-h{reflections}"),
            PosteriorConfig::TSnf { .. } => format!("t_snf-k{k}"),
        }
    }

    pub fn validate(&self, latent: i64, field: &str) -> Result<()> {
        if !matches!(self, PosteriorConfig::Gaussian) {
            ensure!(
                self.length() >= 1,
                "field `{field}`: length must be at least 1, got {}",
                self.length()
            );
        }
        match self {
            PosteriorConfig::Iaf {
                hidden, context, ..
            } => {
                ensure!(latent >= 2, "field `{field}`: iaf needs a latent size ≥ 2");
                ensure!(
                    !hidden.is_empty() && hidden.iter().all(|&h| h > 0) && *context > 0,
                    "field `{field}`: iaf needs positive hidden sizes and context"
                );
            }
            PosteriorConfig::OSnf { columns, .. } => ensure!(
                (1..=latent).contains(columns),
                "field `{field}.columns`: must be in 1..={latent} (the latent size), got {columns}"
            ),
            PosteriorConfig::HSnf { reflections, .. } => ensure!(
                *reflections >= 1,
                "field `{field}.reflections`: must be at least 1, got {reflections}"
            ),
            _ => {}
        }
        Ok(())
    }

    /// Per-step parameter count of the linear head.
    fn head_width(&self, d: i64) -> i64 {
        match self {
            PosteriorConfig::Gaussian | PosteriorConfig::Iaf { .. } => 0,
            PosteriorConfig::Planar { .. } => 2 * d + 1,
            PosteriorConfig::Radial { .. } => d + 2,
            // full M×M, two diagonals, b, and Q's free parameters
            PosteriorConfig::OSnf { columns: m, .. } => m * m + 3 * m + d * m,
            PosteriorConfig::HSnf { reflections, .. } => d * d + 3 * d + reflections * d,
            PosteriorConfig::TSnf { .. } => d * d + 3 * d,
        }
    }
}

/// q0's heads and the flow's parameter networks.
pub struct Posterior {
    pub config: PosteriorConfig,
    latent: i64,
    mean: nn::Linear,
    var: nn::Linear,
    head: Option<nn::Linear>,
    iaf: Option<(nn::Linear, Vec<GatedIafMade>)>,
}

/// One IAF step's MADE (shared over data points) and its forget bias.
struct GatedIafMade {
    made: Made,
    forget_bias: f64,
}

/// A sample from q0 pushed through the flow: z_K, ln q0(z0|x), Σ ln|det|, per-layer log-dets.
pub struct PosteriorSample {
    pub mean: Tensor,
    pub log_var: Tensor,
    pub z0: Tensor,
    pub z: Tensor,
    pub log_q0: Tensor,
    pub log_det: Tensor,
    pub layer_log_dets: Vec<Tensor>,
}

/// ln N(z; μ, σ²) summed over the last axis.
pub fn diag_normal_log_prob(z: &Tensor, mean: &Tensor, log_var: &Tensor) -> Tensor {
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    ((z - mean).square() * (-log_var).exp() + log_var + ln2pi).sum_dim_intlist(-1, false, z.kind())
        * -0.5
}

impl Posterior {
    /// `enc`: the encoder's path (q0's heads go there), `post`: the flow's path.
    pub fn new(
        enc: &nn::Path,
        post: &nn::Path,
        config: &PosteriorConfig,
        features: i64,
        latent: i64,
    ) -> Self {
        let k = config.length();
        let width = config.head_width(latent) * k;
        let head =
            (width > 0).then(|| nn::linear(post / "head", features, width, Default::default()));
        let iaf = match config {
            PosteriorConfig::Iaf {
                hidden,
                context,
                forget_bias,
                ..
            } => {
                let ctx = nn::linear(post / "context", features, *context, Default::default());
                let mades = orders(latent, k as usize, false)
                    .iter()
                    .enumerate()
                    .map(|(i, order)| GatedIafMade {
                        made: Made::new(&(post / "made" / i), order, hidden, 2, *context),
                        forget_bias: *forget_bias,
                    })
                    .collect();
                Some((ctx, mades))
            }
            _ => None,
        };
        Posterior {
            config: config.clone(),
            latent,
            mean: nn::linear(enc / "mean", features, latent, Default::default()),
            var: nn::linear(enc / "var", features, latent, Default::default()),
            head,
            iaf,
        }
    }

    /// q0's mean and log-variance from h; σ² = softplus(·) + 1e-6 (the Sylvester paper's choice,
    /// with a floor that keeps ln σ² finite).
    pub fn q0(&self, h: &Tensor) -> (Tensor, Tensor) {
        let var = self.var.forward(h).softplus() + 1e-6;
        (self.mean.forward(h), var.log())
    }

    /// The flow for features h (`[batch, features]`), and the context its layers read.
    pub fn flow(&self, h: &Tensor) -> Result<(Chain, Option<Tensor>)> {
        self.flow_repeated(h, 1)
    }

    /// The flow for each row of h, its parameters repeated `repeat` times per row (sample-major
    /// within a row): the heads (and Q's orthogonalization) run once per row, not per sample,
    /// which is what makes thousands of importance samples affordable.
    pub fn flow_repeated(&self, h: &Tensor, repeat: i64) -> Result<(Chain, Option<Tensor>)> {
        // One row: its parameters (batch axis 1) broadcast against all samples, with no copies.
        let rows = h.size()[0];
        let rep = |t: Tensor| {
            if repeat > 1 && rows > 1 {
                t.repeat_interleave_self_int(repeat, 0, None)
            } else {
                t
            }
        };
        let d = self.latent;
        let k = self.config.length();
        let layers: Vec<Box<dyn Bijector>> = match (&self.config, &self.head, &self.iaf) {
            (_, _, Some((ctx, mades))) => {
                let layers = mades
                    .iter()
                    .map(|m| {
                        Box::new(GatedIaf::new(m.made.shallow_clone(), m.forget_bias))
                            as Box<dyn Bijector>
                    })
                    .collect();
                return Ok((Chain::new(layers), Some(rep(ctx.forward(h)))));
            }
            (PosteriorConfig::Gaussian, _, _) | (_, None, _) => vec![],
            (cfg, Some(head), _) => {
                let raw = head.forward(h).reshape([-1, k, cfg.head_width(d)]);
                let b = raw.size()[0];
                let mut layers: Vec<Box<dyn Bijector>> = Vec::new();
                for i in 0..k {
                    let p = raw.select(1, i);
                    let mut at = 0;
                    let mut next = |n: i64| {
                        let t = p.narrow(1, at, n);
                        at += n;
                        t
                    };
                    let layer: Box<dyn Bijector> = match cfg {
                        PosteriorConfig::Planar { .. } => {
                            let (u, w, bias) = (next(d), next(d), next(1).squeeze_dim(1));
                            Box::new(PlanarFlow::new(rep(u), rep(w), rep(bias)))
                        }
                        PosteriorConfig::Radial { .. } => {
                            let (z0, a, bt) =
                                (next(d), next(1).squeeze_dim(1), next(1).squeeze_dim(1));
                            Box::new(RadialFlow::from_unconstrained(rep(z0), &rep(a), &rep(bt)))
                        }
                        PosteriorConfig::OSnf { columns: m, .. } => {
                            let (r1, r2, bias) = triangular(&mut next, b, *m);
                            let q = sylvester::orthogonalize(&next(d * m).reshape([b, d, *m]))?;
                            Box::new(SylvesterFlow::new(rep(q), rep(r1), rep(r2), rep(bias)))
                        }
                        PosteriorConfig::HSnf { reflections, .. } => {
                            let (r1, r2, bias) = triangular(&mut next, b, d);
                            let q = sylvester::householder(&next(reflections * d).reshape([
                                b,
                                *reflections,
                                d,
                            ]));
                            Box::new(SylvesterFlow::new(rep(q), rep(r1), rep(r2), rep(bias)))
                        }
                        PosteriorConfig::TSnf { .. } => {
                            let (r1, r2, bias) = triangular(&mut next, b, d);
                            let q = sylvester::permutation(d, i % 2 == 1, (p.kind(), p.device()));
                            Box::new(SylvesterFlow::new(q, rep(r1), rep(r2), rep(bias)))
                        }
                        PosteriorConfig::Gaussian | PosteriorConfig::Iaf { .. } => unreachable!(),
                    };
                    layers.push(layer);
                }
                layers
            }
        };
        Ok((Chain::new(layers), None))
    }

    /// Layer names for diagnostics: `planar0`, `planar1`, …
    pub fn layer_names(&self) -> Vec<String> {
        let kind = match &self.config {
            PosteriorConfig::Gaussian => return vec![],
            PosteriorConfig::Planar { .. } => "planar",
            PosteriorConfig::Radial { .. } => "radial",
            PosteriorConfig::Iaf { .. } => "iaf",
            PosteriorConfig::OSnf { .. } => "o_snf",
            PosteriorConfig::HSnf { .. } => "h_snf",
            PosteriorConfig::TSnf { .. } => "t_snf",
        };
        (0..self.config.length())
            .map(|i| format!("{kind}{i}"))
            .collect()
    }

    /// Draws `samples` z per row of h (rows repeated, sample-major within a row) and pushes them
    /// through the flow.
    pub fn sample(&self, h: &Tensor, samples: i64) -> Result<PosteriorSample> {
        let rep = |t: Tensor| {
            if samples > 1 {
                t.repeat_interleave_self_int(samples, 0, None)
            } else {
                t
            }
        };
        let (mean, log_var) = self.q0(h);
        let (mean, log_var) = (rep(mean), rep(log_var));
        let eps = mean.randn_like();
        let z0 = &mean + (&log_var * 0.5).exp() * &eps;
        let log_q0 = diag_normal_log_prob(&z0, &mean, &log_var);
        let (flow, context) = self.flow_repeated(h, samples)?;
        let (z, layer_log_dets) = flow.forward_layers(&z0, context.as_ref())?;
        let log_det = layer_log_dets
            .iter()
            .fold(z.select(1, 0).zeros_like(), |acc, l| acc + l);
        Ok(PosteriorSample {
            mean,
            log_var,
            z0,
            z,
            log_q0,
            log_det,
            layer_log_dets,
        })
    }

    pub fn is_gaussian(&self) -> bool {
        matches!(self.config, PosteriorConfig::Gaussian)
    }
}

/// R₁, R₂ and b for one Sylvester step from the next M² + 3M head outputs.
fn triangular(next: &mut impl FnMut(i64) -> Tensor, b: i64, m: i64) -> (Tensor, Tensor, Tensor) {
    let full = next(m * m).reshape([b, m, m]);
    let (d1, d2) = (next(m), next(m));
    let (r1, r2) = sylvester::upper_triangular(&full, &d1, &d2);
    (r1, r2, next(m))
}

/// The analytic KL(N(μ, σ²) ‖ N(0, I)) per row (seed eq. 20).
pub fn gaussian_kl(mean: &Tensor, log_var: &Tensor) -> Tensor {
    (mean.square() + log_var.exp() - 1.0 - log_var).sum_dim_intlist(-1, false, Kind::Float) * 0.5
}
