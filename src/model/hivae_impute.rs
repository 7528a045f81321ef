//! Imputation with a trained HI-VAE: the model's fill of every cell, the per-column error of a
//! fill (Nazábal et al. 2020, §5: RMSE over the column's range for numerical columns, error rate
//! for categorical and ordinal ones), and the mean/mode baseline.
use super::hivae::Hivae;
use super::hivae_lik::{column_error, Imputation};
use crate::bijector::Bijector;
use crate::data::hetero::Kind;
use anyhow::Result;
use tch::{Kind as DType, Tensor};

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
        let raw = self.impute_raw(x, seen, draw, how)?;
        Ok(self.within_support(raw))
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
                let params = self.column_params(&z, &s);
                let cols: Vec<Tensor> = self
                    .heads
                    .iter()
                    .zip(&params)
                    .map(|(head, p)| {
                        if draw {
                            head.sample(p)
                        } else {
                            head.impute(p, how)
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
}
