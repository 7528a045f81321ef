//! The deterministic autoencoder (Hinton & Salakhutdinov 2006): x → encoder → code z (a linear head on the encoder
//! features) → decoder → x̂, trained to reconstruct x with the binary cross-entropy
//! −Σ_i [x_i ln x̂_i + (1 − x_i) ln(1 − x̂_i)] or the squared error Σ_i (x_i − x̂_i)², summed
//! over pixels and averaged over the batch. It has no prior, so it cannot be sampled from or
//! assign likelihoods: its metrics are reconstruction errors (`train/recon`, `val/recon`).
use super::vae_eval::reconstruction_grid;
use super::{Losses, Model, StepContext};
use crate::bijector::all_finite;
use crate::data::images::{ImageData, ImageDataConfig};
use crate::nn::coders::{Architecture, Decoder, Encoder};
use crate::nn::init::Init;
use crate::plot::{Figure, ImageGrid, Scatter};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reconstruction {
    #[default]
    Bce,
    Mse,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderConfig {
    #[serde(default)]
    pub data: ImageDataConfig,
    pub latent_dim: i64,
    #[serde(default)]
    pub architecture: Architecture,
    #[serde(default)]
    pub reconstruction: Reconstruction,
}

pub struct Autoencoder {
    pub config: AutoencoderConfig,
    vs: nn::VarStore,
    pub data: ImageData,
    encoder: Encoder,
    code: nn::Linear,
    decoder: Decoder,
}

impl Autoencoder {
    pub fn new(config: AutoencoderConfig, device: Device) -> Result<Self> {
        ensure!(
            config.latent_dim >= 1,
            "field `model.autoencoder.latent_dim`: must be at least 1, got {}",
            config.latent_dim
        );
        let data = ImageData::load(&config.data, device)?;
        config
            .architecture
            .validate(data.rows, data.cols, "model.autoencoder.architecture")?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = Encoder::new(
            &(&root / "encoder"),
            &config.architecture,
            data.rows,
            data.cols,
        );
        let code = Init::Kaiming.linear(
            &(&root / "encoder" / "mean"),
            encoder.features,
            config.latent_dim,
        );
        let decoder = Decoder::new(
            &(&root / "decoder"),
            &config.architecture,
            config.latent_dim,
            data.rows,
            data.cols,
            1,
        );
        Ok(Autoencoder {
            config,
            vs,
            data,
            encoder,
            code,
            decoder,
        })
    }

    pub fn encode(&self, x: &Tensor) -> Tensor {
        self.code.forward(&self.encoder.forward(x))
    }

    /// Reconstruction error per row and the reconstruction x̂ ∈ (0, 1).
    fn reconstruct(&self, x: &Tensor) -> (Tensor, Tensor) {
        let logits = self.decoder.forward(&self.encode(x));
        let x_hat = logits.sigmoid();
        let err = match self.config.reconstruction {
            // −[x ln σ(l) + (1 − x) ln(1 − σ(l))] = softplus(l) − x·l, stable.
            Reconstruction::Bce => logits.softplus() - x * &logits,
            Reconstruction::Mse => (&x_hat - x).square(),
        };
        (err.sum_dim_intlist(-1, false, Kind::Float), x_hat)
    }

    pub fn mean_error(&self, x: &Tensor) -> f64 {
        let mut total = 0.0;
        for chunk in x.split(500, 0) {
            total += tch::no_grad(|| {
                self.reconstruct(&chunk)
                    .0
                    .sum(Kind::Double)
                    .double_value(&[])
            });
        }
        total / x.size()[0] as f64
    }
}

impl Model for Autoencoder {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let x = self.data.train_batch(ctx.step, ctx.batch_size);
        let loss = self.reconstruct(&x).0.mean(Kind::Float);
        let terms = if ctx.diagnostics {
            vec![("recon", loss.detach())]
        } else {
            vec![]
        };
        Ok(Losses {
            loss,
            terms,
            layers: vec![],
        })
    }

    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("recon", self.mean_error(&self.data.val))])
    }

    fn steps_per_epoch(&self, batch_size: i64) -> Option<i64> {
        Some(self.data.steps_per_epoch(batch_size))
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let x = self.data.train_batch(ctx.step, ctx.batch_size);
            let z = self.encode(&x);
            if !all_finite(&z) {
                return Some("the encoder".into());
            }
            (!all_finite(&self.decoder.forward(&z))).then(|| "the decoder".into())
        })
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        let d = &self.data;
        Ok(vec![
            (
                "train_recon".into(),
                self.mean_error(&d.train_batch(0, d.train.size()[0].min(1000))),
            ),
            ("val_recon".into(), self.mean_error(&d.val)),
            ("test_recon".into(), self.mean_error(&d.test)),
        ])
    }

    fn figures(&self) -> Result<Vec<(String, Figure)>> {
        let d = &self.data;
        let n = d.test.size()[0].min(64);
        let x = d.test.narrow(0, 0, n);
        let x_hat = tch::no_grad(|| self.reconstruct(&x).1);
        let recon = reconstruction_grid(&x, &x_hat, d.rows, d.cols)?;
        let title = "test digits (odd rows) and reconstructions (even rows)";
        let mut out = vec![(
            "reconstructions".into(),
            ImageGrid::new(title, recon).into(),
        )];
        if self.config.latent_dim == 2 {
            let codes = tch::no_grad(|| {
                Tensor::cat(
                    &d.test
                        .split(500, 0)
                        .iter()
                        .map(|c| self.encode(c))
                        .collect::<Vec<_>>(),
                    0,
                )
            });
            let scatter = Scatter::new("test codes", &codes, &d.test_labels, "digit")?;
            out.push(("latent_codes".into(), scatter.into()));
        }
        Ok(out)
    }

    fn snapshot(&self) -> Result<Option<Figure>> {
        let d = &self.data;
        let n = d.test.size()[0].min(16);
        let x = d.test.narrow(0, 0, n);
        let x_hat = tch::no_grad(|| self.reconstruct(&x).1);
        let grid = reconstruction_grid(&x, &x_hat, d.rows, d.cols)?;
        Ok(Some(
            ImageGrid::new("test digits and reconstructions", grid).into(),
        ))
    }

    fn snapshot_tag(&self) -> &'static str {
        "reconstructions"
    }
}
