//! Per-column likelihoods of HI-VAE (Nazábal et al. 2020, §3; the release's
//! `loglik_models_missing_normalize.py`), their input codings, imputations and error metrics.
//!
//! | type | input to the encoder | p(x_d | y_d, s) | imputation: mode (default) / mean |
//! |---|---|---|---|
//! | real | (x − m)/σ | N(x; m + σμ(y, s), σ²v(s)) | m + σμ |
//! | pos | (ln(1+x) − m)/σ | log-normal on ln(1 + x), variance in [1e-3, 1] (normalized) | max(exp(μ − v) − 1, 0) / exp(μ + v/2) − 1 |
//! | count | ln(1 + x) | Poisson(λ(y, s)), λ = softplus | ⌊λ⌋ / round(λ) |
//! | cat | one-hot | softmax(0, ℓ(y, s)) (first logit fixed for identifiability) | the most likely class |
//! | ordinal | thermometer | P(x ≤ r) = σ(θ_r(s) − h(y, s)), θ = cumsum softplus | the most likely level |
//!
//! As in the release (`theta_estimation_from_y`), the means, the rate, the logits and the ordinal
//! mean read both y_d and s; the variances and the ordinal thresholds read s alone. μ, v of a
//! positive column are those of ln(1 + x) in its own units.
//! m and σ are the column's mean and standard deviation over observed training cells only.
//! Errors on imputed cells: numerical columns RMSE / (max − min), categorical the error rate,
//! ordinal mean |x − x̂| / levels (the release's `error_computation`).
use crate::data::hetero::{ColumnType, Kind};
use crate::nn::init::Init;
use tch::{nn, nn::Module, Kind as DType, Tensor};

/// Normalization statistics of one column (on ln(1 + x) for pos and count).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub mean: f64,
    pub std: f64,
}

/// Width of a column's encoder input.
pub fn input_width(t: &ColumnType) -> i64 {
    if t.is_numerical() {
        1
    } else {
        t.classes
    }
}

/// Encoder input of one column: `x: [n]` raw values, `seen: [n]` 0/1 → `[n, width]`, zero where unseen.
pub fn encode(t: &ColumnType, s: Stats, x: &Tensor, seen: &Tensor) -> Tensor {
    let v = match t.kind {
        Kind::Real => ((x - s.mean) / s.std).unsqueeze(1),
        Kind::Positive => (((x + 1.0).log() - s.mean) / s.std).unsqueeze(1),
        Kind::Count => (x + 1.0).log().unsqueeze(1),
        Kind::Categorical | Kind::Ordinal => {
            let levels = Tensor::arange_start(1, t.classes + 1, (DType::Float, x.device()));
            let xc = x.unsqueeze(1);
            if t.kind == Kind::Categorical {
                xc.eq_tensor(&levels).to_kind(DType::Float)
            } else {
                xc.ge_tensor(&levels).to_kind(DType::Float)
            }
        }
    };
    v * seen.unsqueeze(1)
}

/// The encoder input of a whole table in one pass: every column coded as [`encode`] codes it
/// (the per-column form, the reference this one is tested against).
pub struct InputCoding {
    /// The column of each input unit `[W]`, and the class level each unit tests (0 for numbers).
    unit_column: Tensor,
    level: Tensor,
    /// Unit kinds `[W]`: a number (after ln(1 + x) where `log`), a one-hot class, a thermometer level.
    number: Tensor,
    log: Tensor,
    one_hot: Tensor,
    /// Normalization per unit (0 and 1 for counts and classes), float64, cast where used.
    mean: Tensor,
    std: Tensor,
}

impl InputCoding {
    pub fn new(types: &[ColumnType], stats: &[Stats], device: tch::Device) -> Self {
        let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (j, (t, st)) in types.iter().zip(stats).enumerate() {
            for level in 1..=input_width(t) {
                let (m, sd) = match t.kind {
                    Kind::Real | Kind::Positive => (st.mean, st.std),
                    _ => (0.0, 1.0),
                };
                cols.0.push(j as i64);
                cols.1
                    .push(if t.is_numerical() { 0.0 } else { level as f64 });
                cols.2.push(t.is_numerical());
                cols.3.push(matches!(t.kind, Kind::Positive | Kind::Count));
                cols.4.push(t.kind == Kind::Categorical);
                cols.5.push(m);
                cols.6.push(sd);
            }
        }
        let floats = |v: &[f64]| {
            Tensor::from_slice(v)
                .to_kind(DType::Float)
                .to_device(device)
        };
        let flags = |v: &[bool]| Tensor::from_slice(v).to_device(device);
        InputCoding {
            unit_column: Tensor::from_slice(&cols.0).to_device(device),
            level: floats(&cols.1),
            number: flags(&cols.2),
            log: flags(&cols.3),
            one_hot: flags(&cols.4),
            mean: Tensor::from_slice(&cols.5).to_device(device),
            std: Tensor::from_slice(&cols.6).to_device(device),
        }
    }

    /// `x: [B, D]` raw values, `seen: [B, D]` 0/1 → `[B, W]`, zero where unseen.
    pub fn encode(&self, x: &Tensor, seen: &Tensor) -> Tensor {
        let xu = x.index_select(1, &self.unit_column);
        let (m, sd) = (self.mean.to_kind(x.kind()), self.std.to_kind(x.kind()));
        let number = (xu.where_self(&self.log.logical_not(), &(&xu + 1.0).log()) - m) / sd;
        let class = xu
            .eq_tensor(&self.level)
            .where_self(&self.one_hot, &xu.ge_tensor(&self.level))
            .to_kind(xu.kind());
        number.where_self(&self.number, &class) * seen.index_select(1, &self.unit_column)
    }
}

/// The decoder head of one column: maps (y_d, s) to its likelihood's parameters, `[B]`-shaped.
/// The model decodes columns in groups ([`super::hivae_heads::Heads`]); this per-column form, the release's,
/// is the reference the groups are tested against.
pub struct Head {
    pub t: ColumnType,
    pub stats: Stats,
    /// Reads [y_d, s]: means, rate, logits.
    from_y: nn::Linear,
    /// Reads s: variances, ordinal thresholds.
    from_s: Option<nn::Linear>,
}

impl Params {
    /// Rows of the batch.
    pub fn rows(&self) -> i64 {
        match self {
            Params::Normal { mean, .. } => mean.size()[0],
            Params::Poisson { rate } => rate.size()[0],
            Params::Classes { log_p } => log_p.size()[0],
        }
    }

    /// Column `position` of a group's parameters (`[B, G]`, classes `[B, G, C]`) as one
    /// column's (`[B]`, classes `[B, C]`).
    pub fn column(&self, position: i64) -> Params {
        match self {
            Params::Normal { mean, var } => Params::Normal {
                mean: mean.select(1, position),
                var: var.select(1, position),
            },
            Params::Poisson { rate } => Params::Poisson {
                rate: rate.select(1, position),
            },
            Params::Classes { log_p } => Params::Classes {
                log_p: log_p.select(1, position),
            },
        }
    }
}

/// Which point of a column's likelihood a single imputation takes (`model.hivae.imputation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Imputation {
    /// The most likely value, as the release reports (log-normal and Poisson modes).
    #[default]
    Mode,
    /// The expected value (log-normal mean; the Poisson rate rounded to a count). Classes still
    /// take their most likely class.
    Mean,
    /// The median (log-normal: e^μ − 1; Poisson: ⌊λ + 1/3 − 0.02/λ⌋, Choi 1994; ordinal: the
    /// first level whose cumulative probability reaches 1/2, which minimizes the expected
    /// |x − x̂| the ordinal error measures). Categorical columns take their most likely class.
    Median,
}

impl Imputation {
    pub const ALL: [Imputation; 3] = [Imputation::Mode, Imputation::Mean, Imputation::Median];

    pub fn name(self) -> &'static str {
        match self {
            Imputation::Mode => "mode",
            Imputation::Mean => "mean",
            Imputation::Median => "median",
        }
    }

    /// The point of ln(1 + x) ~ N(m, v) in log units.
    pub fn log_normal_at(self, m: Tensor, v: Tensor) -> Tensor {
        match self {
            Imputation::Mode => m - v,
            Imputation::Mean => m + v * 0.5,
            Imputation::Median => m,
        }
    }

    /// The point of Poisson(λ).
    pub fn poisson_at(self, rate: &Tensor) -> Tensor {
        match self {
            Imputation::Mode => rate.floor(),
            Imputation::Mean => rate.round(),
            Imputation::Median => (rate + 1.0 / 3.0 - rate.reciprocal() * 0.02)
                .floor()
                .clamp_min(0.0),
        }
    }

    /// The class (from 1) of probabilities `log_p` over the `last` dimension.
    pub fn class_at(self, log_p: &Tensor, ordinal: bool) -> Tensor {
        let last = log_p.dim() as i64 - 1;
        if ordinal && self == Imputation::Median {
            let cdf = log_p.exp().cumsum(last, DType::Float);
            // Levels whose cumulative probability is still below 1/2, plus one.
            return cdf
                .lt(0.5)
                .to_kind(DType::Float)
                .sum_dim_intlist(last, false, DType::Float)
                + 1.0;
        }
        log_p.argmax(last, false).to_kind(DType::Float) + 1.0
    }
}

/// A column's likelihood, given parameters for a batch.
pub enum Params {
    /// Normalized mean and variance (of x, or of ln(1 + x) for pos).
    Normal {
        mean: Tensor,
        var: Tensor,
    },
    Poisson {
        rate: Tensor,
    },
    Classes {
        log_p: Tensor,
    },
}

impl Head {
    pub fn new(p: &nn::Path, t: ColumnType, stats: Stats, y_dim: i64, s_dim: i64) -> Self {
        let (y_out, s_out) = match t.kind {
            Kind::Real | Kind::Positive => (1, Some(1)),
            Kind::Count => (1, None),
            Kind::Categorical => (t.classes - 1, None),
            Kind::Ordinal => (1, Some(t.classes - 1)),
        };
        Head {
            t,
            stats,
            from_y: Init::Kaiming.linear(&(p / "y"), y_dim + s_dim, y_out),
            from_s: s_out.map(|o| Init::Kaiming.linear(&(p / "s"), s_dim, o)),
        }
    }

    /// A head with the given layers (`[y_d, s] → location`, `s → spread`).
    pub fn from_layers(
        t: ColumnType,
        stats: Stats,
        from_y: nn::Linear,
        from_s: Option<nn::Linear>,
    ) -> Self {
        Head {
            t,
            stats,
            from_y,
            from_s,
        }
    }

    pub fn params(&self, y: &Tensor, s: &Tensor) -> Params {
        let a = self.from_y.forward(&Tensor::cat(&[y, s], 1));
        let b = self.from_s.as_ref().map(|l| l.forward(s));
        match self.t.kind {
            Kind::Real => Params::Normal {
                mean: a.squeeze_dim(1),
                var: b.unwrap().squeeze_dim(1).softplus() + 1e-3,
            },
            Kind::Positive => Params::Normal {
                mean: a.squeeze_dim(1),
                var: b.unwrap().squeeze_dim(1).softplus().clamp(1e-3, 1.0),
            },
            Kind::Count => Params::Poisson {
                rate: a.squeeze_dim(1).softplus() + 1e-6,
            },
            Kind::Categorical => Params::Classes {
                log_p: Tensor::cat(&[a.zeros_like().narrow(1, 0, 1), a], 1)
                    .log_softmax(1, DType::Float),
            },
            Kind::Ordinal => {
                // θ_1 < … < θ_{C−1}; P(x ≤ r) = σ(θ_r − h); P(x = r) = differences.
                let theta = b.unwrap().softplus().cumsum(1, DType::Float);
                let cdf = (theta - &a).sigmoid();
                let n = cdf.size()[0];
                let zeros = Tensor::zeros([n, 1], (DType::Float, a.device()));
                let ones = Tensor::ones([n, 1], (DType::Float, a.device()));
                let upper = Tensor::cat(&[&cdf, &ones], 1);
                let lower = Tensor::cat(&[&zeros, &cdf], 1);
                Params::Classes {
                    log_p: (upper - lower).clamp_min(1e-10).log(),
                }
            }
        }
    }

    /// ln p(x_d) per row for raw values x (any value where the cell is unseen; mask outside).
    pub fn log_prob(&self, p: &Params, x: &Tensor) -> Tensor {
        let s = self.stats;
        match p {
            Params::Normal { mean, var } => {
                let (v, jac) = match self.t.kind {
                    Kind::Positive => {
                        let l = (x + 1.0).log();
                        ((&l - s.mean) / s.std, -l)
                    }
                    _ => ((x - s.mean) / s.std, x.zeros_like()),
                };
                (((v - mean).square() / var) + var.log() + crate::distribution::LN_2PI) * -0.5
                    - s.std.ln()
                    + jac
            }
            Params::Poisson { rate } => x * rate.log() - rate - (x + 1.0).lgamma(),
            Params::Classes { log_p } => {
                let idx = (x - 1.0)
                    .clamp(0.0, (self.t.classes - 1) as f64)
                    .to_kind(DType::Int64);
                log_p.gather(1, &idx.unsqueeze(1), false).squeeze_dim(1)
            }
        }
    }

    /// The imputed value per row (raw units, classes from 1).
    pub fn impute(&self, p: &Params, how: Imputation) -> Tensor {
        let s = self.stats;
        match p {
            Params::Normal { mean, var } => match self.t.kind {
                Kind::Positive => {
                    let (m, v) = (mean * s.std + s.mean, var * (s.std * s.std));
                    (how.log_normal_at(m, v).exp() - 1.0).clamp_min(0.0)
                }
                _ => mean * s.std + s.mean,
            },
            Params::Poisson { rate } => how.poisson_at(rate),
            Params::Classes { log_p } => how.class_at(log_p, self.t.kind == Kind::Ordinal),
        }
    }

    /// One draw from the likelihood per row (multiple imputation).
    pub fn sample(&self, p: &Params) -> Tensor {
        let s = self.stats;
        match p {
            Params::Normal { mean, var } => {
                let v = mean + var.sqrt() * mean.randn_like();
                match self.t.kind {
                    Kind::Positive => ((v * s.std + s.mean).exp() - 1.0).clamp_min(0.0),
                    _ => v * s.std + s.mean,
                }
            }
            Params::Poisson { rate } => rate.poisson(),
            Params::Classes { log_p } => {
                log_p
                    .exp()
                    .multinomial(1, true)
                    .squeeze_dim(1)
                    .to_kind(DType::Float)
                    + 1.0
            }
        }
    }
}

/// The release's per-column error of imputations `x_hat` against `x` on the cells where
/// `cells` is set (`[n]` each); `range` = max − min of the column's true values. None if no cell.
pub fn column_error(
    t: &ColumnType,
    x: &Tensor,
    x_hat: &Tensor,
    cells: &Tensor,
    range: f64,
) -> Option<f64> {
    let n = cells
        .to_kind(DType::Double)
        .sum(DType::Double)
        .double_value(&[]);
    if n == 0.0 {
        return None;
    }
    let w = cells.to_kind(DType::Double);
    let diff = (x.to_kind(DType::Double) - x_hat.to_kind(DType::Double)) * &w;
    let e = match t.kind {
        Kind::Categorical => {
            diff.ne(0.0)
                .to_kind(DType::Double)
                .sum(DType::Double)
                .double_value(&[])
                / n
        }
        Kind::Ordinal => diff.abs().sum(DType::Double).double_value(&[]) / n / t.classes as f64,
        _ => (diff.square().sum(DType::Double).double_value(&[]) / n).sqrt() / range.max(1e-12),
    };
    Some(e)
}
