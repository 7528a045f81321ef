//! Fitting a flow to an unnormalized 2-D target by reverse KL (Rezende & Mohamed 2015, §6.1).
//!
//! q_K is a base q0 pushed through the flow; the loss is the annealed free energy
//! F_β = E_q0[ ln q0(z0) − Σ_k ln|det ∂f_k/∂z_{k−1}| + β U(z_K) ] (Rezende & Mohamed 2015, §6.1, with p ∝ e^{−U}).
//! At β = 1, F = KL(q_K‖p) − ln Z, so KL = F + ln Z ≥ 0 is reported with ln Z from the grid.
use super::base::{Base, BaseConfig};
use super::{HasFlow, LogDensity, Losses, Model, Sampler, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::distribution::Distribution;
use crate::flow::{Flow, LayerConfig};
use crate::plot::{Figure, Heatmap};
use crate::target::Target;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowFitConfig {
    pub target: Target,
    #[serde(default)]
    pub base: BaseConfig,
    pub flow: Vec<LayerConfig>,
    /// Samples for the final estimate of F and KL.
    #[serde(default = "default_eval_samples")]
    pub eval_samples: i64,
}

fn default_eval_samples() -> i64 {
    100_000
}

pub struct FlowFit {
    pub config: FlowFitConfig,
    vs: nn::VarStore,
    flow: Flow,
    base: Base,
}

const DIM: i64 = 2;

impl FlowFit {
    pub fn new(config: FlowFitConfig, device: Device) -> Result<Self> {
        anyhow::ensure!(
            config.eval_samples > 0,
            "model.flow_fit.eval_samples must be positive, got {}",
            config.eval_samples
        );
        // ln Z takes about a second of grid integration: do it now, not inside the timed loop.
        config.target.log_z();
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let flow = Flow::build(&config.flow, &(&root / "flow"), DIM, None)
            .context("model.flow_fit.flow")?;
        anyhow::ensure!(
            !flow.has_batch_statistics(),
            "model.flow_fit.flow: batchnorm needs data to take statistics from; use it in density models"
        );
        let base = Base::build(&config.base, &root, DIM);
        Ok(FlowFit {
            config,
            vs,
            flow,
            base,
        })
    }

    pub fn flow_params(&self) -> &Flow {
        &self.flow
    }

    fn kind(&self) -> Kind {
        super::weight_kind(&self.vs)
    }

    pub fn base(&self) -> Box<dyn Distribution> {
        self.base.distribution(self.kind(), self.vs.device())
    }

    /// The fitted q_K as a distribution (sampling and log_prob).
    pub fn distribution(&self) -> crate::distribution::TransformedDistribution {
        crate::distribution::TransformedDistribution::new(
            self.base(),
            Box::new(self.flow.bijector()),
        )
    }

    /// Monte-Carlo estimate of F (β = 1) and mean Σ ln|det| over `n` samples, in batches.
    pub fn free_energy(&self, n: i64) -> Result<(f64, f64)> {
        let (mut f_sum, mut ld_sum, mut done) = (0.0, 0.0, 0);
        tch::no_grad(|| -> Result<()> {
            let base = self.base();
            let flow = self.flow.bijector();
            while done < n {
                let m = (n - done).min(65_536);
                let (z0, lq0) = base.rsample_with_log_prob(m)?;
                let (zk, ld) = flow.forward(&z0, None)?;
                let f = &lq0 - &ld + self.config.target.energy(&zk);
                f_sum += f.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
                ld_sum += ld.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
                done += m;
            }
            Ok(())
        })?;
        Ok((f_sum / n as f64, ld_sum / n as f64))
    }

    /// ln q_K on a grid over the target's window, via the inverse (exact density, not a histogram).
    fn fitted_image(&self, n: usize) -> Result<Heatmap> {
        let window = self.config.target.window();
        let dist = self.distribution();
        let kind = self.kind();
        let title = format!("fitted q_K ({} layers)", self.flow.layer_names().len());
        Heatmap::of_log_density(
            &title,
            "density q_K(z)",
            window,
            n,
            self.vs.device(),
            &mut |pts| {
                dist.log_prob(&pts.to_kind(kind)).unwrap_or_else(|_| {
                    Tensor::full([pts.size()[0]], f64::NAN, (kind, pts.device()))
                })
            },
        )
    }

    /// The target's unnormalized density exp(−U) over its window.
    fn target_image(&self, title: &str) -> Result<Heatmap> {
        let target = self.config.target;
        let label = "exp(−U(z)), unnormalized";
        Heatmap::of_log_density(
            title,
            label,
            target.window(),
            400,
            Device::Cpu,
            &mut |pts| -target.energy(pts),
        )
    }
}

impl Model for FlowFit {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let (z0, lq0) = self.base().rsample_with_log_prob(ctx.batch_size)?;
        let flow = self.flow.bijector();
        let (zk, layer_lds) = flow.forward_layers(&z0, None)?;
        let log_det = Tensor::stack(&layer_lds, 0).sum_dim_intlist(0, false, z0.kind());
        let energy = self.config.target.energy(&zk);
        let log_q = &lq0 - &log_det;
        let loss = (&log_q + &energy * ctx.beta).mean(z0.kind());
        let mut terms = Vec::new();
        let mut layers = Vec::new();
        if ctx.diagnostics {
            let free_energy = (&log_q + &energy).mean(z0.kind()).detach();
            let log_z = self.config.target.log_z();
            terms.push(("elbo", -&free_energy));
            terms.push(("kl", &free_energy + log_z));
            terms.push(("log_det", log_det.mean(z0.kind()).detach()));
            for (name, ld) in self.flow.layer_names().iter().zip(&layer_lds) {
                layers.push((name.clone(), ld.mean(z0.kind()).detach()));
            }
        }
        Ok(Losses {
            loss,
            terms,
            layers,
        })
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let (z0, _) = self.base().rsample_with_log_prob(ctx.batch_size).ok()?;
            if !all_finite(&z0) {
                return Some("base distribution".to_string());
            }
            let flow = self.flow.bijector();
            if let Some((i, name)) = flow.first_nonfinite_layer(&z0, None) {
                let label = self.flow.layer_names().get(i).cloned().unwrap_or(name);
                return Some(format!("flow layer {i} ({label})"));
            }
            let (zk, _) = flow.forward(&z0, None).ok()?;
            if !all_finite(&self.config.target.energy(&zk)) {
                return Some(format!("target {} energy", self.config.target.name()));
            }
            None
        })
    }

    fn uses_beta(&self) -> bool {
        true
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        let (f, ld) = self.free_energy(self.config.eval_samples)?;
        let log_z = self.config.target.log_z();
        Ok(vec![
            ("free_energy".into(), f),
            ("elbo".into(), -f),
            ("log_z".into(), log_z),
            ("kl".into(), f + log_z),
            ("log_det".into(), ld),
            ("eval_samples".into(), self.config.eval_samples as f64),
        ])
    }

    fn figures(&self) -> Result<Vec<(String, Figure)>> {
        let name = self.config.target.name();
        let samples = self.distribution().sample(2000)?;
        let over = self
            .target_image(&format!("{name}: 2,000 samples of q_K on exp(−U)"))?
            .with_points(&samples)?;
        Ok(vec![
            (
                "target".into(),
                self.target_image(&format!("target {name}"))?.into(),
            ),
            ("fitted".into(), self.fitted_image(400)?.into()),
            ("samples".into(), over.into()),
        ])
    }

    fn snapshot(&self) -> Result<Option<Figure>> {
        Ok(Some(self.fitted_image(160)?.into()))
    }

    fn set_dtype(&mut self, dtype: crate::experiment::config::Dtype) -> Result<()> {
        self.vs.set_kind(dtype.kind());
        Ok(())
    }

    crate::capabilities!(sampler, log_density, flow_view);
}

impl Sampler for FlowFit {
    fn data_dim(&self) -> i64 {
        DIM
    }

    fn sample(&self, n: i64, t: f64) -> Result<Tensor> {
        let z0 = self
            .base
            .sample_tempered(n, t, self.kind(), self.vs.device());
        Ok(tch::no_grad(|| self.flow.bijector().forward(&z0, None))?.0)
    }
}

impl LogDensity for FlowFit {
    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(self.vs.device()).to_kind(self.kind());
        Ok(tch::no_grad(|| self.distribution().log_prob(&x))?)
    }
}

impl HasFlow for FlowFit {
    fn flow(&self) -> (crate::bijector::Chain, Vec<String>) {
        (self.flow.bijector(), self.flow.layer_names().to_vec())
    }
}
