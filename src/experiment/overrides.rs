//! `--set PATH=VALUE` overrides and sweep expansion: both edit a config as JSON by field path
//! and then parse it like a file, so overridden configs get the same validation and messages.
//!
//! A path is dot-separated with optional indices: `train.seed`, `model.flow_fit.flow[0].planar.length`
//! (or `flow.0.planar…`). VALUE is read as JSON when it parses (`32`, `0.5`, `"cpu"`, `[1, 2]`,
//! `{"planar": {"length": 4}}`), else as a string (`cpu`). Missing object fields are created,
//! so optional fields (`train.grad_clip`) can be set.
use super::config::ExperimentConfig;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

fn tokens(path: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(name.to_string());
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let i = idx.trim_end_matches(']');
            if i.parse::<usize>().is_err() || !idx.ends_with(']') {
                bail!("`{path}`: `[{idx}` is not an index like [0]");
            }
            out.push(i.to_string());
        }
    }
    if out.is_empty() {
        bail!("empty field path");
    }
    Ok(out)
}

/// Sets `path` in `root` to `value`.
pub fn set_value(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let toks = tokens(path)?;
    let mut node = root;
    for (i, t) in toks.iter().enumerate() {
        let last = i + 1 == toks.len();
        node = match node {
            Value::Array(items) => {
                let idx: usize = t
                    .parse()
                    .with_context(|| format!("`{path}`: `{t}` must be an index into a list"))?;
                let len = items.len();
                items.get_mut(idx).with_context(|| {
                    format!("`{path}`: index {idx} is beyond the list's {len} items")
                })?
            }
            Value::Object(map) => map.entry(t.clone()).or_insert(if last {
                Value::Null
            } else {
                Value::Object(Default::default())
            }),
            other => bail!("`{path}`: `{t}` is inside {other}, which has no fields"),
        };
    }
    *node = value;
    Ok(())
}

/// Reads VALUE as JSON if it parses, else as a string.
pub fn parse_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// Applies `PATH=VALUE` assignments to a config's JSON and parses the result. Errors name the
/// overrides; positions ("at line 1 column 109") are dropped, since they point into the
/// re-serialized config, not a file.
pub fn apply(base: &Value, sets: &[String]) -> Result<ExperimentConfig> {
    let mut v = base.clone();
    for s in sets {
        let (path, raw) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected PATH=VALUE"))?;
        set_value(&mut v, path.trim(), parse_value(raw.trim()))
            .with_context(|| format!("--set {s:?}"))?;
    }
    ExperimentConfig::parse(&v.to_string()).map_err(|e| {
        let msg = format!("{e:#}");
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        match sets.is_empty() {
            true => anyhow::anyhow!(msg),
            false => anyhow::anyhow!("after --set {}: {msg}", sets.join(" --set ")),
        }
    })
}

/// A config file with `--set` overrides: without overrides (or when the file itself is
/// invalid) errors carry the file's own line and column.
pub fn load(path: &Path, sets: &[String]) -> Result<ExperimentConfig> {
    let value = read_json(path)?;
    let context = || format!("invalid config {}", path.display());
    let text = read_text(path)?;
    match ExperimentConfig::parse(&text) {
        Ok(cfg) if sets.is_empty() => Ok(cfg),
        Err(e) if sets.is_empty() => Err(e.context(context())),
        file => apply(&value, sets).map_err(|e| match file {
            // The file is wrong on its own: its line and column say where.
            Err(f) => f.context(context()),
            Ok(_) => e.context(context()),
        }),
    }
}

/// A config file's text, without a UTF-8 byte-order mark.
fn read_text(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

/// A config file as JSON (errors name the file).
pub fn read_json(path: &Path) -> Result<Value> {
    let shown = path.display();
    if !path.exists() && shown.to_string().contains('=') {
        anyhow::bail!("no config file {shown}: to change a field, pass `--set {shown}`");
    }
    if path.is_dir() {
        let hint = if path.join("config.json").is_file() {
            format!(" (a run folder: continue it with `flowlab run {shown}/config.json --resume --out <its parent>`, or evaluate it with `flowlab eval {shown}`)")
        } else {
            String::new()
        };
        anyhow::bail!("{shown} is a folder, not a config file{hint}");
    }
    let text = read_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
}
