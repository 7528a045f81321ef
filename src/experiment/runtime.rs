//! Where and how a run computes (`runtime` in a config): device, intra-op threads, precision.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The floating-point precision of a model's weights and computations.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// float32, the default: what GPUs are fast at and what the papers' numbers use.
    #[default]
    F32,
    /// float64: log-densities stay finite further from the data (float32 overflows where a
    /// squared base coordinate passes 3.4e38), at about twice the time on CPU.
    F64,
}

impl Dtype {
    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::F32 => tch::Kind::Float,
            Dtype::F64 => tch::Kind::Double,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// libtorch intra-op threads. 1 by default: on small models more threads are slower
    /// (see docs/development.md, "Threads").
    pub threads: i32,
    pub device: DeviceChoice,
    /// `"f32"` (default) or `"f64"`: the weights' and computations' precision.
    pub dtype: Dtype,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            threads: 1,
            device: DeviceChoice::Auto,
            dtype: Dtype::F32,
        }
    }
}

/// Resolves the device choice; `cuda` without a GPU is an error, not a silent fallback.
pub fn resolve_device(choice: DeviceChoice) -> Result<tch::Device> {
    match choice {
        DeviceChoice::Cpu => Ok(tch::Device::Cpu),
        DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                bail!("device `cuda` was requested but no CUDA device is available (use `--device cpu` or `auto`)")
            }
        }
    }
}
