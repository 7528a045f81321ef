//! The one mechanism for a layer's parameters, free or amortized (flowjax's `Planar` with an
//! optional conditioning size, in one type).
//!
//! A layer family names its pieces (planar: `u` of width D, `w` of width D, scalar `b`) and how
//! free ones start. Built without features, each piece is a learnable tensor `[K, width]` (`[K]`
//! for a scalar) named after the piece; built with features of width F, one linear head
//! `head: F → K·Σ width` computes all K layers' pieces per data point (Rezende & Mohamed 2015,
//! §4: the flow parameters are outputs of the inference network). Either way
//! [`LayerParams::values`] returns each piece with the layer axis first, so a family's code has
//! one path: `[K, width]` free, `[K, rows, width]` amortized.
use super::LayerInput;
use crate::bijector::Bijector;
use crate::nn::init::{Init, HEAD_SCALE};
use anyhow::{bail, Result};
use tch::{nn, nn::Module, Tensor};

/// One named parameter of a layer: `width` numbers per layer (0: a scalar per layer).
pub struct Piece {
    pub name: &'static str,
    pub width: i64,
    /// How a free piece starts (an amortized one starts from its head's initialization).
    pub init: nn::Init,
}

impl Piece {
    pub fn new(name: &'static str, width: i64, init: nn::Init) -> Self {
        Piece { name, width, init }
    }

    fn numbers(&self) -> i64 {
        self.width.max(1)
    }
}

/// U(−lim, lim).
pub fn uniform(lim: f64) -> nn::Init {
    nn::Init::Uniform { lo: -lim, up: lim }
}

enum Source {
    Free(Vec<Tensor>),
    Head(nn::Linear),
}

/// The parameters of K layers of one family.
pub struct LayerParams {
    k: i64,
    pieces: Vec<Piece>,
    source: Source,
}

impl LayerParams {
    /// Free pieces under `p` (`p/u`, `p/w`, …), or one head `p/head` reading `features` numbers.
    pub fn new(p: &nn::Path, k: i64, pieces: Vec<Piece>, features: Option<i64>) -> Self {
        let source = match features {
            None => Source::Free(
                pieces
                    .iter()
                    .map(|pc| {
                        let shape = if pc.width == 0 {
                            vec![k]
                        } else {
                            vec![k, pc.width]
                        };
                        p.var(pc.name, &shape, pc.init)
                    })
                    .collect(),
            ),
            Some(f) => {
                let width: i64 = pieces.iter().map(Piece::numbers).sum();
                Source::Head(Init::Scaled(HEAD_SCALE).linear(&(p / "head"), f, k * width))
            }
        };
        LayerParams { k, pieces, source }
    }

    /// How many layers these parameters serve.
    pub fn len(&self) -> i64 {
        self.k
    }

    /// Never: a block has at least one layer.
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }

    /// True when the parameters are computed per data point.
    pub fn amortized(&self) -> bool {
        matches!(self.source, Source::Head(_))
    }

    /// Amortized pieces (`values` of an amortized layer) split per layer: for each of the K
    /// layers, its pieces `[rows, width]` repeated for importance samples.
    pub fn per_layer(&self, values: &[Tensor], input: &LayerInput) -> Vec<Vec<Tensor>> {
        (0..self.k)
            .map(|i| values.iter().map(|v| input.rep(v.select(0, i))).collect())
            .collect()
    }

    /// The K bijectors: `free` makes them all at once from the stacked pieces (`[K, width]`),
    /// `amortized` one layer's from its pieces (`[rows, width]`, repeated for importance
    /// samples).
    pub fn bijectors<B: Bijector + 'static>(
        &self,
        input: &LayerInput,
        free: impl Fn(&[Tensor]) -> Vec<B>,
        amortized: impl Fn(&[Tensor]) -> B,
    ) -> Result<Vec<Box<dyn Bijector>>> {
        let v = self.values(input)?;
        let layers = if self.amortized() {
            self.per_layer(&v, input)
                .iter()
                .map(|p| amortized(p))
                .collect()
        } else {
            free(&v)
        };
        Ok(layers
            .into_iter()
            .map(|l| Box::new(l) as Box<dyn Bijector>)
            .collect())
    }

    /// Every piece, layer axis first: free `[K, width]` (`[K]`), amortized `[K, rows, width]`
    /// (`[K, rows]`) from `input.features`. Not yet repeated for importance samples.
    pub fn values(&self, input: &LayerInput) -> Result<Vec<Tensor>> {
        match &self.source {
            Source::Free(t) => Ok(t.iter().map(|t| t.shallow_clone()).collect()),
            Source::Head(head) => {
                let Some(h) = input.features else {
                    bail!("this layer computes its parameters from an encoder's features, and none were given")
                };
                let width: i64 = self.pieces.iter().map(Piece::numbers).sum();
                // [rows, K·width] → [K, rows, width]: the same layout as K heads side by side.
                let raw = head.forward(h).reshape([-1, self.k, width]).transpose(0, 1);
                let mut at = 0;
                Ok(self
                    .pieces
                    .iter()
                    .map(|pc| {
                        let t = raw.narrow(2, at, pc.numbers());
                        at += pc.numbers();
                        if pc.width == 0 {
                            t.squeeze_dim(2)
                        } else {
                            t
                        }
                    })
                    .collect())
            }
        }
    }
}
