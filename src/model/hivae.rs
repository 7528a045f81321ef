//! HI-VAE for incomplete heterogeneous tables (Nazábal et al. 2020), with normalizing flows
//! inside it (in its posterior, its prior, or both).
//!
//! Generative model: s ~ Cat(1/K) (a mixture component), z | s ~ N(μ_s, I) with μ_s = W s, or that
//! Gaussian pushed through a learnable flow g (`prior_flow`: ln p(z|s) = ln N(g⁻¹(z); μ_s, I) +
//! ln|det ∂g⁻¹/∂z|); y = W_y z shared by all columns; each column d has its own likelihood
//! p(x_d | y_d, s) ([`super::hivae_lik`]). Inference: q(s|x) = softmax(W_s x̃) (Gumbel-softmax
//! samples during training, temperature annealed per epoch), q(z|x, s) a Gaussian on [x̃, s],
//! optionally followed by an amortized flow (`posterior`: planar, IAF, Sylvester … from the VAE
//! family). x̃ is the coded input with missing cells zero-filled; missing cells are left out of
//! the likelihood. ELBO = Σ_{d observed} E ln p(x_d|·) − KL(q(s|x)‖p(s)) − E_s KL(q(z|x,s)‖p(z|s)),
//! the last term in closed form without flows and by Monte Carlo with them.
//!
//! Cells: present in the file and not masked are observed; a `val_fraction` of them is held out
//! (never trained on) to measure `val/imputation_error` for early stopping; masked present cells
//! are the test cells, whose true values are only used for scoring.
pub use super::hivae_config::{HivaeConfig, Missing, TableConfig, Temperature};
use super::hivae_data::TableData;
pub use super::hivae_data::TableSchema;
use super::hivae_heads::Heads;
use super::hivae_lik::{input_width, InputCoding, Params};
use super::hivae_masked::{MaskedDecoder, Visible};
use super::posterior::{diag_normal_log_prob, gaussian_kl, Posterior};
use super::vae::standard_normal_log_prob;
use super::{Losses, Model, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::data::batches::EpochBatches;
use crate::data::hetero::{ColumnType, Kind};
use crate::flow::Flow;
use crate::nn::init::Init;
use anyhow::{ensure, Context, Result};
use tch::{nn, nn::Module, Device, Kind as DType, Tensor};

pub struct Hivae {
    pub config: HivaeConfig,
    pub(super) vs: nn::VarStore,
    pub types: Vec<ColumnType>,
    /// Raw values `[n, D]` (0 where absent), and 0/1 masks of cells.
    pub x: Tensor,
    pub(super) train_seen: Tensor,
    pub(super) all_seen: Tensor,
    pub(super) val_cells: Tensor,
    pub test_cells: Tensor,
    /// Types, class codings, normalization and ranges of the training table.
    pub schema: super::hivae_data::TableSchema,
    pub(super) s_head: nn::Linear,
    pub(super) posterior: Posterior,
    pub(super) prior_mean: nn::Linear,
    pub(super) prior_flow: Option<Flow>,
    pub(super) y_layer: nn::Linear,
    /// The decoder heads of every column, in groups by likelihood.
    pub heads: Heads,
    pub(super) coding: InputCoding,
    /// `masked_decoder`: each column also reads the observed cells before it in a column order.
    pub(super) masked: Option<MaskedDecoder>,
    pub(super) batches: EpochBatches,
}

/// ELBO terms per row.
pub(super) struct Terms {
    /// ln p(x_d | ·) of each head group's columns `[B, G]`, zero where not scored.
    pub(super) log_lik: Vec<(Kind, Tensor)>,
    pub(super) kl_z: Tensor,
    pub(super) kl_s: Tensor,
    pub(super) log_det: Tensor,
}

impl Terms {
    /// Σ_d ln p(x_d | ·) per row over the columns whose kind passes `keep` (observed cells only).
    pub(super) fn log_lik_of(&self, keep: impl Fn(Kind) -> bool) -> Tensor {
        self.log_lik
            .iter()
            .filter(|(k, _)| keep(*k))
            .fold(self.kl_s.zeros_like(), |a, (_, l)| {
                a + l.sum_dim_intlist(1, false, l.kind())
            })
    }
}

fn mask_tensor(m: &[bool], n: usize, d: usize) -> Tensor {
    let v: Vec<f32> = m.iter().map(|&b| f32::from(u8::from(b))).collect();
    Tensor::from_slice(&v).reshape([n as i64, d as i64])
}

impl Hivae {
    /// The model of `config`, reading its table (to train or evaluate).
    pub fn new(config: HivaeConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let data = super::hivae_data::load(&config.data)?;
        Self::build(config, data, device)
    }

    /// The model of `config` for a table of `schema` (a trained run's `table.json`), without
    /// reading any table: it imputes and samples, but holds no rows to train or evaluate on.
    pub fn from_schema(config: HivaeConfig, schema: TableSchema, device: Device) -> Result<Self> {
        config.validate()?;
        let d = schema.types.len();
        ensure!(
            schema.stats.len() == d && schema.ranges.len() == d && schema.coding.codes.len() == d,
            "the table schema is inconsistent: {d} types, {} statistics, {} ranges, {} codings",
            schema.stats.len(),
            schema.ranges.len(),
            schema.coding.codes.len()
        );
        let data = TableData {
            n: 0,
            d,
            x: Tensor::zeros([0, d as i64], (DType::Float, Device::Cpu)),
            train: vec![],
            val: vec![],
            test: vec![],
            all: vec![],
            schema,
        };
        Self::build(config, data, device)
    }

    fn build(config: HivaeConfig, data: TableData, device: Device) -> Result<Self> {
        let (n, d) = (data.n, data.d);
        let types = data.schema.types.clone();
        let x = data.x;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let width: i64 = types.iter().map(input_width).sum();
        let (k, zd, yd) = (config.s_dim, config.z_dim, config.y_dim);
        let enc = &root / "encoder";
        let prior_flow = if config.prior_flow.is_empty() {
            None
        } else {
            let f = Flow::build(&config.prior_flow, &(&root / "prior_flow"), zd, None)
                .context("model.hivae.prior_flow")?;
            ensure!(!f.has_batch_statistics(), "field `model.hivae.prior_flow`: batchnorm needs data batches; a prior flow is evaluated on posterior samples");
            Some(f)
        };
        let masked = match &config.masked_decoder {
            None => None,
            Some(m) => {
                m.validate(d)?;
                let widths: Vec<i64> = types.iter().map(input_width).collect();
                Some(MaskedDecoder::new(
                    &(&root / "decoder" / "masked"),
                    m,
                    &widths,
                    zd + k,
                    yd + i64::from(m.spread),
                ))
            }
        };
        let heads = Heads::new(
            &(&root / "decoder" / "heads"),
            &types,
            &data.schema.stats,
            yd,
            k,
        );
        Ok(Hivae {
            s_head: Init::Kaiming.linear(&(&enc / "s"), width, k),
            posterior: Posterior::new(
                &enc,
                &(&root / "posterior"),
                &config.posterior,
                width + k,
                zd,
            )
            .context("model.hivae.posterior")?,
            prior_mean: Init::Kaiming.linear_no_bias(&(&root / "prior" / "mean"), k, zd),
            prior_flow,
            y_layer: Init::Kaiming.linear(&(&root / "decoder" / "y"), zd, yd * d as i64),
            heads,
            coding: InputCoding::new(&types, &data.schema.stats, device),
            masked,
            x: x.to_device(device),
            train_seen: mask_tensor(&data.train, n, d).to_device(device),
            all_seen: mask_tensor(&data.all, n, d).to_device(device),
            val_cells: mask_tensor(&data.val, n, d).to_device(device),
            test_cells: mask_tensor(&data.test, n, d).to_device(device),
            schema: data.schema,
            types,
            batches: EpochBatches::new(n as i64, config.data.seed),
            config,
            vs,
        })
    }

    pub fn rows(&self) -> i64 {
        self.x.size()[0]
    }

    pub fn encode_input(&self, x: &Tensor, seen: &Tensor) -> Tensor {
        self.coding.encode(x, seen)
    }

    /// ln p(z|s) per row: N(μ_s, I), through the prior flow if any.
    pub(super) fn prior_log_prob(&self, z: &Tensor, s: &Tensor) -> Result<Tensor> {
        let mean = self.prior_mean.forward(s);
        Ok(match &self.prior_flow {
            None => standard_normal_log_prob(&(z - mean)),
            Some(f) => {
                let (u, ld) = f.bijector().inverse(z, None)?;
                standard_normal_log_prob(&(u - mean)) + ld
            }
        })
    }

    /// s (soft Gumbel-softmax sample at temperature τ, or the one-hot mode), with ln q(s|x).
    pub(super) fn mixture(&self, xin: &Tensor, tau: Option<f64>) -> (Tensor, Tensor) {
        let logits = self.s_head.forward(xin);
        let log_q = logits.log_softmax(1, DType::Float);
        let s = match tau {
            Some(t) => {
                let g = -(-logits.rand_like().clamp(1e-10, 1.0).log()).log();
                ((&logits + g) / t).softmax(1, DType::Float)
            }
            None => logits
                .argmax(1, false)
                .one_hot(logits.size()[1])
                .to_kind(DType::Float),
        };
        (s, log_q)
    }

    /// ELBO terms of rows `x` whose cells in `seen` are scored. In training (`hide`) each scored
    /// cell is hidden from the encoder and the masked decoder with probability
    /// `model.hivae.hide_inputs`, so the model learns to predict cells it does not see.
    pub(super) fn terms(&self, x: &Tensor, seen: &Tensor, tau: f64, hide: bool) -> Result<Terms> {
        let shown = match self.config.hide_inputs {
            p if hide && p > 0.0 => seen * seen.rand_like().ge(p).to_kind(seen.kind()),
            _ => seen.shallow_clone(),
        };
        let xin = self.encode_input(x, &shown);
        let (s, log_qs) = self.mixture(&xin, Some(tau));
        let h = Tensor::cat(&[&xin, &s], 1);
        let post = self.posterior.sample(&h, 1)?;
        let kl_z = if self.posterior.is_gaussian() && self.prior_flow.is_none() {
            gaussian_kl(&(&post.mean - self.prior_mean.forward(&s)), &post.log_var)
        } else {
            diag_normal_log_prob(&post.z0, &post.mean, &post.log_var)
                - &post.log_det
                - self.prior_log_prob(&post.z, &s)?
        };
        let kl_s = (log_qs.exp() * (&log_qs + (self.config.s_dim as f64).ln())).sum_dim_intlist(
            1,
            false,
            DType::Float,
        );
        let visible = self.visible(&xin, &shown, false);
        let log_lik = self
            .column_params(&post.z, &s, &visible)
            .iter()
            .zip(&self.heads.groups)
            .map(|(p, g)| (g.t.kind, g.log_prob(p, &g.gather(x)) * g.gather(seen)))
            .collect();
        Ok(Terms {
            log_lik,
            kl_z,
            kl_s,
            log_det: post.log_det,
        })
    }

    /// The likelihood parameters of each group of [`Self::heads`] (`[B, G]`): y = W_y z, plus
    /// with the masked decoder its output for the cells visible before each column (and a shift
    /// of each variance); column d's head reads y_d and s.
    pub fn column_params(&self, z: &Tensor, s: &Tensor, visible: &Visible) -> Vec<Params> {
        let mut y = self.y_layer.forward(z);
        let Some(m) = &self.masked else {
            return self.heads.params(&y, s, None);
        };
        let context = Tensor::cat(&[z, s], 1);
        let out = m.forward(visible.coded, visible.seen, &context, &visible.pos);
        let yd = self.config.y_dim;
        y += out
            .narrow(2, 0, yd)
            .reshape([-1, yd * self.types.len() as i64]);
        let shift = m.config.spread.then(|| out.select(2, yd));
        self.heads.params(&y, s, shift.as_ref())
    }

    fn tau(&self, step: i64, batch_size: i64) -> f64 {
        let epoch = step / self.steps_per_epoch_of(batch_size);
        let t = &self.config.temperature;
        (t.start - t.decay_per_epoch * epoch as f64).max(t.min)
    }

    fn steps_per_epoch_of(&self, batch_size: i64) -> i64 {
        self.batches.steps_per_epoch(batch_size)
    }

    fn batch_rows(&self, step: i64, batch_size: i64) -> Tensor {
        self.batches.indices(step, batch_size, self.x.device())
    }
}

impl Model for Hivae {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn loss(&mut self, ctx: &StepContext) -> Result<Losses> {
        let rows = self.batch_rows(ctx.step, ctx.batch_size);
        let (x, seen) = (
            self.x.index_select(0, &rows),
            self.train_seen.index_select(0, &rows),
        );
        let t = self.terms(&x, &seen, self.tau(ctx.step, ctx.batch_size), true)?;
        let log_lik = t.log_lik_of(|_| true);
        let loss = -(&log_lik - (&t.kl_z + &t.kl_s) * ctx.beta).mean(DType::Float);
        let mut terms = Vec::new();
        if ctx.diagnostics {
            let mean = |v: &Tensor| v.mean(DType::Float).detach();
            terms.push(("elbo", mean(&(&log_lik - &t.kl_z - &t.kl_s))));
            terms.push(("kl_z", mean(&t.kl_z)));
            terms.push(("kl_s", mean(&t.kl_s)));
            terms.push(("log_det", mean(&t.log_det)));
            terms.push((
                "temperature",
                Tensor::from(self.tau(ctx.step, ctx.batch_size)),
            ));
            for (kind, name) in [
                (Kind::Real, "recon_real"),
                (Kind::Positive, "recon_pos"),
                (Kind::Count, "recon_count"),
                (Kind::Categorical, "recon_cat"),
                (Kind::Ordinal, "recon_ordinal"),
            ] {
                if t.log_lik.iter().any(|(k, _)| *k == kind) {
                    terms.push((name, -mean(&t.log_lik_of(|k| k == kind))));
                }
            }
        }
        Ok(Losses {
            loss,
            terms,
            layers: vec![],
        })
    }

    fn validation(&self) -> Result<Vec<(&'static str, f64)>> {
        let x_hat = self.impute_with(&self.x, &self.train_seen, false)?.values;
        Ok(self
            .error(&x_hat, &self.val_cells)
            .map(|e| vec![("imputation_error", e)])
            .unwrap_or_default())
    }

    fn steps_per_epoch(&self, batch_size: i64) -> Option<i64> {
        Some(self.steps_per_epoch_of(batch_size))
    }

    fn locate_nonfinite(&self, ctx: &StepContext) -> Option<String> {
        tch::no_grad(|| {
            let rows = self.batch_rows(ctx.step, ctx.batch_size);
            let xin = self.encode_input(
                &self.x.index_select(0, &rows),
                &self.train_seen.index_select(0, &rows),
            );
            if !all_finite(&xin) {
                return Some("the input coding (a value too large for its type?)".into());
            }
            match self.terms(
                &self.x.index_select(0, &rows),
                &self.train_seen.index_select(0, &rows),
                self.tau(ctx.step, ctx.batch_size),
                true,
            ) {
                Err(e) => Some(format!("the posterior or prior flow ({e})")),
                Ok(t) => {
                    for ((_, l), g) in t.log_lik.iter().zip(&self.heads.groups) {
                        for (pos, &j) in g.columns.iter().enumerate() {
                            if !all_finite(&l.select(1, pos as i64)) {
                                return Some(format!(
                                    "the likelihood of column {} ({})",
                                    j + 1,
                                    self.types[j].name()
                                ));
                            }
                        }
                    }
                    (!all_finite(&t.kl_z)).then(|| "the KL term of z".into())
                }
            }
        })
    }

    fn uses_beta(&self) -> bool {
        true
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        self.metrics()
    }

    /// `table.json`: the table's schema, so the run imputes without its training files.
    fn run_files(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![(
            super::hivae_data::SCHEMA_FILE,
            serde_json::to_string_pretty(&self.schema)?,
        )])
    }

    crate::capabilities!(sampler);
}
