//! The configuration of a HI-VAE run ([`super::hivae`]): the table, which cells are hidden, the
//! sizes of s, z and y, the flows, and the Gumbel-softmax temperature schedule.
use super::posterior::PosteriorConfig;
use crate::flow::LayerConfig;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which present cells to hide: `"none"`, `{"mask": "Missing20_1.csv"}`, `{"mcar": {"rate": 0.2, "seed": 1}}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Missing {
    #[default]
    None,
    Mask(PathBuf),
    Mcar {
        rate: f64,
        seed: u64,
    },
}

fn default_val_fraction() -> f64 {
    0.05
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Values, one row per record, no header (the release's `data.csv`); empty or `NaN` cells are missing.
    pub csv: PathBuf,
    /// The release's `data_types.csv`.
    pub types: PathBuf,
    #[serde(default)]
    pub missing: Missing,
    /// Share of observed cells held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Temperature {
    pub start: f64,
    pub decay_per_epoch: f64,
    pub min: f64,
}

impl Default for Temperature {
    /// The release's schedule: τ = max(1 − 0.01·epoch, 10⁻³).
    fn default() -> Self {
        Temperature {
            start: 1.0,
            decay_per_epoch: 0.01,
            min: 1e-3,
        }
    }
}

fn d10() -> i64 {
    10
}
fn d2() -> i64 {
    2
}
fn d5() -> i64 {
    5
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HivaeConfig {
    pub data: TableConfig,
    /// Mixture components K.
    #[serde(default = "d10")]
    pub s_dim: i64,
    #[serde(default = "d2")]
    pub z_dim: i64,
    /// Width of each column's slice of y.
    #[serde(default = "d5")]
    pub y_dim: i64,
    #[serde(default)]
    pub posterior: PosteriorConfig,
    /// Blocks of a flow on z for the prior (empty: the Gaussian mixture alone).
    #[serde(default)]
    pub prior_flow: Vec<LayerConfig>,
    #[serde(default)]
    pub temperature: Temperature,
    /// `"mode"` (default, the release's) or `"mean"`: the point of each column's likelihood a
    /// single imputation takes.
    #[serde(default)]
    pub imputation: super::hivae_lik::Imputation,
    /// Each column's likelihood also reads the observed cells before it in a column order
    /// (absent: the release's decoder, columns independent given z and s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_decoder: Option<super::hivae_masked::MaskedDecoderConfig>,
    /// Share of the observed cells hidden from the encoder (and the masked decoder) at each
    /// training step while still scored: trains the model on the task of imputation. 0: the
    /// release's training.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hide_inputs: f64,
    /// Rounds of chained refinement after the first point imputation (missForest's loop,
    /// Stekhoven & Bühlmann 2012): each column in turn is imputed again from a row in which every
    /// other cell is given, the imputed ones at their current values. 0: one pass.
    #[serde(default, skip_serializing_if = "is_zero_rounds")]
    pub imputation_rounds: i64,
}

fn is_zero_rounds(v: &i64) -> bool {
    *v == 0
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl HivaeConfig {
    pub fn validate(&self) -> Result<()> {
        for (v, f) in [
            (self.s_dim, "s_dim"),
            (self.z_dim, "z_dim"),
            (self.y_dim, "y_dim"),
        ] {
            ensure!(
                v >= 1,
                "field `model.hivae.{f}`: must be at least 1, got {v}"
            );
        }
        ensure!(
            (0.0..1.0).contains(&self.hide_inputs),
            "field `model.hivae.hide_inputs`: must be in [0, 1), got {}",
            self.hide_inputs
        );
        ensure!(
            (0..=20).contains(&self.imputation_rounds),
            "field `model.hivae.imputation_rounds`: must be in 0..=20, got {}",
            self.imputation_rounds
        );
        let vf = self.data.val_fraction;
        ensure!(
            (0.0..0.5).contains(&vf),
            "field `model.hivae.data.val_fraction`: must be in [0, 0.5), got {vf}"
        );
        if let Missing::Mcar { rate, .. } = self.data.missing {
            ensure!(
                rate > 0.0 && rate < 1.0,
                "field `model.hivae.data.missing.mcar.rate`: must be in (0, 1), got {rate}"
            );
        }
        self.posterior.validate(self.z_dim, "model.hivae.posterior")
    }
}
