//! HI-VAE's masked decoder: each column's likelihood reads z, s **and the observed cells that come
//! before it in a column order**, p(x_d | z, s, x_{<d}), the design note's remedy (§8.2, item 1) for
//! a decoder whose columns are independent given a 2-dimensional z.
//!
//! A MADE network (Germain et al. 2015, eqs. 12–13) over column blocks: column j's input block is
//! its coding (as the encoder's, zero where the cell is not observed) and its observed indicator,
//! both of degree π(j), the column's 1-based position in the order; hidden units have fixed degrees
//! m_k ∈ {1..D−1}; a hidden unit of the first layer sees block j iff m_k ≥ π(j), a later layer's
//! unit sees a unit below iff its degree is not smaller, and column d's output sees hidden unit k iff
//! π(d) > m_k. z and s are a context connected to every unit of the first layer. Column d's
//! output, a vector of the width of y_d, is added to y_d before the column's head, so the release's
//! per-type heads stay on top. The last layer starts at zero: an untrained masked decoder is HI-VAE.
//!
//! Orders may differ per row. Only the masks touching inputs and outputs depend on the order (the
//! hidden degrees are fixed), so one pass serves a batch of rows with their own orders: the first
//! layer is computed once per hidden degree on the prefix of the row's order that degree may see,
//! and the output mask is built per row from π. Training offers a fixed order (the table's) or a
//! fresh random order per row and step, MADE's order-agnostic training (Uria et al. 2014, §3;
//! Germain et al. 2015, §3.3), under which every subset of the observed cells is a prefix of some
//! order, or random orders with the row's shown cells first, which trains exactly the
//! conditionals imputation uses. At imputation the row's observed columns come first, so every
//! missing cell conditions on all observed cells of its row; missing predecessors enter as missing
//! (zero with indicator 0), exactly as cells missing from the table do in training.
use super::hivae::Hivae;
use super::hivae_heads::pool;
use super::hivae_lik::Params;
use crate::nn::init::Init;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Which column order the masked decoder trains with (`model.hivae.masked_decoder.order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnOrder {
    /// The table's column order, in training and for sampling.
    Fixed,
    /// A fresh random order per row and step (order-agnostic training).
    #[default]
    Random,
    /// A fresh random order per row and step with the row's shown cells first (those neither
    /// missing nor hidden by `hide_inputs`), so each scored hidden cell reads every shown cell of
    /// its row: in training as at imputation, where the observed cells come first.
    ShownFirst,
}

fn default_hidden() -> Vec<i64> {
    vec![64]
}

/// `model.hivae.masked_decoder`: the MADE network's hidden widths and its training order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedDecoderConfig {
    #[serde(default = "default_hidden")]
    pub hidden: Vec<i64>,
    #[serde(default)]
    pub order: ColumnOrder,
    /// Each column's output also shifts the pre-activation of its variance (real and positive
    /// columns), so the spread too reads z, s and the cells before it, not s alone.
    #[serde(default = "default_spread")]
    pub spread: bool,
    /// Point imputations read the likelihood pooled over this many column orders, each with the
    /// row's observed cells first in a random order (an ensemble over orders, Uria et al. 2014,
    /// §3; Germain et al. 2015, §3.3): the hidden units' degrees make each order read the row
    /// differently. 1: one order, the observed cells in the table's order.
    #[serde(default = "default_imputation_orders")]
    pub imputation_orders: i64,
}

fn default_imputation_orders() -> i64 {
    1
}

fn default_spread() -> bool {
    true
}

impl MaskedDecoderConfig {
    pub fn validate(&self, columns: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h >= 1),
            "field `model.hivae.masked_decoder.hidden`: give at least one layer, each of width at least 1, got {:?}",
            self.hidden
        );
        anyhow::ensure!(
            self.imputation_orders >= 1,
            "field `model.hivae.masked_decoder.imputation_orders`: give at least 1, got {}",
            self.imputation_orders
        );
        anyhow::ensure!(
            self.imputation_orders == 1 || self.order != ColumnOrder::Fixed,
            "field `model.hivae.masked_decoder.imputation_orders`: a decoder trained in the fixed order imputes in that order only; set 1 or train with a random order"
        );
        anyhow::ensure!(
            columns >= 2,
            "field `model.hivae.masked_decoder`: a table of {columns} column has no other cells to read"
        );
        Ok(())
    }
}

/// The MADE network of the masked decoder (see the module's text).
pub struct MaskedDecoder {
    pub config: MaskedDecoderConfig,
    columns: i64,
    /// The column of each input unit, `[W_in]`.
    input_column: Tensor,
    /// First layer: weights `[H0, W_in]`, context weights `[H0, c]`, bias.
    first: nn::Linear,
    context: nn::Linear,
    /// Later hidden layers: weight `[H, H_prev]`, bias, and the fixed degree mask.
    middle: Vec<(nn::Linear, Tensor)>,
    /// Hidden degrees of the first and the last hidden layer (as float, for comparisons).
    first_degrees: Tensor,
    last_degrees: Tensor,
    /// Output weights per column `[D, H_last, out_width]` and biases `[D, out_width]`.
    out_weight: Tensor,
    out_bias: Tensor,
}

fn degrees(width: i64, columns: i64) -> Vec<i64> {
    // Cycle through 1..D−1 so every degree is present (as `crate::nn::made`).
    (0..width).map(|k| k % (columns - 1).max(1) + 1).collect()
}

impl MaskedDecoder {
    /// `input_widths`: the coded width of each column (its indicator is added here);
    /// `context_dim`: width of [z, s]; `out_width`: outputs per column (added to y_d, then a variance shift).
    pub fn new(
        p: &nn::Path,
        config: &MaskedDecoderConfig,
        input_widths: &[i64],
        context_dim: i64,
        out_width: i64,
    ) -> Self {
        let d = input_widths.len() as i64;
        let dev = p.device();
        let mut input_column: Vec<i64> = input_widths
            .iter()
            .enumerate()
            .flat_map(|(j, &w)| std::iter::repeat_n(j as i64, w as usize))
            .collect();
        input_column.extend(0..d);
        let w_in = input_column.len() as i64;
        let h = &config.hidden;
        let deg: Vec<Vec<i64>> = h.iter().map(|&w| degrees(w, d)).collect();
        let as_tensor = |v: &[i64]| Tensor::from_slice(v).to_kind(Kind::Float).to_device(dev);
        let middle = (1..h.len())
            .map(|i| {
                let mask: Vec<f32> = deg[i]
                    .iter()
                    .flat_map(|&o| deg[i - 1].iter().map(move |&j| f32::from(u8::from(o >= j))))
                    .collect();
                let mask = Tensor::from_slice(&mask)
                    .reshape([h[i], h[i - 1]])
                    .to_device(dev);
                (
                    Init::Kaiming.linear(&(p / "hidden" / i), h[i - 1], h[i]),
                    mask,
                )
            })
            .collect();
        let last = *h.last().expect("validated: at least one hidden layer");
        Self {
            config: config.clone(),
            columns: d,
            input_column: Tensor::from_slice(&input_column).to_device(dev),
            first: Init::Kaiming.linear(&(p / "input"), w_in, h[0]),
            context: Init::Kaiming.linear_no_bias(&(p / "context"), context_dim, h[0]),
            middle,
            first_degrees: as_tensor(&deg[0]),
            last_degrees: as_tensor(deg.last().expect("one layer at least")),
            out_weight: p.zeros("out_weight", &[d, last, out_width]),
            out_bias: p.zeros("out_bias", &[d, out_width]),
        }
    }

    /// The per-column outputs `[B, D, out_width]` for coded inputs
    /// `coded: [B, Σ widths]`, observed indicators `seen: [B, D]`, context `[B, c]` and the 1-based
    /// position of each column in each row's order `pos: [B, D]` (float).
    pub fn forward(&self, coded: &Tensor, seen: &Tensor, context: &Tensor, pos: &Tensor) -> Tensor {
        let x = Tensor::cat(&[coded, seen], 1);
        let pos_in = pos.index_select(1, &self.input_column);
        // First layer, once per hidden degree m on the inputs of position ≤ m, then each unit
        // takes the result for its own degree.
        let prefixes: Vec<Tensor> = (1..self.columns.max(2))
            .map(|m| &x * pos_in.le(m as f64).to_kind(x.kind()))
            .collect();
        let all = Tensor::stack(&prefixes, 0).linear::<Tensor>(&self.first.ws, None);
        let idx = (&self.first_degrees - 1.0)
            .to_kind(Kind::Int64)
            .view([1, 1, -1])
            .expand([1, x.size()[0], -1], false);
        let mut h = all.gather(0, &idx, false).squeeze_dim(0)
            + self.first.bs.as_ref().expect("a bias")
            + context.linear::<Tensor>(&self.context.ws, None);
        for (layer, mask) in &self.middle {
            h = h.relu().linear(&(&layer.ws * mask), layer.bs.as_ref());
        }
        let h = h.relu();
        // Column d of row b sees unit k iff π_b(d) > m_k.
        let sees = pos
            .unsqueeze(2)
            .gt_tensor(&self.last_degrees.view([1, 1, -1]))
            .to_kind(h.kind());
        let hm = h.unsqueeze(1) * sees; // [B, D, H]
        hm.transpose(0, 1).bmm(&self.out_weight).transpose(0, 1) + &self.out_bias
    }

    /// Positions `[B, D]` for training rows whose shown cells are `seen`: the table's order, or a
    /// fresh random one per row (with `shown_first`, the shown cells in the first places).
    pub fn training_positions(&self, seen: &Tensor) -> Tensor {
        let rows = seen.size()[0];
        let keys = || Tensor::rand([rows, self.columns], (Kind::Float, seen.device()));
        match self.config.order {
            ColumnOrder::Fixed => self.fixed_positions(rows, seen),
            ColumnOrder::Random => Self::ranks(&keys(), seen),
            // Keys of shown cells lie in [0, 1), of the others in [1, 2).
            ColumnOrder::ShownFirst => {
                Self::ranks(&(keys() + 1.0 - seen.to_kind(Kind::Float)), seen)
            }
        }
    }

    /// Positions for imputation: each row's observed columns first (in the table's order, or
    /// `shuffled` in a fresh random one per row), then its missing ones; with a fixed training
    /// order, the table's order.
    pub fn imputation_positions(&self, seen: &Tensor, shuffled: bool) -> Tensor {
        match self.config.order {
            ColumnOrder::Fixed => self.fixed_positions(seen.size()[0], seen),
            ColumnOrder::Random | ColumnOrder::ShownFirst => {
                let unseen = 1.0 - seen.to_kind(Kind::Float);
                let keys = if shuffled {
                    Tensor::rand([seen.size()[0], self.columns], (Kind::Float, seen.device()))
                        + unseen
                } else {
                    let j = Tensor::arange(self.columns, (Kind::Float, seen.device()));
                    unseen * self.columns as f64 + j
                };
                Self::ranks(&keys, seen)
            }
        }
    }

    /// The table's order for `rows` rows (sampling fills columns in this order).
    pub fn fixed_positions(&self, rows: i64, like: &Tensor) -> Tensor {
        Tensor::arange_start(1, self.columns + 1, (Kind::Float, like.device()))
            .unsqueeze(0)
            .expand([rows, self.columns], false)
    }

    /// 1-based rank of each key in its row (float32, on `like`'s device).
    fn ranks(keys: &Tensor, like: &Tensor) -> Tensor {
        let order = keys.argsort(1, false);
        (order.argsort(1, false) + 1)
            .to_kind(Kind::Float)
            .to_device(like.device())
    }
}

/// What the masked decoder reads of a batch: coded cells (zero where unseen), observed
/// indicators `[B, D]`, and each column's 1-based position in its row's order `[B, D]`.
pub struct Visible<'a> {
    pub coded: &'a Tensor,
    pub seen: &'a Tensor,
    pub pos: Tensor,
}

impl Hivae {
    /// The batch as the masked decoder reads it: positions for training (the configured order)
    /// or, `for_imputation`, each row's observed columns first.
    pub(super) fn visible<'a>(
        &self,
        coded: &'a Tensor,
        seen: &'a Tensor,
        for_imputation: bool,
    ) -> Visible<'a> {
        let pos = match &self.masked {
            None => Tensor::zeros([0], (Kind::Float, seen.device())),
            Some(m) if for_imputation => m.imputation_positions(seen, false),
            Some(m) => m.training_positions(seen),
        };
        Visible { coded, seen, pos }
    }
}

impl Hivae {
    /// The likelihood parameters used for point imputation of rows `coded`/`seen` at (z, s):
    /// one pass with the observed cells first, or with `imputation_orders` R > 1 the pool
    /// ([`pool`]) of R passes, each with its own random order of the observed cells.
    pub(super) fn imputation_params(
        &self,
        z: &Tensor,
        s: &Tensor,
        coded: &Tensor,
        seen: &Tensor,
    ) -> Vec<Params> {
        let orders = self
            .masked
            .as_ref()
            .map_or(1, |m| m.config.imputation_orders);
        let Some(m) = self.masked.as_ref().filter(|_| orders > 1) else {
            return self.column_params(z, s, &self.visible(coded, seen, true));
        };
        let mut per_group: Vec<Vec<Params>> = Vec::new();
        for _ in 0..orders {
            let pos = m.imputation_positions(seen, true);
            let params = self.column_params(z, s, &Visible { coded, seen, pos });
            per_group.resize_with(params.len(), Vec::new);
            for (g, p) in per_group.iter_mut().zip(params) {
                g.push(p);
            }
        }
        per_group.into_iter().map(pool).collect()
    }
}
