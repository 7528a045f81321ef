//! From a config to a finished run folder: configs, the trainer, the run folder, the optimizer.
pub mod config;
pub mod optim;
pub mod rundir;
pub mod trainer;

use crate::model::{density::Density, flow_fit::FlowFit, Model};
use anyhow::Result;
use config::ModelConfig;

/// Builds the model a config describes, with freshly initialized parameters.
pub fn build_model(cfg: &ModelConfig, device: tch::Device) -> Result<Box<dyn Model>> {
    match cfg {
        ModelConfig::FlowFit(c) => Ok(Box::new(FlowFit::new(c.clone(), device)?)),
        ModelConfig::Density(c) => Ok(Box::new(Density::new(c.clone(), device)?)),
    }
}

/// Sets libtorch's intra-op thread count (the config's `runtime.threads`).
pub fn set_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}
