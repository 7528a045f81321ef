//! HI-VAE for incomplete heterogeneous tables (Nazábal et al. 2020), with the seed's research plan
//! (§8): normalizing flows inside it.
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
use super::hivae_lik::{column_error, encode, input_width, Head, Stats};
use super::posterior::{diag_normal_log_prob, gaussian_kl, Posterior};
use super::vae::standard_normal_log_prob;
use super::{Losses, Model, StepContext};
use crate::bijector::{all_finite, Bijector};
use crate::data::batches::EpochBatches;
use crate::data::hetero::{self, ColumnType, Kind};
use crate::data::toy::Rng;
use crate::flow::Flow;
use anyhow::{ensure, Context, Result};
use image::RgbImage;
use tch::{nn, nn::Module, Device, Kind as DType, Tensor};

pub struct Hivae {
    pub config: HivaeConfig,
    vs: nn::VarStore,
    pub types: Vec<ColumnType>,
    /// Raw values `[n, D]` (0 where absent), and 0/1 masks of cells.
    pub x: Tensor,
    train_seen: Tensor,
    all_seen: Tensor,
    val_cells: Tensor,
    pub test_cells: Tensor,
    ranges: Vec<f64>,
    s_head: nn::Linear,
    posterior: Posterior,
    prior_mean: nn::Linear,
    prior_flow: Option<Flow>,
    y_layer: nn::Linear,
    heads: Vec<Head>,
    batches: EpochBatches,
}

/// ELBO terms per row.
struct Terms {
    log_lik: Vec<(Kind, Tensor)>,
    kl_z: Tensor,
    kl_s: Tensor,
    log_det: Tensor,
}

fn mask_tensor(m: &[bool], n: usize, d: usize) -> Tensor {
    let v: Vec<f32> = m.iter().map(|&b| f32::from(u8::from(b))).collect();
    Tensor::from_slice(&v).reshape([n as i64, d as i64])
}

impl Hivae {
    pub fn new(config: HivaeConfig, device: Device) -> Result<Self> {
        config.validate()?;
        let c = &config.data;
        let types = hetero::read_types(&c.types)?;
        let table = hetero::read_table(&c.csv, &types)?;
        let (n, d) = (table.rows, table.cols());
        let hidden = match &c.missing {
            Missing::None => vec![false; n * d],
            Missing::Mask(p) => hetero::read_mask(p, n, d)?,
            Missing::Mcar { rate, seed } => hetero::mcar_mask(n, d, *rate, *seed),
        };
        let mut rng = Rng::new(c.seed ^ 0xC0FF_EE00);
        let mut val = vec![false; n * d];
        let mut train = vec![false; n * d];
        let mut test = vec![false; n * d];
        for i in 0..n * d {
            let observed = table.present[i] && !hidden[i];
            test[i] = table.present[i] && hidden[i];
            val[i] = observed && rng.uniform() < c.val_fraction;
            train[i] = observed && !val[i];
        }
        let all: Vec<bool> = (0..n * d).map(|i| train[i] || val[i]).collect();
        // Statistics and ranges per column, from observed training cells / all true values.
        let mut stats = Vec::new();
        let mut ranges = Vec::new();
        for (j, t) in types.iter().enumerate() {
            let f = |v: f64| {
                if matches!(t.kind, Kind::Positive | Kind::Count) {
                    v.ln_1p()
                } else {
                    v
                }
            };
            let seen: Vec<f64> = (0..n)
                .filter(|&i| train[i * d + j])
                .map(|i| f(table.values[i * d + j]))
                .collect();
            ensure!(
                !seen.is_empty(),
                "{}: column {} has no observed training cell",
                c.csv.display(),
                j + 1
            );
            let mean = seen.iter().sum::<f64>() / seen.len() as f64;
            let var = seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / seen.len() as f64;
            stats.push(Stats {
                mean,
                std: var.sqrt().max(1e-6),
            });
            let present: Vec<f64> = (0..n)
                .filter(|&i| table.present[i * d + j])
                .map(|i| table.values[i * d + j])
                .collect();
            let (lo, hi) = present
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            ranges.push(hi - lo);
        }
        let x = Tensor::from_slice(&table.values)
            .reshape([n as i64, d as i64])
            .to_kind(DType::Float);
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
        let heads = types
            .iter()
            .zip(&stats)
            .enumerate()
            .map(|(j, (t, s))| Head::new(&(&root / "decoder" / j), *t, *s, yd, k))
            .collect();
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        Ok(Hivae {
            s_head: nn::linear(&enc / "s", width, k, Default::default()),
            posterior: Posterior::new(
                &enc,
                &(&root / "posterior"),
                &config.posterior,
                width + k,
                zd,
            )
            .context("model.hivae.posterior")?,
            prior_mean: nn::linear(&root / "prior" / "mean", k, zd, no_bias),
            prior_flow,
            y_layer: nn::linear(
                &root / "decoder" / "y",
                zd,
                yd * d as i64,
                Default::default(),
            ),
            heads,
            x: x.to_device(device),
            train_seen: mask_tensor(&train, n, d).to_device(device),
            all_seen: mask_tensor(&all, n, d).to_device(device),
            val_cells: mask_tensor(&val, n, d).to_device(device),
            test_cells: mask_tensor(&test, n, d).to_device(device),
            ranges,
            types,
            batches: EpochBatches::new(n as i64, config.data.seed),
            config,
            vs,
        })
    }

    pub fn rows(&self) -> i64 {
        self.x.size()[0]
    }

    fn encode_input(&self, x: &Tensor, seen: &Tensor) -> Tensor {
        let cols: Vec<Tensor> = self
            .heads
            .iter()
            .enumerate()
            .map(|(j, h)| {
                encode(
                    &h.t,
                    h.stats,
                    &x.select(1, j as i64),
                    &seen.select(1, j as i64),
                )
            })
            .collect();
        Tensor::cat(&cols, 1)
    }

    /// ln p(z|s) per row: N(μ_s, I), through the prior flow if any.
    fn prior_log_prob(&self, z: &Tensor, s: &Tensor) -> Result<Tensor> {
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
    fn mixture(&self, xin: &Tensor, tau: Option<f64>) -> (Tensor, Tensor) {
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

    fn terms(&self, x: &Tensor, seen: &Tensor, tau: f64) -> Result<Terms> {
        let xin = self.encode_input(x, seen);
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
        let y = self.y_layer.forward(&post.z);
        let yd = self.config.y_dim;
        let log_lik = self
            .heads
            .iter()
            .enumerate()
            .map(|(j, head)| {
                let j = j as i64;
                let p = head.params(&y.narrow(1, j * yd, yd), &s);
                (
                    head.t.kind,
                    head.log_prob(&p, &x.select(1, j)) * seen.select(1, j),
                )
            })
            .collect();
        Ok(Terms {
            log_lik,
            kl_z,
            kl_s,
            log_det: post.log_det,
        })
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

    /// Imputations of every cell `[n, D]` given the cells in `seen`: the likelihood's mode/mean at
    /// s = argmax q(s|x) and z = the flow of q(z|x, s)'s mean, or (`draw`) samples of s, z and x.
    pub fn impute_with(&self, x: &Tensor, seen: &Tensor, draw: bool) -> Result<Tensor> {
        tch::no_grad(|| {
            let mut out = Vec::new();
            for (xs, ss) in x.split(2048, 0).iter().zip(seen.split(2048, 0)) {
                let xin = self.encode_input(xs, &ss);
                let (s, _) = self.mixture(
                    &xin,
                    if draw {
                        Some(self.config.temperature.min)
                    } else {
                        None
                    },
                );
                let s = if draw {
                    s.argmax(1, false)
                        .one_hot(self.config.s_dim)
                        .to_kind(DType::Float)
                } else {
                    s
                };
                let h = Tensor::cat(&[&xin, &s], 1);
                let z = if draw {
                    self.posterior.sample(&h, 1)?.z
                } else {
                    let (mean, _) = self.posterior.q0(&h);
                    let flow = self.posterior.flow(&h)?;
                    flow.forward(&mean, None)?.0
                };
                let y = self.y_layer.forward(&z);
                let yd = self.config.y_dim;
                let cols: Vec<Tensor> = self
                    .heads
                    .iter()
                    .enumerate()
                    .map(|(j, head)| {
                        let p = head.params(&y.narrow(1, j as i64 * yd, yd), &s);
                        if draw {
                            head.sample(&p)
                        } else {
                            head.impute(&p)
                        }
                    })
                    .collect();
                out.push(Tensor::stack(&cols, 1));
            }
            Ok(Tensor::cat(&out, 0))
        })
    }

    /// Mean over columns of the per-column error of `x_hat` on `cells` (columns without cells skipped).
    pub fn error(&self, x_hat: &Tensor, cells: &Tensor) -> Option<f64> {
        let errs: Vec<f64> = self
            .types
            .iter()
            .enumerate()
            .filter_map(|(j, t)| {
                let j = j as i64;
                column_error(
                    t,
                    &self.x.select(1, j),
                    &x_hat.select(1, j),
                    &cells.select(1, j),
                    self.ranges[j as usize],
                )
            })
            .collect();
        (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64)
    }

    /// The baseline: column means (numerical) or modes (categorical, ordinal) of observed cells.
    pub fn mean_mode_imputation(&self) -> Tensor {
        let cols: Vec<Tensor> = self
            .types
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let (x, w) = (
                    self.x.select(1, j as i64).to_kind(DType::Double),
                    self.all_seen.select(1, j as i64).to_kind(DType::Double),
                );
                let v = if t.is_numerical() {
                    ((&x * &w).sum(DType::Double) / w.sum(DType::Double)).double_value(&[])
                } else {
                    let counts: Vec<f64> = (1..=t.classes)
                        .map(|c| {
                            (x.eq(c as f64).to_kind(DType::Double) * &w)
                                .sum(DType::Double)
                                .double_value(&[])
                        })
                        .collect();
                    1.0 + counts
                        .iter()
                        .enumerate()
                        .fold(0, |best, (i, &c)| if c > counts[best] { i } else { best })
                        as f64
                };
                x.full_like(v)
            })
            .collect();
        Tensor::stack(&cols, 1).to_kind(DType::Float)
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
        let t = self.terms(&x, &seen, self.tau(ctx.step, ctx.batch_size))?;
        let log_lik = t
            .log_lik
            .iter()
            .fold(t.kl_s.zeros_like(), |a, (_, l)| a + l);
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
                let parts: Vec<&Tensor> = t
                    .log_lik
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, l)| l)
                    .collect();
                if !parts.is_empty() {
                    terms.push((
                        name,
                        -mean(&parts.into_iter().fold(t.kl_s.zeros_like(), |a, l| a + l)),
                    ));
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
        let x_hat = self.impute_with(&self.x, &self.train_seen, false)?;
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
            ) {
                Err(e) => Some(format!("the posterior or prior flow ({e})")),
                Ok(t) => {
                    for (j, (_, l)) in t.log_lik.iter().enumerate() {
                        if !all_finite(l) {
                            return Some(format!(
                                "the likelihood of column {} ({})",
                                j + 1,
                                self.types[j].name()
                            ));
                        }
                    }
                    (!all_finite(&t.kl_z)).then(|| "the KL term of z".into())
                }
            }
        })
    }

    fn evaluate(&self) -> Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        let mut elbo = 0.0;
        for (x, s) in self
            .x
            .split(2048, 0)
            .iter()
            .zip(self.all_seen.split(2048, 0))
        {
            let t = tch::no_grad(|| self.terms(x, &s, self.config.temperature.min))?;
            let ll = t
                .log_lik
                .iter()
                .fold(t.kl_s.zeros_like(), |a, (_, l)| a + l);
            elbo += (ll - t.kl_z - t.kl_s).sum(DType::Double).double_value(&[]);
        }
        out.push(("elbo".into(), elbo / self.rows() as f64));
        if let Some(e) = self.error(
            &self.impute_with(&self.x, &self.train_seen, false)?,
            &self.val_cells,
        ) {
            out.push(("val_imputation_error".into(), e));
        }
        if let Some(e) = self.error(
            &self.impute_with(&self.x, &self.all_seen, false)?,
            &self.test_cells,
        ) {
            out.push(("test_imputation_error".into(), e));
            out.push((
                "test_mean_mode_error".into(),
                self.error(&self.mean_mode_imputation(), &self.test_cells)
                    .unwrap_or(f64::NAN),
            ));
        }
        Ok(out)
    }

    fn figures(&self) -> Result<Vec<(String, RgbImage)>> {
        Ok(vec![])
    }

    fn snapshot(&self) -> Result<Option<RgbImage>> {
        Ok(None)
    }

    fn data_dim(&self) -> i64 {
        self.types.len() as i64
    }

    fn sample(&self, n: i64, t: f64) -> Result<Tensor> {
        tch::no_grad(|| {
            let k = self.config.s_dim;
            let dev = self.x.device();
            let s = Tensor::randint(k, [n], (DType::Int64, dev))
                .one_hot(k)
                .to_kind(DType::Float);
            let u = self.prior_mean.forward(&s)
                + Tensor::randn([n, self.config.z_dim], (DType::Float, dev)) * t;
            let z = match &self.prior_flow {
                None => u,
                Some(f) => f.bijector().forward(&u, None)?.0,
            };
            let y = self.y_layer.forward(&z);
            let yd = self.config.y_dim;
            let cols: Vec<Tensor> = self
                .heads
                .iter()
                .enumerate()
                .map(|(j, h)| h.sample(&h.params(&y.narrow(1, j as i64 * yd, yd), &s)))
                .collect();
            Ok(Tensor::stack(&cols, 1))
        })
    }

    fn log_prob(&self, _x: &Tensor) -> Result<Tensor> {
        anyhow::bail!("HI-VAE runs answer `flowlab impute`, not log-prob (its marginal likelihood needs importance sampling over s and z)")
    }

    fn flow(&self) -> Option<(crate::bijector::Chain, Vec<String>)> {
        None
    }
}
