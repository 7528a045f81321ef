//! Density estimation by maximum likelihood (forward KL): a flow maps a base q0 to data, and the
//! loss is the negative log-likelihood −E_data[ln q0(f⁻¹(x)) + ln|det ∂f⁻¹/∂x|] (seed eq. 31),
//! reported in nats. Data: the toy 2-D sets for now.
use super::base::{Base, BaseConfig};
use super::{Losses, Model, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::data::toy::ToyData;
use crate::distribution::{Distribution, TransformedDistribution};
use crate::nn::flow_params::{FlowParams, LayerConfig};
use crate::plot;
use anyhow::{Context, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// Where the data comes from: `{"toy": {"name": "moons", ...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A generated 2-D set with disjoint train, validation and test draws.
    Toy {
        name: ToyData,
        #[serde(default = "default_train")]
        n_train: i64,
        #[serde(default = "default_eval")]
        n_val: i64,
        #[serde(default = "default_eval")]
        n_test: i64,
        #[serde(default)]
        seed: u64,
    },
}

fn default_train() -> i64 {
    20_000
}
fn default_eval() -> i64 {
    5_000
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensityConfig {
    pub data: DataConfig,
    #[serde(default)]
    pub base: BaseConfig,
    pub flow: Vec<LayerConfig>,
}

pub struct Density {
    pub config: DensityConfig,
    vs: nn::VarStore,
    flow: FlowParams,
    base: Base,
    train: Tensor,
    val: Tensor,
    test: Tensor,
    dim: i64,
}

impl Density {
    pub fn new(config: DensityConfig, device: Device) -> Result<Self> {
        let DataConfig::Toy {
            name,
            n_train,
            n_val,
            n_test,
            seed,
        } = config.data;
        for (n, field) in [(n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test")] {
            anyhow::ensure!(
                n > 0,
                "model.density.data.toy.{field} must be positive, got {n}"
            );
        }
        // Three independent draws: the splits never share a point.
        let split = |n: i64, k: u64| {
            name.sample(n as usize, seed.wrapping_mul(3).wrapping_add(k))
                .to_device(device)
        };
        let (train, val, test) = (split(n_train, 0), split(n_val, 1), split(n_test, 2));
        let dim = 2;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let flow = FlowParams::build(&config.flow, &(&root / "flow"), dim)
            .context("model.density.flow")?;
        let base = Base::build(&config.base, &root, dim);
        Ok(Density {
            config,
            vs,
            flow,
            base,
            train,
            val,
            test,
            dim,
        })
    }

    fn distribution(&self) -> TransformedDistribution {
        TransformedDistribution::new(
            self.base.distribution(Kind::Float, self.vs.device()),
            Box::new(self.flow.bijector()),
        )
    }

    /// Mean negative log-likelihood (nats) over `x`, in batches, without gradients.
    pub fn nll(&self, x: &Tensor) -> Result<f64> {
        let dist = self.distribution();
        let mut total = 0.0;
        for chunk in x.split(8192, 0) {
            let lp = tch::no_grad(|| dist.log_prob(&chunk))?;
            total -= lp.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        }
        Ok(total / x.size()[0] as f64)
    }

    fn batch(&self, n: i64) -> Tensor {
        let idx = Tensor::randint(self.train.size()[0], [n], (Kind::Int64, self.vs.device()));
        self.train.index_select(0, &idx)
    }

    fn window(&self) -> (f64, f64) {
        (-4.0, 4.0)
    }
}

impl Model for Density {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let x = self.batch(ctx.batch_size);
        let (u, log_det) = self.flow.bijector().inverse(&x, None)?;
        let lp = self.base.distribution(x.kind(), x.device()).log_prob(&u)? + &log_det;
        let loss = -lp.mean(Kind::Float);
        let mut terms = Vec::new();
        if ctx.diagnostics {
            terms.push(("nll", loss.detach()));
            terms.push(("log_det", log_det.mean(Kind::Float).detach()));
        }
        Ok(Losses {
            loss,
            terms,
            layers: vec![],
        })
    }

    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("nll", self.nll(&self.val)?)])
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let x = self.batch(ctx.batch_size);
            // The density direction runs the layers in reverse: check them in that order.
            let mut y = x;
            let chain = self.flow.bijector();
            let names = self.flow.layer_names();
            for (i, layer) in chain.layers().into_iter().enumerate().rev() {
                match layer.inverse(&y, None) {
                    Ok((prev, ld)) if all_finite(&prev) && all_finite(&ld) => y = prev,
                    _ => {
                        return Some(format!(
                            "flow layer {i} ({})",
                            names.get(i).cloned().unwrap_or_default()
                        ))
                    }
                }
            }
            None
        })
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        Ok(vec![
            ("train_nll".into(), self.nll(&self.train)?),
            ("val_nll".into(), self.nll(&self.val)?),
            ("test_nll".into(), self.nll(&self.test)?),
        ])
    }

    fn figures(&self) -> Result<Vec<(String, RgbImage)>> {
        let (lo, hi) = self.window();
        let dist = self.distribution();
        let density = plot::density_figure(lo, hi, 400, self.vs.device(), &mut |pts| {
            dist.log_prob(&pts.to_kind(Kind::Float))
                .unwrap_or_else(|_| pts.select(1, 0).full_like(f64::NAN))
        });
        let data = plot::histogram_figure(&self.test, lo, hi, 200);
        let samples = plot::histogram_figure(&dist.sample(self.test.size()[0])?, lo, hi, 200);
        Ok(vec![
            ("density".into(), density),
            ("data".into(), data),
            ("samples".into(), samples),
        ])
    }

    fn snapshot(&self) -> Result<Option<RgbImage>> {
        let (lo, hi) = self.window();
        let dist = self.distribution();
        Ok(Some(plot::density_figure(
            lo,
            hi,
            160,
            self.vs.device(),
            &mut |pts| {
                dist.log_prob(&pts.to_kind(Kind::Float))
                    .unwrap_or_else(|_| pts.select(1, 0).full_like(f64::NAN))
            },
        )))
    }

    fn data_dim(&self) -> i64 {
        self.dim
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(self.distribution().sample(n)?)
    }

    fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(self.vs.device()).to_kind(Kind::Float);
        Ok(tch::no_grad(|| self.distribution().log_prob(&x))?)
    }

    fn flow(&self) -> Option<(crate::bijector::Chain, Vec<String>)> {
        Some((self.flow.bijector(), self.flow.layer_names().to_vec()))
    }
}
