//! `flowlab compare RUN_DIR…|ROOT`: final metrics of several runs side by side, as a markdown
//! table on stdout (and a CSV on request). Columns: the run, the config settings that differ
//! between the runs compared, then metrics.json's values under metrics.json's names (one sign
//! convention: the file's). Runs whose configs differ only in name and seed are also averaged.
use anyhow::{bail, Context, Result};
use clap::Args;
use flowlab::data::csv::write_records;
use flowlab::experiment::rundir::RunDir;
use flowlab::log::{final_metric_tag, hparams::flatten_config};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CompareArgs {
    /// Finished run folders, or folders holding runs (a sweep's output root).
    #[arg(required = true, value_name = "RUN_DIR|ROOT")]
    runs: Vec<PathBuf>,
    /// Also write the table to this CSV file (full precision, empty where a run lacks a value);
    /// settings run with several seeds go to FILE's stem + "-seeds.csv".
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// Run descriptions that are still worth a column (speed and length); other such entries of
/// metrics.json (threads, counts) are left out.
const RUNTIME_SHOWN: [&str; 3] = ["steps", "steps_per_sec", "train_seconds"];

/// At most this many setting columns in the markdown table (all go to the CSV).
const MAX_SETTINGS: usize = 10;

struct Run {
    name: String,
    settings: BTreeMap<String, Value>,
    metrics: serde_json::Map<String, Value>,
}

impl Run {
    /// What identifies a setting across seeds: the settings without the seed.
    fn setting(&self) -> String {
        let mut s = self.settings.clone();
        s.remove("train.seed");
        serde_json::to_string(&s).unwrap_or_default()
    }

    fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).and_then(Value::as_f64)
    }
}

/// Run folders named directly, and the finished runs inside folders of runs.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            bail!("{}: no such folder", p.display());
        }
        if p.join("config.json").exists() || !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("reading {}", p.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|d| d.join("config.json").exists())
            .collect();
        inside.sort();
        if inside.is_empty() {
            bail!(
                "{}: neither a run folder (no config.json) nor a folder of runs",
                p.display()
            );
        }
        for d in inside {
            match d.join("metrics.json").exists() {
                true => out.push(d),
                false => eprintln!(
                    "note: {} is not finished (no metrics.json); left out",
                    d.display()
                ),
            }
        }
    }
    Ok(out)
}

fn load(run: &Path) -> Result<Run> {
    let cfg = RunDir::open(run)?.read_config()?;
    let path = run.join("metrics.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: no metrics.json (is the run finished?)", run.display()))?;
    let metrics: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    Ok(Run {
        name: cfg.name.clone(),
        settings: flatten_config(&serde_json::to_value(&cfg)?),
        metrics: metrics.as_object().cloned().unwrap_or_default(),
    })
}

/// Settings whose value (or presence) differs between the runs.
fn differing(runs: &[Run]) -> Vec<String> {
    let mut keys: Vec<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            runs.iter()
                .any(|r| r.settings.get(*k) != runs[0].settings.get(*k))
        })
        .cloned()
        .collect()
}

/// The shortest trailing part of each path (by `.` segments) that tells them apart.
fn short_names(paths: &[String]) -> Vec<String> {
    let segs: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
    let tail = |s: &[&str], n: usize| s[s.len().saturating_sub(n)..].join(".");
    segs.iter()
        .map(|s| {
            (1..=s.len())
                .find(|&n| segs.iter().filter(|o| tail(o, n) == tail(s, n)).count() == 1)
                .map_or_else(|| s.join("."), |n| tail(s, n))
        })
        .collect()
}

/// metrics.json keys any run has: results first (sorted), then speed and length.
fn metric_keys(runs: &[Run]) -> Vec<String> {
    let mut results: Vec<String> = runs
        .iter()
        .flat_map(|r| r.metrics.iter())
        .filter(|(k, v)| v.is_number() && final_metric_tag(k).is_some())
        .map(|(k, _)| k.clone())
        .collect();
    results.sort();
    results.dedup();
    results.extend(
        RUNTIME_SHOWN
            .iter()
            .filter(|k| runs.iter().any(|r| r.metric(k).is_some()))
            .map(|k| k.to_string()),
    );
    results
}

/// A value for the markdown table: integers as such, else 4 decimals (1 from 1,000 up).
fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

fn setting_text(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}

pub fn run(args: CompareArgs) -> Result<()> {
    let runs = expand(&args.runs)?
        .iter()
        .map(|r| load(r))
        .collect::<Result<Vec<_>>>()?;
    if runs.is_empty() {
        bail!("no finished runs to compare");
    }
    let settings = differing(&runs);
    let metrics = metric_keys(&runs);
    let shown = &settings[..settings.len().min(MAX_SETTINGS)];
    let mut header = vec!["run".to_string()];
    header.extend(short_names(shown));
    header.extend(metrics.iter().cloned());
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone()];
            row.extend(shown.iter().map(|k| setting_text(r.settings.get(k))));
            row.extend(
                metrics
                    .iter()
                    .map(|k| r.metric(k).map(short).unwrap_or_default()),
            );
            row
        })
        .collect();
    print!("{}", markdown(&header, &rows));
    if settings.len() > shown.len() {
        println!(
            "\n({} more settings differ; the CSV has them all: {})",
            settings.len() - shown.len(),
            settings[shown.len()..].join(", ")
        );
    }
    let groups = seed_groups(&runs);
    let several = groups.iter().any(|g| g.len() > 1);
    if several {
        println!(
            "\nmean ± std over seeds (runs whose configs differ only in name and train.seed):\n"
        );
        print!("{}", seed_markdown(&groups, &metrics));
    }
    if let Some(path) = &args.csv {
        let mut header = vec!["run".to_string()];
        header.extend(settings.iter().cloned());
        header.extend(metrics.iter().cloned());
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                let mut row = vec![r.name.clone()];
                row.extend(settings.iter().map(|k| setting_text(r.settings.get(k))));
                row.extend(
                    metrics
                        .iter()
                        .map(|k| r.metric(k).map(|v| v.to_string()).unwrap_or_default()),
                );
                row
            })
            .collect();
        write_records(path, Some(&header), &rows)?;
        eprintln!("wrote {}", path.display());
        if several {
            let seeds = seeds_path(path);
            write_seed_csv(&seeds, &groups, &metrics)?;
            eprintln!("wrote {}", seeds.display());
        }
    }
    Ok(())
}

fn seeds_path(csv: &Path) -> PathBuf {
    let stem = csv
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    csv.with_file_name(format!("{stem}-seeds.csv"))
}

/// Runs grouped by setting (config without name and seed), in first-seen order.
fn seed_groups(runs: &[Run]) -> Vec<Vec<&Run>> {
    let mut groups: Vec<(String, Vec<&Run>)> = Vec::new();
    for r in runs {
        let s = r.setting();
        match groups.iter_mut().find(|(k, _)| *k == s) {
            Some((_, g)) => g.push(r),
            None => groups.push((s, vec![r])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Mean and sample standard deviation (`None` for one value).
fn mean_sd(v: &[f64]) -> Option<(f64, Option<f64>)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, sd))
}

fn values(g: &[&Run], key: &str) -> Vec<f64> {
    g.iter().filter_map(|r| r.metric(key)).collect()
}

fn seed_markdown(groups: &[Vec<&Run>], metrics: &[String]) -> String {
    let mut header = vec!["setting (first run)".to_string(), "seeds".to_string()];
    header.extend(metrics.iter().cloned());
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![g[0].name.clone(), g.len().to_string()];
            row.extend(metrics.iter().map(|k| match mean_sd(&values(g, k)) {
                None => String::new(),
                Some((m, None)) => short(m),
                Some((m, Some(sd))) => format!("{} ± {}", short(m), short(sd)),
            }));
            row
        })
        .collect();
    markdown(&header, &rows)
}

fn write_seed_csv(path: &Path, groups: &[Vec<&Run>], metrics: &[String]) -> Result<()> {
    let mut header = vec!["setting (first run)".to_string(), "seeds".to_string()];
    for k in metrics {
        header.extend([format!("{k}_mean"), format!("{k}_sd")]);
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![g[0].name.clone(), g.len().to_string()];
            for k in metrics {
                let (m, sd) = match mean_sd(&values(g, k)) {
                    None => (String::new(), String::new()),
                    Some((m, sd)) => (m.to_string(), sd.map(|s| s.to_string()).unwrap_or_default()),
                };
                row.extend([m, sd]);
            }
            row
        })
        .collect();
    write_records(path, Some(&header), &rows)
}
