//! Imputation with a trained HI-VAE: the model's fill of every cell, the per-column error of a
//! fill (Nazábal et al. 2020, §5: RMSE over the column's range for numerical columns, error rate
//! for categorical and ordinal ones), and the mean/mode baseline.
use super::hivae::Hivae;
use super::hivae_lik::column_error;
use crate::bijector::Bijector;
use anyhow::Result;
use tch::{Kind as DType, Tensor};

impl Hivae {
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
                let params = self.column_params(&z, &s);
                let cols: Vec<Tensor> = self
                    .heads
                    .iter()
                    .zip(&params)
                    .map(|(head, p)| if draw { head.sample(p) } else { head.impute(p) })
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
