//! A plain multilayer perceptron, used as the conditioner of coupling layers.
use super::init::Init;
use crate::bijector::conditioner::Conditioner;
use tch::{nn, Tensor};

/// `in → hidden… → out` with ReLU between layers. With `zero_last`, the last layer starts at zero
/// so a coupling layer built on it starts as the identity (Glow, §3.3).
pub struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    pub fn new(p: &nn::Path, input: i64, hidden: &[i64], output: i64, zero_last: bool) -> Self {
        let mut sizes = vec![input];
        sizes.extend_from_slice(hidden);
        sizes.push(output);
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let q = p / i;
                let (fan_in, fan_out) = (sizes[i], sizes[i + 1]);
                let scheme = if zero_last && i == n - 1 {
                    Init::Zero
                } else {
                    Init::Torch
                };
                let (w_init, b_init) = scheme.weight_and_bias(fan_in);
                let w = q.var("weight", &[fan_out, fan_in], w_init);
                let b = q.var("bias", &[fan_out], b_init);
                (w, b)
            })
            .collect();
        Mlp { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let n = self.layers.len();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i + 1 < n {
                h = h.relu();
            }
        }
        h
    }

    /// [`forward`](Self::forward) on an input whose only nonzero columns are `inputs` (passed
    /// as those columns, `[batch, |inputs|]`), returning only the output columns `outputs`: the
    /// first layer uses just those weight columns and the last just those rows, which gives the
    /// same values for a fraction of the work (a coupling layer's masked input and used outputs).
    pub fn forward_restricted(&self, x: &Tensor, inputs: &Tensor, outputs: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let n = self.layers.len();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let w = if i == 0 {
                w.index_select(1, inputs)
            } else {
                w.shallow_clone()
            };
            h = if i + 1 == n {
                h.linear(
                    &w.index_select(0, outputs),
                    Some(&b.index_select(0, outputs)),
                )
            } else {
                h.linear(&w, Some(b)).relu()
            };
        }
        h
    }

    /// The parameters' dtype (masks and inputs follow it).
    pub fn kind(&self) -> tch::Kind {
        self.layers
            .first()
            .map(|(w, _)| w.kind())
            .unwrap_or(tch::Kind::Float)
    }

    /// A copy sharing the same parameter tensors.
    pub fn shallow_clone(&self) -> Self {
        Mlp {
            layers: self
                .layers
                .iter()
                .map(|(w, b)| (w.shallow_clone(), b.shallow_clone()))
                .collect(),
        }
    }
}

impl Conditioner for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        Mlp::forward(self, x)
    }

    fn forward_restricted(
        &self,
        x_in: &Tensor,
        inputs: &Tensor,
        _: i64,
        outputs: &Tensor,
    ) -> Tensor {
        Mlp::forward_restricted(self, x_in, inputs, outputs)
    }
}
