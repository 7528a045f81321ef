//! `flowlab plot curves`: scalar tags of several runs on one figure, with TensorBoard's smoothing
//! and dashed reference lines.
use anyhow::{bail, Result};
use flowlab::plot::Curves;
use std::path::PathBuf;

/// TensorBoard's smoothing: an exponential moving average, debiased for its zero start.
fn smoothed(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let (mut ema, mut norm) = (0.0, 0.0);
    points
        .iter()
        .map(|&(x, y)| {
            if !y.is_finite() {
                return (x, y);
            }
            ema = weight * ema + (1.0 - weight) * y;
            norm = weight * norm + (1.0 - weight);
            (x, ema / norm)
        })
        .collect()
}

/// `VALUE=LABEL` of `--hline`.
pub(super) fn parse_hline(s: &str) -> Result<(f64, String), String> {
    let (v, label) = s
        .split_once('=')
        .ok_or_else(|| format!("expected VALUE=LABEL, got `{s}`"))?;
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a number (in `{s}`)"))?;
    if !v.is_finite() {
        return Err(format!("`{s}`: the value must be finite"));
    }
    Ok((v, label.trim().to_string()))
}

/// `plot curves`: tags of several runs on one figure. A run lacking a tag is skipped with a
/// note; a tag no run has is an error listing the tags that exist.
pub(super) fn curves(
    runs: &[PathBuf],
    tags: &[String],
    labels: &[String],
    smooth: f64,
    log_y: bool,
) -> Result<Curves> {
    anyhow::ensure!(
        (0.0..1.0).contains(&smooth),
        "--smooth must be in [0, 1), got {smooth}"
    );
    anyhow::ensure!(
        labels.is_empty() || labels.len() == runs.len(),
        "{} --label given for {} runs: give one per run, in order, or none",
        labels.len(),
        runs.len()
    );
    let y_label = if tags.len() == 1 {
        tags[0].as_str()
    } else {
        "value"
    };
    let title = if smooth > 0.0 {
        format!("{} (smoothing {smooth})", tags.join(", "))
    } else {
        tags.join(", ")
    };
    let mut fig = Curves::new(&title, "step", y_label);
    fig.log_y = log_y;
    let (mut seen, mut found) = (
        std::collections::BTreeSet::new(),
        std::collections::HashSet::new(),
    );
    for (i, run) in runs.iter().enumerate() {
        let scalars = flowlab::log::read_scalars_csv(run)?;
        let name = match labels.get(i) {
            Some(l) => l.clone(),
            None => run.file_name().map_or_else(
                || run.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        };
        for tag in tags {
            match scalars.iter().find(|(t, _)| t == tag) {
                Some((_, points)) => {
                    let legend = if tags.len() == 1 {
                        name.clone()
                    } else {
                        format!("{name}: {tag}")
                    };
                    let points = if smooth > 0.0 {
                        smoothed(points, smooth)
                    } else {
                        points.clone()
                    };
                    fig = fig.with_series(&legend, points);
                    found.insert(tag);
                }
                None => eprintln!("note: {} has no `{tag}`; skipped", run.display()),
            }
        }
        seen.extend(scalars.into_iter().map(|(t, _)| t));
    }
    for tag in tags {
        if !found.contains(tag) {
            bail!(
                "no run has the tag `{tag}`; the runs' tags are: {}",
                seen.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(fig)
}
