//! MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015).
//!
//! An MLP whose weight masks make output i depend only on inputs that come before i in a chosen
//! order: with input degrees m(x_j) ∈ {1..D} (the order), hidden degrees m(h_k) ∈ {1..D−1}, a
//! hidden unit sees input j iff m(h_k) ≥ m(x_j) (eq. 12 of the paper) and an output of degree d
//! sees hidden unit k iff d > m(h_k) (eq. 13). Each of the `params` outputs per dimension (e.g.
//! shift and log-scale) gets the degree of its dimension, so the Jacobian ∂out/∂in is strictly
//! triangular in the order. An optional context input is connected to every hidden unit.
use super::init::Init;
use tch::{nn, Kind, Tensor};

pub struct Made {
    layers: Vec<(Tensor, Tensor, Tensor)>,
    context: Option<Tensor>,
    dim: i64,
    params: i64,
    /// The degree (1-based position in the order) of each input, `[D]`.
    order: Tensor,
    /// Degrees: the inputs' (the order) and each hidden layer's units'.
    degrees: Vec<Vec<i64>>,
}

impl Made {
    /// `order`: the position (1-based degree) of each input dimension, a permutation of 1..=D.
    pub fn new(p: &nn::Path, order: &[i64], hidden: &[i64], params: i64, context_dim: i64) -> Self {
        let dim = order.len() as i64;
        let mut degrees: Vec<Vec<i64>> = vec![order.to_vec()];
        for &h in hidden {
            // Cycle through 1..D−1 so every degree is present (deterministic, as in MAF's code).
            degrees.push((0..h).map(|k| k % (dim - 1).max(1) + 1).collect());
        }
        let out_degrees: Vec<i64> = (0..params).flat_map(|_| order.iter().copied()).collect();
        let mut layers = Vec::new();
        let n = hidden.len() + 1;
        for i in 0..n {
            let d_in = &degrees[i];
            let (d_out, strict): (&Vec<i64>, bool) = if i + 1 < n {
                (&degrees[i + 1], false)
            } else {
                (&out_degrees, true)
            };
            let mask: Vec<f32> = d_out
                .iter()
                .flat_map(|&o| {
                    d_in.iter().map(move |&j| {
                        if (strict && o > j) || (!strict && o >= j) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            let mask = Tensor::from_slice(&mask)
                .reshape([d_out.len() as i64, d_in.len() as i64])
                .to_device(p.device());
            let q = p / i;
            // The last layer starts at zero: the flow starts as the identity.
            let scheme = if i + 1 == n { Init::Zero } else { Init::Torch };
            let (w_init, b_init) = scheme.weight_and_bias(d_in.len() as i64);
            let w = q.var("weight", &[d_out.len() as i64, d_in.len() as i64], w_init);
            let b = q.var("bias", &[d_out.len() as i64], b_init);
            layers.push((w, b, mask));
        }
        let context = (context_dim > 0).then(|| {
            let h0 = hidden.first().copied().unwrap_or(dim * params);
            p.var(
                "context_weight",
                &[h0, context_dim],
                nn::Init::Uniform { lo: -0.1, up: 0.1 },
            )
        });
        Made {
            layers,
            context,
            dim,
            params,
            order: Tensor::from_slice(order).to_device(p.device()),
            degrees,
        }
    }

    /// `[batch, D]` (and optional context `[batch, c]`) → `[batch, params, D]`.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Tensor {
        let mut h = x.shallow_clone();
        let n = self.layers.len();
        for (i, (w, b, m)) in self.layers.iter().enumerate() {
            h = h.linear(&(w * m.to_kind(w.kind())), Some(b));
            if i == 0 {
                if let (Some(cw), Some(c)) = (&self.context, context) {
                    h += c.linear::<Tensor>(cw, None);
                }
            }
            if i + 1 < n {
                h = h.relu();
            }
        }
        h.reshape([-1, self.params, self.dim])
    }

    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// `x` with the inputs of degree above `k` set to zero: after pass k of a D-pass
    /// autoregressive solve only the first k in the order are final, and the rest (which may
    /// have overflowed on the way) must not reach the next pass (0 · ∞ is NaN in a masked
    /// matrix product).
    pub fn keep_first(&self, x: &Tensor, k: i64) -> Tensor {
        x.where_self(&self.order.le(k), &x.zeros_like())
    }

    /// A copy sharing the same parameters.
    pub fn shallow_clone(&self) -> Self {
        Made {
            layers: self
                .layers
                .iter()
                .map(|(w, b, m)| (w.shallow_clone(), b.shallow_clone(), m.shallow_clone()))
                .collect(),
            context: self.context.as_ref().map(|c| c.shallow_clone()),
            dim: self.dim,
            params: self.params,
            order: self.order.shallow_clone(),
            degrees: self.degrees.clone(),
        }
    }
}

impl Made {
    /// Solves an autoregressive map one coordinate at a time in `order`: `step(j, θ_j)` gets the
    /// `[batch, params]` outputs of coordinate j, computed from the coordinates before it, and
    /// returns its value `[batch]`. Returns all values `[batch, D]`.
    ///
    /// Each pass computes only what becomes final in it: after coordinates of degree < k are
    /// known, exactly the hidden units of degree k − 1 (in every layer) and coordinate k's
    /// outputs can be computed (a unit of degree d reads only inputs of degree ≤ d), so the D
    /// passes together cost about one full network pass instead of D of them (the way MADE's
    /// masks make sampling cheap; Germain et al. 2015, §4).
    pub fn solve(
        &self,
        batch: i64,
        context: Option<&Tensor>,
        mut step: impl FnMut(i64, &Tensor) -> crate::bijector::FlowResult<Tensor>,
    ) -> crate::bijector::FlowResult<Tensor> {
        let n = self.layers.len();
        let dev = self.order.device();
        let kind = self.layers[0].0.kind();
        let masked: Vec<Tensor> = self
            .layers
            .iter()
            .map(|(w, _, m)| w * m.to_kind(kind))
            .collect();
        let ctx = match (&self.context, context) {
            (Some(cw), Some(c)) => Some(c.linear::<Tensor>(cw, None)),
            _ => None,
        };
        let opts = (kind, dev);
        let mut x = Tensor::zeros([batch, self.dim], opts);
        // Post-activation buffers of the hidden layers; units not yet computed stay 0 (their
        // weights into units of lower degree are masked to 0 anyway).
        let mut hidden: Vec<Tensor> = (1..n)
            .map(|l| Tensor::zeros([batch, self.degrees[l].len() as i64], opts))
            .collect();
        // Units of hidden layer l by degree (degree d: entry d − 1).
        let units: Vec<Vec<Tensor>> = (1..n)
            .map(|l| {
                (1..self.dim)
                    .map(|d| {
                        let idx: Vec<i64> = (0..self.degrees[l].len() as i64)
                            .filter(|&u| self.degrees[l][u as usize] == d)
                            .collect();
                        Tensor::from_slice(&idx).to_device(dev)
                    })
                    .collect()
            })
            .collect();
        // Outputs `idx` of linear layer i (0-based) on its input; the first reads the context.
        let part = |i: usize, input: &Tensor, idx: &Tensor| -> Tensor {
            let w = masked[i].index_select(0, idx);
            let out = input.linear(&w, Some(&self.layers[i].1.index_select(0, idx)));
            match (&ctx, i) {
                (Some(c), 0) => out + c.index_select(1, idx),
                _ => out,
            }
        };
        for k in 1..=self.dim {
            for l in 1..n {
                if k == 1 {
                    continue; // units of degree 0 do not exist
                }
                let idx = &units[l - 1][(k - 2) as usize];
                if idx.numel() > 0 {
                    let input = if l == 1 { &x } else { &hidden[l - 2] };
                    let h = part(l - 1, input, idx).relu();
                    put(&mut hidden[l - 1], idx, &h);
                }
            }
            // Coordinate j has degree k; its P outputs are rows p·D + j of the last layer.
            let j = self.degrees[0].iter().position(|&d| d == k).unwrap_or(0) as i64;
            let rows: Vec<i64> = (0..self.params).map(|p| p * self.dim + j).collect();
            let input = if n == 1 { &x } else { &hidden[n - 2] };
            let out = part(n - 1, input, &Tensor::from_slice(&rows).to_device(dev));
            let value = step(j, &out)?;
            put(
                &mut x,
                &Tensor::from_slice(&[j]).to_device(dev),
                &value.reshape([-1, 1]),
            );
        }
        Ok(x)
    }
}

/// Writes `values` into columns `idx` of `t`: in place when no gradient flows (sampling: no
/// copy of the whole buffer per pass), as a new tensor otherwise (autograd keeps the old one).
fn put(t: &mut Tensor, idx: &Tensor, values: &Tensor) {
    if values.requires_grad() {
        *t = t.index_copy(1, idx, values);
    } else {
        let _ = t.index_copy_(1, idx, values);
    }
}

/// Orders for successive MADE layers: alternating 1..D and D..1 (MAF, IAF), or a random
/// permutation per layer drawn from the global generator (seeded by `train.seed` at build time).
pub fn orders(dim: i64, layers: usize, random: bool) -> Vec<Vec<i64>> {
    (0..layers)
        .map(|l| {
            if random {
                let g = Tensor::randperm(dim, (Kind::Int64, tch::Device::Cpu));
                Vec::<i64>::try_from(g + 1).unwrap_or_default()
            } else if l % 2 == 0 {
                (1..=dim).collect()
            } else {
                (1..=dim).rev().collect()
            }
        })
        .collect()
}
