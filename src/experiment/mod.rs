//! From a config to a finished run folder: configs, the trainer, the run folder, the optimizer.
pub mod config;
pub mod optim;
pub mod overrides;
pub mod rundir;
pub mod sweep;
pub mod trainer;

use crate::model::{
    autoencoder::Autoencoder, density::Density, flow_fit::FlowFit, vae::Vae, Model,
};
use anyhow::Result;
use config::ModelConfig;

/// Builds the model a config describes, with freshly initialized parameters.
pub fn build_model(cfg: &ModelConfig, device: tch::Device) -> Result<Box<dyn Model>> {
    match cfg {
        ModelConfig::FlowFit(c) => Ok(Box::new(FlowFit::new(c.clone(), device)?)),
        ModelConfig::Density(c) => Ok(Box::new(Density::new(c.clone(), device)?)),
        ModelConfig::Vae(c) => Ok(Box::new(Vae::new(c.clone(), device)?)),
        ModelConfig::Autoencoder(c) => Ok(Box::new(Autoencoder::new(c.clone(), device)?)),
        ModelConfig::Hivae(c) => Ok(Box::new(crate::model::hivae::Hivae::new(
            c.clone(),
            device,
        )?)),
    }
}

/// Sets libtorch's intra-op thread count (the config's `runtime.threads`).
pub fn set_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}
