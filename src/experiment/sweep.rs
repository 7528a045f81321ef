//! Sweep files: a base config and the fields to vary, expanded into named, resolved configs.
//!
//! ```json
//! { "base": "experiments/planar-u1-k8.json",
//!   "out": "runs/sweep-planar",
//!   "grid": { "model.flow_fit.flow[0].planar.length": [2, 8, 32], "train.seed": [0, 1, 2] },
//!   "random": { "samples": 4, "seed": 0,
//!               "fields": { "train.optimizer.lr": { "log_uniform": [1e-4, 1e-2] } } },
//!   "threads_per_job": 1 }
//! ```
//!
//! `base` is found relative to the working folder, else relative to the sweep file.
//! Every grid point is combined with every random draw (either part may be absent). Random fields
//! take `{"uniform": [a, b]}`, `{"log_uniform": [a, b]}` or `{"choice": [v, …]}`, drawn from a
//! splitmix stream seeded by `random.seed`, so a sweep file always expands to the same runs.
//! Run names are the base name plus the varied values (`planar-u1-k8-length8-seed1`).
use super::config::ExperimentConfig;
use super::overrides::{read_json, set_value};
use crate::data::toy::Rng;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    pub base: PathBuf,
    #[serde(default)]
    pub out: Option<PathBuf>,
    #[serde(default)]
    pub grid: Map<String, Value>,
    #[serde(default)]
    pub random: Option<RandomPart>,
    #[serde(default = "one")]
    pub threads_per_job: i32,
}

fn one() -> i32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPart {
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    pub fields: Map<String, Value>,
}

/// One run of a sweep: its name and resolved config.
pub struct SweepRun {
    pub name: String,
    pub config: ExperimentConfig,
}

fn short(path: &str, v: &Value) -> String {
    let key = path
        .rsplit(['.', '['])
        .find(|t| !t.trim_end_matches(']').chars().all(|c| c.is_ascii_digit()))
        .unwrap_or(path);
    let val = match v {
        Value::Number(n) if n.is_f64() => format!("{:.3e}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let raw = format!("{key}{val}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn draw(spec: &Value, rng: &mut Rng, field: &str) -> Result<Value> {
    let obj = spec.as_object().filter(|o| o.len() == 1).with_context(|| {
        format!("random field `{field}`: expected one of uniform, log_uniform, choice")
    })?;
    let (kind, arg) = obj.iter().next().unwrap_or_else(|| unreachable!());
    let pair = || -> Result<(f64, f64)> {
        let a = arg
            .as_array()
            .filter(|a| a.len() == 2)
            .with_context(|| format!("random field `{field}`: {kind} needs [low, high]"))?;
        let (lo, hi) = (
            a[0].as_f64().unwrap_or(f64::NAN),
            a[1].as_f64().unwrap_or(f64::NAN),
        );
        ensure!(
            lo < hi,
            "random field `{field}`: need low < high, got [{lo}, {hi}]"
        );
        Ok((lo, hi))
    };
    Ok(match kind.as_str() {
        "uniform" => {
            let (lo, hi) = pair()?;
            Value::from(lo + (hi - lo) * rng.uniform())
        }
        "log_uniform" => {
            let (lo, hi) = pair()?;
            ensure!(
                lo > 0.0,
                "random field `{field}`: log_uniform needs positive bounds"
            );
            Value::from((lo.ln() + (hi.ln() - lo.ln()) * rng.uniform()).exp())
        }
        "choice" => {
            let c = arg.as_array().filter(|a| !a.is_empty()).with_context(|| {
                format!("random field `{field}`: choice needs a non-empty list")
            })?;
            c[rng.below(c.len())].clone()
        }
        other => bail!(
            "random field `{field}`: unknown distribution `{other}` (uniform, log_uniform, choice)"
        ),
    })
}

impl SweepFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sweep file {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let mut file: SweepFile = serde_path_to_error::deserialize(de).map_err(|e| {
            anyhow::anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner())
        })?;
        // `base` relative to the working folder, else to the sweep file's folder.
        if !file.base.exists() {
            if let Some(near) = path
                .parent()
                .map(|d| d.join(&file.base))
                .filter(|p| p.exists())
            {
                file.base = near;
            }
        }
        Ok(file)
    }

    /// The runs, in a fixed order; errors name the field whose value a config rejects.
    pub fn expand(&self) -> Result<Vec<SweepRun>> {
        ensure!(
            self.threads_per_job >= 1,
            "threads_per_job must be at least 1"
        );
        let base = read_json(&self.base)?;
        let base_name = base
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("run")
            .to_string();
        // Grid points: the cartesian product, first field slowest.
        let mut points: Vec<Vec<(String, Value)>> = vec![vec![]];
        for (field, values) in &self.grid {
            let values = values
                .as_array()
                .filter(|a| !a.is_empty())
                .with_context(|| {
                    format!("grid field `{field}`: expected a non-empty list of values")
                })?;
            points = points
                .into_iter()
                .flat_map(|p| {
                    values
                        .iter()
                        .map(move |v| [p.clone(), vec![(field.clone(), v.clone())]].concat())
                })
                .collect();
        }
        let mut draws: Vec<Vec<(String, Value)>> = vec![vec![]];
        if let Some(r) = &self.random {
            ensure!(r.samples >= 1, "random.samples must be at least 1");
            let mut rng = Rng::new(r.seed);
            draws = (0..r.samples)
                .map(|_| {
                    r.fields
                        .iter()
                        .map(|(f, spec)| Ok((f.clone(), draw(spec, &mut rng, f)?)))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?;
        }
        let mut runs = Vec::new();
        for p in &points {
            for (k, d) in draws.iter().enumerate() {
                let mut v = base.clone();
                let mut name = base_name.clone();
                for (field, value) in p.iter().chain(d) {
                    set_value(&mut v, field, value.clone())?;
                    name = format!("{name}-{}", short(field, value));
                }
                if self.random.is_some() && d.is_empty() {
                    name = format!("{name}-r{k}");
                }
                set_value(&mut v, "name", Value::from(name.clone()))?;
                set_value(&mut v, "runtime.threads", Value::from(self.threads_per_job))?;
                let config = ExperimentConfig::parse(&v.to_string())
                    .with_context(|| format!("sweep run {name}"))?;
                runs.push(SweepRun { name, config });
            }
        }
        let mut names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        names.dedup();
        ensure!(
            names.len() == runs.len(),
            "two sweep runs got the same name; vary fields whose values differ"
        );
        Ok(runs)
    }
}
