//! Elementwise layers: a learnable affine map, PReLU (the Bijector API note's example), and the
//! fixed sigmoid, tanh and exp. Their math is [`crate::bijector::elementwise`].
//!
//! Configs: `{"affine": {}}`, `{"prelu": {}}`, `"sigmoid"`, `"tanh"`, `"exp"`.
use super::{FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::elementwise::{Affine, Exp, PReLU, Sigmoid, Tanh};
use crate::bijector::Bijector;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// `{"affine": {}}`: learnable shift and log-scale per coordinate, starting at the identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AffineConfig {}

/// `{"prelu": {}}`: learnable PReLU with α = sigmoid(a) per coordinate; a starts at 2
/// (α ≈ 0.88), close to the identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreluConfig {}

/// The parameter-free elementwise layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixed {
    Sigmoid,
    Tanh,
    Exp,
}

impl LayerSpec for AffineConfig {
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let q = site.path;
        let shift = q.var("shift", &[site.dim], nn::Init::Const(0.0));
        let log_scale = q.var("log_scale", &[site.dim], nn::Init::Const(0.0));
        Ok(Box::new(AffineLayer { shift, log_scale }))
    }

    fn label(&self) -> String {
        "affine".into()
    }
}

impl LayerSpec for PreluConfig {
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let a = site.path.var("a", &[site.dim], nn::Init::Const(2.0));
        Ok(Box::new(PreluLayer(a)))
    }

    fn label(&self) -> String {
        "prelu".into()
    }
}

impl LayerSpec for Fixed {
    fn build(&self, _site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        Ok(Box::new(*self))
    }

    fn label(&self) -> String {
        match self {
            Fixed::Sigmoid => "sigmoid",
            Fixed::Tanh => "tanh",
            Fixed::Exp => "exp",
        }
        .into()
    }
}

struct AffineLayer {
    shift: Tensor,
    log_scale: Tensor,
}

impl FlowLayer for AffineLayer {
    fn names(&self) -> Vec<String> {
        vec!["affine".into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(Affine::new(
            self.shift.shallow_clone(),
            self.log_scale.shallow_clone(),
        ))])
    }
}

struct PreluLayer(Tensor);

impl FlowLayer for PreluLayer {
    fn names(&self) -> Vec<String> {
        vec!["prelu".into()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![Box::new(PReLU::new(self.0.sigmoid()))])
    }
}

impl FlowLayer for Fixed {
    fn names(&self) -> Vec<String> {
        vec![self.label()]
    }

    fn bijectors(&self, _input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        Ok(vec![match self {
            Fixed::Sigmoid => Box::new(Sigmoid),
            Fixed::Tanh => Box::new(Tanh),
            Fixed::Exp => Box::new(Exp),
        }])
    }
}
