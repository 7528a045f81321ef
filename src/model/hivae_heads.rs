//! HI-VAE's decoder heads, all columns at once: every column's location (means, rate, logits,
//! ordinal mean; reads [y_d, s]) comes out of one product with a block-diagonal weight, every
//! spread (variances, ordinal thresholds; reads s) out of another, and the columns that share a
//! likelihood form a group whose densities, imputations and draws are evaluated in one pass.
//! A step of a small HI-VAE is bound by per-operation overhead, not arithmetic: twelve
//! per-column heads cost far more than two products and a few groups. The formulas are those of
//! [`super::hivae_lik`]; [`Heads::column_head`] gives any column as that module's per-column
//! [`Head`], the reference the groups are tested against.
//!
//! Groups: real, positive and count columns by type; categorical columns all together, their
//! logits padded to the largest class count (absent classes get probability 0); ordinal columns
//! by level count. Parameters: `y_weight [D·y_dim, L]` (only column d's block from y_d to its own
//! outputs is used), `s_weight [s_dim, L]`, `bias [L]`, `spread_weight [s_dim, S]`,
//! `spread_bias [S]`; each column's slice is drawn as the release's per-column layer would be
//! ([`Init::Kaiming`] over its fan-in).
use super::hivae_lik::{Head, Imputation, Params, Stats};
use crate::data::hetero::{ColumnType, Kind};
use crate::nn::init::Init;
use tch::{nn, Kind as DType, Tensor};

/// The columns that share one likelihood, and where their outputs lie.
pub struct HeadGroup {
    /// The type; for categorical groups `classes` is the largest class count.
    pub t: ColumnType,
    /// The table's indices of the group's columns, and each one's class count.
    pub columns: Vec<usize>,
    pub classes: Vec<i64>,
    pub stats: Vec<Stats>,
    index: Tensor,
    /// Normalization per column `[G]`, float64 (cast to the data's kind where used).
    mean: Tensor,
    std: Tensor,
    /// First output of the group in the location and the spread vectors, and widths per column.
    loc_at: i64,
    loc_width: i64,
    spread_at: i64,
    spread_width: i64,
    /// Categorical groups of mixed class counts: which logits exist `[G, C − 1]`.
    valid: Option<Tensor>,
}

/// Output widths (location from [y, s], spread from s) of a column's head.
fn widths(t: &ColumnType) -> (i64, i64) {
    match t.kind {
        Kind::Real | Kind::Positive => (1, 1),
        Kind::Count => (1, 0),
        Kind::Categorical => (t.classes - 1, 0),
        Kind::Ordinal => (1, t.classes - 1),
    }
}

/// Columns of the table grouped by likelihood, in the order each group first appears.
pub fn groups_of(types: &[ColumnType]) -> Vec<Vec<usize>> {
    let key = |t: &ColumnType| match t.kind {
        Kind::Ordinal => (t.kind, t.classes),
        _ => (t.kind, 0),
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (j, t) in types.iter().enumerate() {
        match groups.iter_mut().find(|g| key(&types[g[0]]) == key(t)) {
            Some(g) => g.push(j),
            None => groups.push(vec![j]),
        }
    }
    groups
}

/// Every column's head (see the module's text).
pub struct Heads {
    pub groups: Vec<HeadGroup>,
    y_dim: i64,
    y_weight: Tensor,
    y_mask: Tensor,
    s_weight: Tensor,
    bias: Tensor,
    spread_weight: Tensor,
    spread_bias: Tensor,
}

impl Heads {
    pub fn new(
        p: &nn::Path,
        types: &[ColumnType],
        stats: &[Stats],
        y_dim: i64,
        s_dim: i64,
    ) -> Self {
        let dev = p.device();
        let (mut loc_total, mut spread_total) = (0, 0);
        let mut groups = Vec::new();
        for cols in groups_of(types) {
            let classes: Vec<i64> = cols.iter().map(|&j| types[j].classes).collect();
            let t = ColumnType {
                kind: types[cols[0]].kind,
                classes: *classes.iter().max().expect("a group has a column"),
            };
            let (lw, sw) = widths(&t);
            let g = cols.len() as i64;
            let valid = (classes.iter().any(|&c| c != t.classes)).then(|| {
                let v: Vec<bool> = (classes.iter())
                    .flat_map(|&c| (1..t.classes).map(move |k| k < c))
                    .collect();
                Tensor::from_slice(&v).reshape([g, lw]).to_device(dev)
            });
            let idx: Vec<i64> = cols.iter().map(|&j| j as i64).collect();
            let f64s = |v: Vec<f64>| Tensor::from_slice(&v).to_device(dev);
            groups.push(HeadGroup {
                t,
                index: Tensor::from_slice(&idx).to_device(dev),
                mean: f64s(cols.iter().map(|&j| stats[j].mean).collect()),
                std: f64s(cols.iter().map(|&j| stats[j].std).collect()),
                stats: cols.iter().map(|&j| stats[j]).collect(),
                columns: cols,
                classes,
                loc_at: loc_total,
                loc_width: lw,
                spread_at: spread_total,
                spread_width: sw,
                valid,
            });
            loc_total += g * lw;
            spread_total += g * sw;
        }
        // Column d's y_d reaches its own outputs only.
        let d = types.len() as i64;
        let mut mask = vec![0f32; (d * y_dim * loc_total) as usize];
        for g in &groups {
            for (pos, &j) in g.columns.iter().enumerate() {
                let first = g.loc_at + pos as i64 * g.loc_width;
                for r in j as i64 * y_dim..(j as i64 + 1) * y_dim {
                    for l in first..first + g.loc_width {
                        mask[(r * loc_total + l) as usize] = 1.0;
                    }
                }
            }
        }
        let (w, b) = Init::Kaiming.weight_and_bias(y_dim + s_dim);
        let (ws, bs) = Init::Kaiming.weight_and_bias(s_dim);
        Heads {
            y_weight: p.var("y_weight", &[d * y_dim, loc_total], w),
            y_mask: Tensor::from_slice(&mask)
                .reshape([d * y_dim, loc_total])
                .to_device(dev),
            s_weight: p.var("s_weight", &[s_dim, loc_total], w),
            bias: p.var("bias", &[loc_total], b),
            spread_weight: p.var("spread_weight", &[s_dim, spread_total], ws),
            spread_bias: p.var("spread_bias", &[spread_total], bs),
            groups,
            y_dim,
        }
    }

    /// Each group's parameters (`[B, G]`, classes `[B, G, C]`) from `y: [B, D·y_dim]` and
    /// `s: [B, s_dim]`: two products for all columns. `shift: [B, D]` is added to the variances'
    /// pre-activation of real and positive columns.
    pub fn params(&self, y: &Tensor, s: &Tensor, shift: Option<&Tensor>) -> Vec<Params> {
        let loc =
            y.matmul(&(&self.y_weight * &self.y_mask)) + s.matmul(&self.s_weight) + &self.bias;
        let spread = s.matmul(&self.spread_weight) + &self.spread_bias;
        self.groups
            .iter()
            .map(|g| g.params(&loc, &spread, shift))
            .collect()
    }

    /// Column `j` as a per-column head (its layers copied from the shared weights).
    pub fn column_head(&self, j: usize) -> Head {
        let g = (self.groups.iter())
            .find(|g| g.columns.contains(&j))
            .expect("every column has a group");
        let pos = g.columns.iter().position(|&c| c == j).expect("found") as i64;
        let t = ColumnType {
            kind: g.t.kind,
            classes: g.classes[pos as usize],
        };
        let (lw, sw) = widths(&t);
        let l0 = g.loc_at + pos * g.loc_width;
        let yd = self.y_dim;
        let from_y = nn::Linear {
            ws: Tensor::cat(
                &[
                    self.y_weight
                        .narrow(0, j as i64 * yd, yd)
                        .narrow(1, l0, lw)
                        .tr(),
                    self.s_weight.narrow(1, l0, lw).tr(),
                ],
                1,
            ),
            bs: Some(self.bias.narrow(0, l0, lw)),
        };
        let s0 = g.spread_at + pos * g.spread_width;
        let from_s = (sw > 0).then(|| nn::Linear {
            ws: self.spread_weight.narrow(1, s0, sw).tr(),
            bs: Some(self.spread_bias.narrow(0, s0, sw)),
        });
        Head::from_layers(t, g.stats[pos as usize], from_y, from_s)
    }
}

impl HeadGroup {
    /// The columns' means and standard deviations `[G]` in the kind of `like`.
    fn normalization(&self, like: &Tensor) -> (Tensor, Tensor) {
        (
            self.mean.to_kind(like.kind()),
            self.std.to_kind(like.kind()),
        )
    }

    /// The group's columns of `x: [B, D]` → `[B, G]`.
    pub fn gather(&self, x: &Tensor) -> Tensor {
        x.index_select(1, &self.index)
    }

    /// `values: [B, G]` written into the group's columns of `into: [B, D]`.
    pub fn scatter(&self, into: &Tensor, values: &Tensor) -> Tensor {
        into.index_copy(1, &self.index, &values.to_kind(into.kind()))
    }

    /// The group's parameters from the location `[B, L]` and spread `[B, S]` outputs.
    fn params(&self, loc: &Tensor, spread: &Tensor, shift: Option<&Tensor>) -> Params {
        let (n, g) = (loc.size()[0], self.columns.len() as i64);
        let a = loc
            .narrow(1, self.loc_at, g * self.loc_width)
            .reshape([n, g, self.loc_width]);
        let spread = (self.spread_width > 0).then(|| {
            spread
                .narrow(1, self.spread_at, g * self.spread_width)
                .reshape([n, g, self.spread_width])
        });
        let spread = match (spread, shift) {
            (Some(b), Some(sh)) if matches!(self.t.kind, Kind::Real | Kind::Positive) => {
                Some(b + sh.index_select(1, &self.index).unsqueeze(2))
            }
            (b, _) => b,
        };
        match self.t.kind {
            Kind::Real => Params::Normal {
                mean: a.squeeze_dim(2),
                var: spread.expect("real heads read s").squeeze_dim(2).softplus() + 1e-3,
            },
            Kind::Positive => Params::Normal {
                mean: a.squeeze_dim(2),
                var: (spread
                    .expect("positive heads read s")
                    .squeeze_dim(2)
                    .softplus())
                .clamp(1e-3, 1.0),
            },
            Kind::Count => Params::Poisson {
                rate: a.squeeze_dim(2).softplus() + 1e-6,
            },
            Kind::Categorical => {
                let logits = match &self.valid {
                    Some(v) => a.where_self(v, &a.full_like(f64::NEG_INFINITY)),
                    None => a,
                };
                Params::Classes {
                    log_p: Tensor::cat(&[logits.zeros_like().narrow(2, 0, 1), logits], 2)
                        .log_softmax(2, DType::Float),
                }
            }
            Kind::Ordinal => {
                // θ_1 < … < θ_{C−1}; P(x ≤ r) = σ(θ_r − h); P(x = r) = differences.
                let theta = spread
                    .expect("ordinal heads read s")
                    .softplus()
                    .cumsum(2, DType::Float);
                let cdf = (theta - &a).sigmoid();
                let edge = a.zeros_like();
                let upper = Tensor::cat(&[&cdf, &(&edge + 1.0)], 2);
                let lower = Tensor::cat(&[&edge, &cdf], 2);
                Params::Classes {
                    log_p: (upper - lower).clamp_min(1e-10).log(),
                }
            }
        }
    }

    /// ln p(x_d) `[B, G]` for the group's raw values `x: [B, G]` (any value where unseen).
    pub fn log_prob(&self, p: &Params, x: &Tensor) -> Tensor {
        let (m, sd) = self.normalization(x);
        match p {
            Params::Normal { mean, var } => {
                let (v, jac) = match self.t.kind {
                    Kind::Positive => {
                        let l = (x + 1.0).log();
                        ((&l - &m) / &sd, -l)
                    }
                    _ => ((x - &m) / &sd, x.zeros_like()),
                };
                (((v - mean).square() / var) + var.log() + crate::distribution::LN_2PI) * -0.5
                    - sd.log()
                    + jac
            }
            Params::Poisson { rate } => x * rate.log() - rate - (x + 1.0).lgamma(),
            Params::Classes { log_p } => {
                let idx = (x - 1.0)
                    .clamp(0.0, (self.t.classes - 1) as f64)
                    .to_kind(DType::Int64);
                log_p.gather(2, &idx.unsqueeze(2), false).squeeze_dim(2)
            }
        }
    }

    /// The imputed values `[B, G]` (raw units, classes from 1).
    pub fn impute(&self, p: &Params, how: Imputation) -> Tensor {
        match p {
            Params::Normal { mean, var } => {
                let (mu, sd) = self.normalization(mean);
                match self.t.kind {
                    Kind::Positive => {
                        let (m, v) = (mean * &sd + &mu, var * sd.square());
                        (how.log_normal_at(m, v).exp() - 1.0).clamp_min(0.0)
                    }
                    _ => mean * &sd + &mu,
                }
            }
            Params::Poisson { rate } => how.poisson_at(rate),
            Params::Classes { log_p } => how.class_at(log_p, self.t.kind == Kind::Ordinal),
        }
    }

    /// One draw per cell `[B, G]` from the likelihood (multiple imputation).
    pub fn sample(&self, p: &Params) -> Tensor {
        match p {
            Params::Normal { mean, var } => {
                let (mu, sd) = self.normalization(mean);
                let v = mean + var.sqrt() * mean.randn_like();
                match self.t.kind {
                    Kind::Positive => ((v * &sd + &mu).exp() - 1.0).clamp_min(0.0),
                    _ => v * &sd + &mu,
                }
            }
            Params::Poisson { rate } => rate.poisson(),
            Params::Classes { log_p } => {
                let (b, g, c) = log_p.size3().expect("[B, G, C] class probabilities");
                log_p
                    .exp()
                    .reshape([b * g, c])
                    .multinomial(1, true)
                    .reshape([b, g])
                    .to_kind(DType::Float)
                    + 1.0
            }
        }
    }
}

/// One likelihood for the equally weighted mixture of `ps` (the same group's parameters under
/// several column orders): class probabilities are averaged exactly; a Gaussian (of x, or of
/// ln(1 + x) for positive columns) takes the mixture's mean and variance; a Poisson the mixture's
/// mean rate. Point imputations are then read from the pooled likelihood.
pub fn pool(ps: Vec<Params>) -> Params {
    let r = ps.len() as f64;
    match &ps[0] {
        Params::Normal { .. } => {
            let (means, vars): (Vec<Tensor>, Vec<Tensor>) = ps
                .into_iter()
                .map(|p| match p {
                    Params::Normal { mean, var } => (mean, var),
                    _ => unreachable!("one group has one likelihood"),
                })
                .unzip();
            let means = Tensor::stack(&means, 0);
            let mean = means.mean_dim(0, false, None);
            let second = (Tensor::stack(&vars, 0) + means.square()).mean_dim(0, false, None);
            let var = (second - mean.square()).clamp_min(0.0);
            Params::Normal { mean, var }
        }
        Params::Poisson { .. } => {
            let rates: Vec<Tensor> = ps
                .into_iter()
                .map(|p| match p {
                    Params::Poisson { rate } => rate,
                    _ => unreachable!("one group has one likelihood"),
                })
                .collect();
            let rate = Tensor::stack(&rates, 0).mean_dim(0, false, None);
            Params::Poisson { rate }
        }
        Params::Classes { .. } => {
            let logs: Vec<Tensor> = ps
                .into_iter()
                .map(|p| match p {
                    Params::Classes { log_p } => log_p,
                    _ => unreachable!("one group has one likelihood"),
                })
                .collect();
            let log_p = Tensor::stack(&logs, 0).logsumexp([0i64].as_slice(), false) - r.ln();
            Params::Classes { log_p }
        }
    }
}
