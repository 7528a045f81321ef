//! Permutations of the last axis (Reverse, random orders): volume preserving, log|det| = 0. Used
//! between coupling or autoregressive layers so every coordinate gets transformed.
use super::{FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::{expect_dim, Bijector, FlowError, FlowResult};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub struct Permute {
    forward: Tensor,
    inverse: Tensor,
}

impl Permute {
    /// `perm[i]` is the input coordinate that output coordinate i takes.
    pub fn new(perm: &[i64]) -> FlowResult<Self> {
        let mut seen = vec![false; perm.len()];
        for &p in perm {
            if p < 0 || p as usize >= perm.len() || std::mem::replace(&mut seen[p as usize], true) {
                return Err(FlowError::Shape {
                    bijector: format!("permute ({perm:?} is not a permutation)"),
                    expected: perm.len() as i64,
                    got: vec![p],
                });
            }
        }
        let mut inv = vec![0i64; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p as usize] = i as i64;
        }
        Ok(Permute {
            forward: Tensor::from_slice(perm),
            inverse: Tensor::from_slice(&inv),
        })
    }

    /// D−1, …, 0.
    pub fn reverse(d: i64) -> Self {
        let perm: Vec<i64> = (0..d).rev().collect();
        Permute::new(&perm).unwrap_or_else(|_| unreachable!("a reversal is a permutation"))
    }

    fn apply(&self, x: &Tensor, idx: &Tensor) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(x, idx.size()[0], "permute")?;
        let y = x.index_select(1, &idx.to_device(x.device()));
        Ok((y, Tensor::zeros([x.size()[0]], (x.kind(), x.device()))))
    }
}

impl Bijector for Permute {
    fn forward(&self, x: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.apply(x, &self.forward)
    }

    fn inverse(&self, y: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.apply(y, &self.inverse)
    }

    fn name(&self) -> String {
        "permute".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// A seeded random permutation of 0..d from libtorch's generator.
pub fn random_order(d: i64) -> Vec<i64> {
    Vec::<i64>::try_from(Tensor::randperm(d, (Kind::Int64, tch::Device::Cpu))).unwrap_or_default()
}

/// An order of the coordinates: of successive MADE layers, or of a permutation layer.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// 1..D, then D..1, alternating (MAF and IAF papers); a permutation layer reverses.
    #[default]
    Reverse,
    /// A seeded random permutation per layer.
    Random,
}

/// `{"permute": {"order": "reverse" | "random"}}`: a fixed permutation of the coordinates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PermuteConfig {
    #[serde(default)]
    pub order: Order,
}

impl LayerSpec for PermuteConfig {
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let perm = match self.order {
            Order::Reverse => (0..site.dim).rev().collect(),
            Order::Random => random_order(site.dim),
        };
        Ok(Box::new(PermuteLayer(perm)))
    }

    fn label(&self) -> String {
        "permute".into()
    }
}

struct PermuteLayer(Vec<i64>);

impl FlowLayer for PermuteLayer {
    fn names(&self) -> Vec<String> {
        vec!["permute".into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(Permute::new(&self.0)?)])
    }
}
