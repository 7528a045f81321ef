//! From a config to a finished run folder: configs, the trainer, the run folder, the optimizer.
pub mod config;
pub mod early_stopping;
pub mod optim;
pub mod overrides;
pub mod rundir;
pub mod runtime;
pub mod sweep;
pub mod trainer;
pub mod weights;

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

/// Asks glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// kernel. A training step allocates and frees the same few-megabyte activations every time;
/// by default glibc serves them with fresh mappings or trims them away, and each reuse then
/// page-faults the memory back in (about a tenth of a multi-scale RealNVP step on MNIST was
/// page faults and page clearing; with this, 3–5% more steps/s). A process keeps its peak
/// memory instead. Left alone when the user sets any `MALLOC_*_` tunable.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::vars_os().any(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("MALLOC_") && k.ends_with('_'))
        });
        if tuned {
            return;
        }
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes allocator tunables; called before any worker thread.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum on 64-bit
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_TOP_PAD, 64 << 20);
        }
    }
}
