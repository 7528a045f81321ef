//! Imputation with a trained HI-VAE: the model's fill of every cell, the per-column error of a
//! fill (Nazábal et al. 2020, §5: RMSE over the column's range for numerical columns, error rate
//! for categorical and ordinal ones), the mean/mode baseline, the run's final metrics, and new
//! rows drawn from the generative model.
use super::hivae::Hivae;
use super::hivae_heads::HeadGroup;
use super::hivae_lik::{column_error, Imputation, Params};
use super::Sampler;
use crate::bijector::Bijector;
use crate::data::hetero::Kind;
use anyhow::Result;
use tch::{nn::Module, Kind as DType, Tensor};

/// Imputations `[n, D]` and how many cells had to be brought back into their column's support.
pub struct Filled {
    pub values: Tensor,
    /// Non-finite numerical imputations, replaced by the column's training mean.
    pub clamped: i64,
}

impl Hivae {
    /// Imputations of every cell `[n, D]` given the cells in `seen`: the likelihood's mode (or
    /// mean, `model.hivae.imputation`) at s = argmax q(s|x) and z = the flow of q(z|x, s)'s mean,
    /// or (`draw`) samples of s, z and x. Every value lies in its column's support.
    pub fn impute_with(&self, x: &Tensor, seen: &Tensor, draw: bool) -> Result<Filled> {
        self.impute_as(x, seen, draw, self.config.imputation)
    }

    /// As [`impute_with`](Self::impute_with), with the point `how` for single imputations.
    pub fn impute_as(
        &self,
        x: &Tensor,
        seen: &Tensor,
        draw: bool,
        how: Imputation,
    ) -> Result<Filled> {
        let first = self.within_support(self.impute_raw(x, seen, draw, how)?);
        if draw || self.config.imputation_rounds == 0 {
            return Ok(first);
        }
        self.refine(x, seen, first, how)
    }

    /// `imputation_rounds` rounds of chained refinement: column d of the rows missing it is
    /// imputed again with every other cell given (observed, or imputed at its current value),
    /// columns in turn, each update seen by the next (Gauss–Seidel, as missForest).
    fn refine(
        &self,
        x: &Tensor,
        seen: &Tensor,
        mut filled: Filled,
        how: Imputation,
    ) -> Result<Filled> {
        let observed = seen.gt(0.5);
        for _ in 0..self.config.imputation_rounds {
            for d in 0..self.types.len() as i64 {
                let missing = observed.select(1, d).logical_not();
                if missing.sum(DType::Int64).int64_value(&[]) == 0 {
                    continue;
                }
                let given = x.where_self(&observed, &filled.values);
                let shown = seen.ones_like();
                shown.select(1, d).copy_(&seen.select(1, d));
                let raw = self.impute_raw(&given, &shown, false, how)?;
                let bad = raw
                    .select(1, d)
                    .isfinite()
                    .logical_not()
                    .logical_and(&missing);
                filled.clamped += bad.sum(DType::Int64).int64_value(&[]);
                let column = self.within_support(raw).values.select(1, d);
                filled
                    .values
                    .select(1, d)
                    .copy_(&column.where_self(&missing, &filled.values.select(1, d)));
            }
        }
        Ok(filled)
    }

    /// Non-finite numerical values (a posterior sent far from the data) become the column's
    /// training mean; classes come out of an argmax or a draw and are always valid.
    fn within_support(&self, v: Tensor) -> Filled {
        let mut clamped = 0;
        let cols: Vec<Tensor> = self
            .types
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let c = v.select(1, j as i64);
                if !t.is_numerical() {
                    return c;
                }
                let s = self.schema.stats[j];
                let fallback = match t.kind {
                    Kind::Real => s.mean,
                    Kind::Positive => s.mean.exp_m1().max(0.0),
                    _ => s.mean.exp_m1().max(0.0).round(),
                };
                let bad = c.isfinite().logical_not();
                clamped += bad.sum(DType::Int64).int64_value(&[]);
                c.where_self(&bad.logical_not(), &c.full_like(fallback))
            })
            .collect();
        Filled {
            values: Tensor::stack(&cols, 1),
            clamped,
        }
    }

    fn impute_raw(&self, x: &Tensor, seen: &Tensor, draw: bool, how: Imputation) -> Result<Tensor> {
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
                let params = if draw {
                    self.column_params(&z, &s, &self.visible(&xin, &ss, true))
                } else {
                    self.imputation_params(&z, &s, &xin, &ss)
                };
                out.push(self.assemble(
                    &params,
                    |g, p| {
                        if draw {
                            g.sample(p)
                        } else {
                            g.impute(p, how)
                        }
                    },
                ));
            }
            Ok(Tensor::cat(&out, 0))
        })
    }

    /// Mean over columns of the per-column error of `x_hat` on `cells` (columns without cells skipped).
    pub fn error(&self, x_hat: &Tensor, cells: &Tensor) -> Option<f64> {
        self.error_of(x_hat, cells, |_| true)
    }

    /// [`Self::error`] over the columns whose type passes `keep`.
    pub fn error_of(
        &self,
        x_hat: &Tensor,
        cells: &Tensor,
        keep: impl Fn(Kind) -> bool,
    ) -> Option<f64> {
        let errs: Vec<f64> = (self.types.iter().enumerate())
            .filter(|(_, t)| keep(t.kind))
            .filter_map(|(j, t)| {
                let j = j as i64;
                column_error(
                    t,
                    &self.x.select(1, j),
                    &x_hat.select(1, j),
                    &cells.select(1, j),
                    self.schema.ranges[j as usize],
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

    /// The run's final metrics: ELBO per row, validation and test imputation errors (mode and
    /// mean side by side, and mean/mode imputation on the same cells), cells clamped.
    pub(super) fn metrics(&self) -> Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        let mut elbo = 0.0;
        for (x, s) in self
            .x
            .split(2048, 0)
            .iter()
            .zip(self.all_seen.split(2048, 0))
        {
            let t = tch::no_grad(|| self.terms(x, &s, self.config.temperature.min, false))?;
            let ll = t.log_lik_of(|_| true);
            elbo += (ll - t.kl_z - t.kl_s).sum(DType::Double).double_value(&[]);
        }
        out.push(("elbo".into(), elbo / self.rows() as f64));
        // Validation and test cells: every point side by side, and the configured one (the same
        // imputation, so the figures agree where orders are drawn at random); the validation
        // error of each point is there to choose the point by.
        let (mut val, mut test) = (None, None);
        let mut both = Vec::new();
        for how in Imputation::ALL {
            let v = self.impute_as(&self.x, &self.train_seen, false, how)?;
            if let Some(e) = self.error(&v.values, &self.val_cells) {
                both.push((format!("val_imputation_error_{}", how.name()), e));
                if how == self.config.imputation {
                    out.push(("val_imputation_error".into(), e));
                }
            }
            let name = format!("test_imputation_error_{}", how.name());
            let f = self.impute_as(&self.x, &self.all_seen, false, how)?;
            if let Some(e) = self.error(&f.values, &self.test_cells) {
                both.push((name, e));
            }
            if how == self.config.imputation {
                (val, test) = (Some(v), Some(f));
            }
        }
        let (val, test) = val
            .zip(test)
            .expect("the configured imputation is one of Imputation::ALL");
        if let Some(e) = self.error(&test.values, &self.test_cells) {
            out.push(("test_imputation_error".into(), e));
            out.extend(both);
            // By column type, to see where the error comes from.
            for kind in [
                Kind::Real,
                Kind::Positive,
                Kind::Count,
                Kind::Categorical,
                Kind::Ordinal,
            ] {
                let name = crate::data::hetero::ColumnType { kind, classes: 2 }.name();
                if let Some(e) = self.error_of(&test.values, &self.test_cells, |k| k == kind) {
                    out.push((format!("test_imputation_error_{name}"), e));
                }
            }
            out.push((
                "test_mean_mode_error".into(),
                self.error(&self.mean_mode_imputation(), &self.test_cells)
                    .unwrap_or(f64::NAN),
            ));
        }
        // Cells whose imputation was not finite and was replaced by the column's mean.
        out.push((
            "imputations_clamped".into(),
            (val.clamped + test.clamped) as f64,
        ));
        Ok(out)
    }
}

impl Sampler for Hivae {
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
            Ok(self.schema.in_table_codes(&self.draw_rows(&z, &s)))
        })
    }
}

impl Hivae {
    /// One row drawn per (z, s): every column at once; with the masked decoder column by column
    /// in the table's order, each conditioned on the draws before it.
    fn draw_rows(&self, z: &Tensor, s: &Tensor) -> Tensor {
        let n = z.size()[0];
        let d = self.types.len() as i64;
        let x = Tensor::zeros([n, d], (DType::Float, z.device()));
        let seen = x.zeros_like();
        let passes = if self.masked.is_some() { d } else { 1 };
        for pass in 0..passes {
            let coded = self.encode_input(&x, &seen);
            let pos = match &self.masked {
                Some(m) => m.fixed_positions(n, z),
                None => Tensor::zeros([0], (DType::Float, z.device())),
            };
            let visible = super::hivae_masked::Visible {
                coded: &coded,
                seen: &seen,
                pos,
            };
            let params = self.column_params(z, s, &visible);
            let drawn = self.assemble(&params, HeadGroup::sample);
            if self.masked.is_none() {
                return drawn;
            }
            x.select(1, pass).copy_(&drawn.select(1, pass));
            let _ = seen.select(1, pass).fill_(1.0);
        }
        x
    }

    /// `[B, D]` from each head group's values `[B, G]`, computed by `f`.
    fn assemble(&self, params: &[Params], f: impl Fn(&HeadGroup, &Params) -> Tensor) -> Tensor {
        let n = params.first().map_or(0, Params::rows);
        let out = Tensor::zeros(
            [n, self.types.len() as i64],
            (DType::Float, self.x.device()),
        );
        (self.heads.groups.iter().zip(params)).fold(out, |acc, (g, p)| g.scatter(&acc, &f(g, p)))
    }
}
