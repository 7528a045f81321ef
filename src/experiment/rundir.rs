//! The run folder and everything that reads or writes it. Nothing else builds these paths.
//!
//! ```text
//! runs/<name>/
//!   config.json            the resolved config
//!   events.out.tfevents.*  TensorBoard scalars, images, histograms, text
//!   scalars.csv            the same scalars as text: step,tag,value
//!   model.safetensors      weights (atomic; every N steps and at the end)
//!   optimizer.safetensors  Adam moments and step count, for --resume
//!   metrics.json           final metrics
//!   figures/*.png
//! ```
//! Every file is written to a temporary name and renamed into place, so a crash never leaves a
//! half-written file behind and never damages what was there.
use super::config::ExperimentConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

pub struct RunDir {
    path: PathBuf,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let res = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("writing {}", path.display()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Saves named tensors as safetensors, atomically. Tensors are moved to the CPU first.
pub fn save_tensors_atomic(path: &Path, named: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    let tmp = tmp_path(path);
    let res = Tensor::write_safetensors(&cpu, &tmp)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(anyhow::Error::from)
        })
        .and_then(|_| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("writing {}", path.display()))
}

/// Reads named tensors from a weight file (see [`super::weights::read_tensors`]).
pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    super::weights::read_tensors(path)
}

/// What `load_weights` did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Model variables the file did not have (kept at their initial values).
    pub missing: Vec<String>,
    /// Tensors in the file the model has no variable for.
    pub unused: Vec<String>,
    /// With `--map`: the file's names no rule matched.
    pub unmatched: Vec<String>,
}

/// Copies tensors into `vs` by name. Shape mismatches are errors naming the tensor; with
/// `strict`, missing variables are errors too.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path, strict: bool) -> Result<LoadReport> {
    copy_weights(vs, &load_tensors(path)?, path, strict, false)
}

/// `--init-from FILE --map …`: the file's tensors renamed (and stacked) by `rules`, copied in
/// by name; a tensor differing from its variable only by size-1 dimensions is reshaped.
/// Names no rule matched are reported.
pub fn init_weights(
    vs: &mut nn::VarStore,
    path: &Path,
    rules: &[super::weights::MapRule],
) -> Result<LoadReport> {
    let mapped = super::weights::map_names(load_tensors(path)?, rules)
        .with_context(|| format!("mapping the names of {}", path.display()))?;
    let mut report = copy_weights(vs, &mapped.tensors, path, false, true)?;
    report.unmatched = mapped.unmatched;
    Ok(report)
}

fn copy_weights(
    vs: &mut nn::VarStore,
    named: &[(String, Tensor)],
    path: &Path,
    strict: bool,
    reshape_unit_dims: bool,
) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        match named.iter().find(|(n, _)| *n == name) {
            Some((_, src)) => {
                let unit = reshape_unit_dims
                    && super::weights::same_up_to_unit_dims(&src.size(), &var.size());
                let src = if unit {
                    src.reshape(var.size())
                } else {
                    src.shallow_clone()
                };
                if src.size() != var.size() {
                    bail!(
                        "{}: tensor `{name}` has shape {:?}, the model expects {:?} (a checkpoint of another architecture?)",
                        path.display(),
                        src.size(),
                        var.size()
                    );
                }
                let src = src.to_device(var.device()).to_kind(var.kind());
                tch::no_grad(|| var.copy_(&src));
                report.loaded.push(name);
            }
            None => report.missing.push(name),
        }
    }
    report.unused = named
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !report.loaded.contains(n))
        .collect();
    if report.loaded.is_empty() && !vs.variables().is_empty() {
        bail!(
            "{}: none of its tensors {:?} names a variable of this model (a checkpoint of another model?)",
            path.display(),
            report.unused
        );
    }
    if strict && !report.missing.is_empty() {
        bail!(
            "{}: missing tensors {:?} (a checkpoint of another model?)",
            path.display(),
            report.missing
        );
    }
    Ok(report)
}

impl RunDir {
    /// Creates `root/name`; refuses to touch an existing run folder.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        let path = root.join(name);
        if path.exists() {
            bail!("run folder {} already exists: pass --resume to continue it, or give this run another name (`--set name=NEW`) or output root (`--out`)", path.display());
        }
        std::fs::create_dir_all(path.join("figures"))
            .with_context(|| format!("creating run folder {}", path.display()))?;
        Ok(RunDir { path })
    }

    /// Opens an existing run folder (it must hold a config.json).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("{} does not exist", path.display());
        }
        if path.is_file() {
            let hint = match path.file_name().and_then(|n| n.to_str()) {
                Some("config.json" | "metrics.json" | "model.safetensors") => path
                    .parent()
                    .map(|p| format!(" (did you mean its folder, {}?)", p.display()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            bail!("{} is a file, not a run folder{hint}", path.display());
        }
        if !path.join("config.json").is_file() {
            bail!("{} is not a run folder (no config.json)", path.display());
        }
        std::fs::create_dir_all(path.join("figures"))
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn model_path(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }
    pub fn optimizer_path(&self) -> PathBuf {
        self.path.join("optimizer.safetensors")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.json")
    }
    /// Best weights so far under early stopping.
    pub fn best_path(&self) -> PathBuf {
        self.path.join("best.safetensors")
    }
    /// Early-stopping state: best value and step, checks without improvement.
    pub fn early_stopping_path(&self) -> PathBuf {
        self.path.join("early_stopping.json")
    }
    pub fn scalars_path(&self) -> PathBuf {
        self.path.join("scalars.csv")
    }
    /// `figures/<stem>.<png|svg>`.
    pub fn figure_path(&self, stem: &str, format: crate::plot::Format) -> PathBuf {
        crate::plot::with_extension(&self.path.join("figures").join(stem), format)
    }

    pub fn write_config(&self, cfg: &ExperimentConfig) -> Result<()> {
        write_atomic(&self.config_path(), cfg.to_pretty_json().as_bytes())
    }

    pub fn read_config(&self) -> Result<ExperimentConfig> {
        ExperimentConfig::load(&self.config_path())
    }

    /// The model's variables, sorted by name.
    pub fn save_weights(path: &Path, vs: &nn::VarStore) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        save_tensors_atomic(path, &named)
    }

    /// Weights and optimizer state, each file atomically.
    pub fn save_checkpoint(
        &self,
        vs: &nn::VarStore,
        optimizer_state: &[(String, Tensor)],
    ) -> Result<()> {
        save_tensors_atomic(&self.optimizer_path(), optimizer_state)?;
        Self::save_weights(&self.model_path(), vs)
    }

    pub fn write_metrics(&self, metrics: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(metrics)?;
        write_atomic(&self.metrics_path(), text.as_bytes())
    }
}
