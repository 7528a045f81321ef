//! Masked autoregressive flow (MAF; Papamakarios et al. 2017, eq. 2–5) and, by inversion, the
//! inverse autoregressive flow (IAF; Kingma et al. 2016, eq. 10–12).
//!
//! With u the base variable and x the data, MAF sets x_i = τ(u_i; θ_i) where θ_i = MADE(x_{<i})
//! and τ is the layer's elementwise [`Law`]: affine x_i = u_i exp(α_i) + μ_i (α_i soft-bounded to
//! [−3, 3]; `"affine_unbounded"` is the paper's raw α_i), additive, or a rational-quadratic spline (the autoregressive neural
//! spline flow of Durkan et al. 2019, §3.2). The density direction (data → base, `inverse`) is
//! one MADE pass: u = τ⁻¹(x; θ(x)), ln|det ∂u/∂x| = Σ_i ln|∂τ⁻¹/∂x_i|, while sampling
//! (`forward`) needs D sequential passes. `Invert(MaskedAutoregressive)` is the IAF: one pass to
//! sample, D passes for density.
//!
//! Config: `{"maf": {"length": K, "hidden": [64, 64], "law": "affine" | "additive" |
//! {"spline": {"bins": 8, "bound": 3}}, "iaf": false, "batchnorm": false, "order": "reverse"}}`.
//! In a VAE posterior the MADEs also read a context vector computed from the encoder's features
//! (`context` numbers), as in the IAF paper.
//!
//! ```
//! use flowlab::flow::{Flow, LayerConfig};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let cfg: LayerConfig = serde_json::from_str(r#"{"maf": {"length": 2, "law": {"spline": {}}}}"#).unwrap();
//! let flow = Flow::build(&[cfg], &vs.root(), 3, None).unwrap();
//! assert_eq!(flow.layer_names(), ["0.spline_maf.0", "0.spline_maf.1"]);
//! ```
use super::batchnorm::BatchNormParams;
use super::permute::Order;
use super::{check_length, FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::elementwise::{Affine, Elementwise};
use crate::bijector::law::Law;
use crate::bijector::spline::RationalQuadraticSpline;
use crate::bijector::{expect_dim, sum_except_batch, Bijector, FlowResult, Invert, WithContext};
use crate::nn::init::Init;
use crate::nn::made::{orders, Made};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

/// The D-pass solve of an autoregressive map: `pass(x)` applies the elementwise map with
/// parameters computed from the current guess x. Pass k reads dimensions of order < k, all final
/// after pass k − 1, so pass D computes every dimension (and its log-derivative) from the final
/// values. Returns (output, log|det| per row).
fn solve(
    made: &Made,
    like: &Tensor,
    pass: impl Fn(&Tensor) -> FlowResult<(Tensor, Tensor)>,
) -> FlowResult<(Tensor, Tensor)> {
    let mut x = like.zeros_like();
    let mut ld = like.zeros_like();
    for k in 1..=made.dim() {
        (x, ld) = pass(&x)?;
        if k < made.dim() {
            x = made.keep_first(&x, k);
        }
    }
    Ok((x, sum_except_batch(&ld)))
}

pub struct MaskedAutoregressive {
    made: Made,
    law: Law,
}

impl MaskedAutoregressive {
    /// The affine MAF layer; `made` must output 2 parameters per dimension (shift, log-scale).
    pub fn new(made: Made) -> Self {
        Self::with_law(made, Law::Affine)
    }

    /// A layer with transformer `law`; `made` must output `law.params_per_dim()` parameters per
    /// dimension.
    pub fn with_law(made: Made, law: Law) -> Self {
        MaskedAutoregressive { made, law }
    }

    /// The elementwise map u ↦ x given the conditioner's outputs on (a guess of) x.
    fn transformer(&self, x: &Tensor, context: Option<&Tensor>) -> Box<dyn Elementwise> {
        elementwise(self.law, &self.made.forward(x, context))
    }

    /// Sampling by D full passes of the MADE (each pass recomputes every output from the
    /// current guess). Kept as the reference the incremental [`forward`](Bijector::forward) is
    /// tested against.
    pub fn forward_by_passes(
        &self,
        u: &Tensor,
        context: Option<&Tensor>,
    ) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(u, self.made.dim(), "maf")?;
        solve(&self.made, u, |x| {
            self.transformer(x, context).forward_elementwise(u)
        })
    }
}

/// The law's elementwise map with parameters `p: [batch, P, n]` for n coordinates.
fn elementwise(law: Law, p: &Tensor) -> Box<dyn Elementwise> {
    match law {
        // [batch, P, n] → [batch, n, P]: one spline per coordinate.
        Law::Spline { bins, bound } => Box::new(RationalQuadraticSpline::from_raw(
            &p.permute([0, 2, 1]),
            bins,
            bound,
        )),
        law => {
            let raw = (p.size()[1] > 1).then(|| p.select(1, 1));
            Box::new(
                law.affine(p.select(1, 0), raw)
                    .expect("an affine-family law"),
            )
        }
    }
}

impl Bijector for MaskedAutoregressive {
    /// Base → data, one coordinate at a time in the order ([`Made::solve`]: the D passes
    /// together cost about one network pass).
    fn forward(&self, u: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(u, self.made.dim(), "maf")?;
        let mut log_det = u.select(1, 0).zeros_like();
        let x = self.made.solve(u.size()[0], context, |j, out| {
            let (xj, ld) =
                elementwise(self.law, &out.unsqueeze(2)).forward_elementwise(&u.narrow(1, j, 1))?;
            log_det += ld.squeeze_dim(1);
            Ok(xj.squeeze_dim(1))
        })?;
        Ok((x, log_det))
    }

    /// Data → base, one pass.
    fn inverse(&self, x: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(x, self.made.dim(), "maf")?;
        let (u, ld) = self.transformer(x, context).inverse_elementwise(x)?;
        Ok((u, sum_except_batch(&ld)))
    }

    fn name(&self) -> String {
        match self.law {
            Law::Affine | Law::AffineUnbounded => "maf".into(),
            law => format!("{}_maf", law.label()),
        }
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// The IAF step of the IAF paper (Kingma et al. 2016, eq. 11–14), in its gated,
/// LSTM-like form: (m, s) = MADE(z, h), σ = sigmoid(s + forget_bias),
/// z′ = σ ⊙ z + (1 − σ) ⊙ m, ln|det ∂z′/∂z| = Σ_i ln σ_i.
///
/// This is the affine transformer with log-scale ln σ and shift (1 − σ) ⊙ m, computed from the
/// layer's own input: sampling (`forward`) is one MADE pass, density (`inverse`) D passes. The
/// forget bias (1 here, as in the paper's code) starts σ near 0.73 so early steps stay close to
/// the identity. `h` (the context) is the encoder's summary of x in an amortized posterior.
pub struct GatedIaf {
    made: Made,
    forget_bias: f64,
}

impl GatedIaf {
    /// `made` must output 2 parameters per dimension (m, s).
    pub fn new(made: Made, forget_bias: f64) -> Self {
        GatedIaf { made, forget_bias }
    }

    fn transformer(&self, z: &Tensor, context: Option<&Tensor>) -> Affine {
        let p = self.made.forward(z, context);
        let s = p.select(1, 1) + self.forget_bias;
        // 1 − σ(s) = σ(−s), computed without cancellation.
        Affine::new(p.select(1, 0) * (-&s).sigmoid(), s.log_sigmoid())
    }
}

impl Bijector for GatedIaf {
    fn forward(&self, z: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(z, self.made.dim(), "iaf")?;
        let (y, ld) = self.transformer(z, context).forward_elementwise(z)?;
        Ok((y, sum_except_batch(&ld)))
    }

    fn inverse(&self, y: &Tensor, context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(y, self.made.dim(), "iaf")?;
        solve(&self.made, y, |z| {
            self.transformer(z, context).inverse_elementwise(y)
        })
    }

    fn name(&self) -> String {
        "iaf".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

fn default_hidden() -> Vec<i64> {
    vec![64, 64]
}
fn default_iaf_hidden() -> Vec<i64> {
    vec![320, 320]
}
fn default_context() -> i64 {
    64
}
fn default_forget_bias() -> f64 {
    1.0
}

/// K masked autoregressive layers with MADE conditioners of the given hidden sizes.
/// `iaf: true` inverts each layer (IAF: fast sampling, slow density). `batchnorm: true` follows
/// each MADE with batch normalization in the density direction, as in the MAF paper's
/// experiments (momentum 0.1), keeping the block's orders between layers (density models only).
/// `context`: the width of the vector the MADEs read from an encoder's features (VAE posteriors).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MafConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    #[serde(default = "default_hidden")]
    pub hidden: Vec<i64>,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub iaf: bool,
    #[serde(default)]
    pub batchnorm: bool,
    #[serde(default)]
    pub law: Law,
    #[serde(default = "default_context")]
    pub context: i64,
}

/// K gated IAF steps (Kingma et al. 2016, eq. 11–14), MADEs of the given hidden sizes, orders
/// reversed between steps; in a VAE posterior they read a context vector of `context` numbers
/// computed from the encoder's features. The forget bias starts σ near sigmoid(1) ≈ 0.73.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IafConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    #[serde(default = "default_iaf_hidden")]
    pub hidden: Vec<i64>,
    #[serde(default = "default_context")]
    pub context: i64,
    #[serde(default = "default_forget_bias")]
    pub forget_bias: f64,
}

fn check_made(length: i64, hidden: &[i64], dim: Option<i64>) -> Result<(), String> {
    check_length(length)?;
    if hidden.iter().any(|&h| h < 1) {
        return Err(format!("hidden sizes must be positive, got {hidden:?}"));
    }
    match dim {
        Some(d) if d < 2 => Err(format!(
            "an autoregressive layer needs at least 2 dimensions, got {d}"
        )),
        _ => Ok(()),
    }
}

/// The context network: features → `width` numbers, when the layer is amortized.
fn context_net(site: &Site, width: i64) -> Option<nn::Linear> {
    site.features
        .map(|f| Init::Kaiming.linear(&(site.path / "context"), f, width))
}

impl LayerSpec for MafConfig {
    fn validate(&self, dim: Option<i64>) -> Result<(), String> {
        check_made(self.length, &self.hidden, dim)?;
        self.law.validate()?;
        if self.context < 1 {
            return Err(format!("context must be at least 1, got {}", self.context));
        }
        Ok(())
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        anyhow::ensure!(
            !(self.batchnorm && site.features.is_some()),
            "batchnorm needs data batches; it cannot be part of a VAE posterior"
        );
        let context = context_net(site, self.context);
        let width = context.as_ref().map_or(0, |_| self.context);
        let q = site.path;
        let orders = orders(site.dim, self.length as usize, self.order == Order::Random);
        let p = self.law.params_per_dim();
        let mades = orders
            .iter()
            .enumerate()
            .map(|(j, o)| Made::new(&(q / j), o, &self.hidden, p, width))
            .collect();
        let batchnorms = (0..self.length)
            .filter(|_| self.batchnorm)
            .map(|j| BatchNormParams::new(&(q / format!("bn{j}")), site.dim, 0.1))
            .collect();
        Ok(Box::new(AutoregressiveLayer {
            mades,
            context,
            step: Step::Maf {
                law: self.law,
                invert: self.iaf,
            },
            batchnorms,
        }))
    }

    fn label(&self) -> String {
        format!("{}-k{}", maf_kind(self.law, self.iaf), self.length)
    }
}

impl LayerSpec for IafConfig {
    fn validate(&self, dim: Option<i64>) -> Result<(), String> {
        check_made(self.length, &self.hidden, dim)?;
        if self.context < 1 {
            return Err(format!("context must be at least 1, got {}", self.context));
        }
        Ok(())
    }

    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let context = context_net(site, self.context);
        let width = context.as_ref().map_or(0, |_| self.context);
        let mades = orders(site.dim, self.length as usize, false)
            .iter()
            .enumerate()
            .map(|(i, o)| Made::new(&(site.path / "made" / i), o, &self.hidden, 2, width))
            .collect();
        Ok(Box::new(AutoregressiveLayer {
            mades,
            context,
            step: Step::Gated {
                forget_bias: self.forget_bias,
            },
            batchnorms: vec![],
        }))
    }

    fn label(&self) -> String {
        format!("iaf-k{}", self.length)
    }
}

/// `maf`, `iaf`, `spline_maf`, `additive_iaf`, …
fn maf_kind(law: Law, invert: bool) -> String {
    let dir = if invert { "iaf" } else { "maf" };
    match law {
        Law::Affine | Law::AffineUnbounded => dir.into(),
        law => format!("{}_{dir}", law.label()),
    }
}

enum Step {
    Maf { law: Law, invert: bool },
    Gated { forget_bias: f64 },
}

struct AutoregressiveLayer {
    mades: Vec<Made>,
    context: Option<nn::Linear>,
    step: Step,
    /// One per MADE, or none.
    batchnorms: Vec<BatchNormParams>,
}

impl FlowLayer for AutoregressiveLayer {
    fn names(&self) -> Vec<String> {
        let kind = match self.step {
            Step::Maf { law, invert } => maf_kind(law, invert),
            Step::Gated { .. } => "iaf".into(),
        };
        let mut names = Vec::new();
        for name in super::numbered(&kind, self.mades.len() as i64) {
            // Forward order: the batch normalization comes before its MADE, i.e. after it in
            // the density direction.
            if !self.batchnorms.is_empty() {
                names.push(format!("{name}.batchnorm"));
            }
            names.push(name);
        }
        names
    }

    fn bijectors(&self, input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        let context = match (&self.context, input.features) {
            (Some(net), Some(h)) => Some(input.rep(net.forward(h))),
            (Some(_), None) => anyhow::bail!(
                "this autoregressive layer reads an encoder's features, and none were given"
            ),
            _ => None,
        };
        let mut layers: Vec<Box<dyn Bijector>> = Vec::new();
        for (j, made) in self.mades.iter().enumerate() {
            if let Some(bn) = self.batchnorms.get(j) {
                layers.push(Box::new(bn.bijector(input.statistics)));
            }
            let made = made.shallow_clone();
            let layer: Box<dyn Bijector> = match self.step {
                Step::Maf { law, invert: false } => {
                    Box::new(MaskedAutoregressive::with_law(made, law))
                }
                Step::Maf { law, invert: true } => {
                    Box::new(Invert(Box::new(MaskedAutoregressive::with_law(made, law))))
                }
                Step::Gated { forget_bias } => Box::new(GatedIaf::new(made, forget_bias)),
            };
            layers.push(match &context {
                Some(c) => Box::new(WithContext::new(layer, c.shallow_clone())),
                None => layer,
            });
        }
        Ok(layers)
    }

    fn has_batch_statistics(&self) -> bool {
        !self.batchnorms.is_empty()
    }
}
