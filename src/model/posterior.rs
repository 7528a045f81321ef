//! Amortized posteriors q_K(z_K | x) of the VAE family: a Gaussian q0(z0 | x) from the encoder
//! features h, optionally pushed through flow blocks (any [`LayerConfig`]) whose parameters are
//! computed from h per sample (Rezende & Mohamed 2015, §4):
//!
//! - `planar`, `radial`: one linear head from h gives every step's (u, w, b) or (z₀, α′, β′);
//! - `iaf` (Kingma et al. 2016, eq. 11–14), `maf` with `iaf: true`: MADEs shared over data
//!   points read a context vector computed from h;
//! - `o_snf`, `h_snf`, `t_snf` (van den Berg et al. 2018): per sample R₁, R₂, b and Q.
//!
//! Variables: `encoder.mean`, `encoder.var` (q0's heads, shared with a plain VAE so that a
//! trained VAE can initialize a flow VAE) and `posterior.*` (the flow's heads and networks).
use crate::bijector::Chain;
use crate::flow::{Flow, LayerConfig, LayerInput};
use crate::nn::init::Init;
use anyhow::Result;
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tch::{nn, nn::Module, Tensor};

/// The posterior as written in a config: `"gaussian"`, one flow block (`{"planar": {"length":
/// 4}}`, `{"iaf": {…}}`, `{"o_snf": {"length": 4, "columns": 32}}`, …) or a list of blocks. Flow
/// blocks are the same [`LayerConfig`]s as a density flow's; here they compute their parameters
/// from the encoder's features.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PosteriorConfig {
    /// Diagonal Gaussian q0 alone (the plain VAE; KL computed analytically).
    #[default]
    Gaussian,
    /// q0 pushed through these flow blocks.
    Flow(Vec<LayerConfig>),
}

impl Serialize for PosteriorConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PosteriorConfig::Gaussian => s.serialize_str("gaussian"),
            PosteriorConfig::Flow(v) if v.len() == 1 => v[0].serialize(s),
            PosteriorConfig::Flow(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PosteriorConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> de::Visitor<'de> for Visit {
            type Value = PosteriorConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"gaussian\", a flow block such as {\"planar\": {\"length\": 4}}, or a list of blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "gaussian" {
                    return Ok(PosteriorConfig::Gaussian);
                }
                let layer = LayerConfig::deserialize(v.into_deserializer())?;
                Ok(PosteriorConfig::Flow(vec![layer]))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let layer = LayerConfig::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PosteriorConfig::Flow(vec![layer]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let layers =
                    Vec::<LayerConfig>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(PosteriorConfig::Flow(layers))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl PosteriorConfig {
    /// A short label for tables: `gaussian`, `planar-k4`, `o_snf-k4-m32`, blocks joined by `+`.
    pub fn label(&self) -> String {
        match self {
            PosteriorConfig::Gaussian => "gaussian".into(),
            PosteriorConfig::Flow(v) => v.iter().map(|l| l.label()).collect::<Vec<_>>().join("+"),
        }
    }

    /// Checks every block against the latent size.
    pub fn validate(&self, latent: i64, field: &str) -> Result<()> {
        if let PosteriorConfig::Flow(v) = self {
            anyhow::ensure!(
                !v.is_empty(),
                "field `{field}`: needs at least one flow block"
            );
            for (i, l) in v.iter().enumerate() {
                let at = if v.len() == 1 {
                    field.to_string()
                } else {
                    format!("{field}[{i}]")
                };
                l.spec()
                    .validate(Some(latent))
                    .map_err(|e| anyhow::anyhow!("field `{at}`: {e}"))?;
            }
        }
        Ok(())
    }
}

/// q0's heads and the flow whose parameters the encoder's features give.
pub struct Posterior {
    pub config: PosteriorConfig,
    mean: nn::Linear,
    var: nn::Linear,
    flow: Option<Flow>,
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

pub use crate::distribution::diag_normal_log_prob;

impl Posterior {
    /// `enc`: the encoder's path (q0's heads go there), `post`: the flow's path. A single flow
    /// block keeps its variables directly under `post` (`posterior.head`, `posterior.made.0`).
    pub fn new(
        enc: &nn::Path,
        post: &nn::Path,
        config: &PosteriorConfig,
        features: i64,
        latent: i64,
    ) -> Result<Self> {
        let flow = match config {
            PosteriorConfig::Gaussian => None,
            PosteriorConfig::Flow(v) if v.len() == 1 => {
                Some(Flow::single(&v[0], post, latent, Some(features))?)
            }
            PosteriorConfig::Flow(v) => Some(Flow::build(v, post, latent, Some(features))?),
        };
        Ok(Posterior {
            config: config.clone(),
            mean: Init::Kaiming.linear(&(enc / "mean"), features, latent),
            var: Init::Kaiming.linear(&(enc / "var"), features, latent),
            flow,
        })
    }

    /// q0's mean and log-variance from h; σ² = softplus(·) + 1e-6 (the Sylvester paper's choice,
    /// with a floor that keeps ln σ² finite).
    pub fn q0(&self, h: &Tensor) -> (Tensor, Tensor) {
        let var = self.var.forward(h).softplus() + 1e-6;
        (self.mean.forward(h), var.log())
    }

    /// The flow for features h (`[batch, features]`); empty for the Gaussian posterior.
    pub fn flow(&self, h: &Tensor) -> Result<Chain> {
        self.flow_repeated(h, 1)
    }

    /// The flow for each row of h, its parameters repeated `repeat` times per row (sample-major
    /// within a row): the heads (and Q's orthogonalization) run once per row, not per sample,
    /// which is what makes thousands of importance samples affordable.
    pub fn flow_repeated(&self, h: &Tensor, repeat: i64) -> Result<Chain> {
        let Some(flow) = &self.flow else {
            return Ok(Chain::new(vec![]));
        };
        flow.chain(&LayerInput {
            statistics: crate::flow::Statistics::Running,
            features: Some(h),
            repeat,
        })
    }

    /// Layer names for diagnostics: `0.planar.0`, `0.planar.1`, …
    pub fn layer_names(&self) -> Vec<String> {
        self.flow
            .as_ref()
            .map_or(vec![], |f| f.layer_names().to_vec())
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
        let flow = self.flow_repeated(h, samples)?;
        let (z, layer_log_dets) = flow.forward_layers(&z0, None)?;
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
        self.flow.is_none()
    }
}

/// The analytic KL(N(μ, σ²) ‖ N(0, I)) per row (Kingma & Welling 2014, Appendix B).
pub fn gaussian_kl(mean: &Tensor, log_var: &Tensor) -> Tensor {
    (mean.square() + log_var.exp() - 1.0 - log_var).sum_dim_intlist(-1, false, mean.kind()) * 0.5
}
