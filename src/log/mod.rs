//! Where a run's numbers go: TensorBoard events plus a plain `scalars.csv`, and the progress line.
pub mod hparams;
pub mod progress;
pub mod tensorboard;

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use tensorboard::EventWriter;

/// Writes each scalar to the event file and to `scalars.csv` (`step,tag,value`, the value printed
/// as the exact float32 TensorBoard stores). `flush` makes everything so far durable.
pub struct ScalarLog {
    pub events: EventWriter,
    csv: std::io::BufWriter<std::fs::File>,
}

impl ScalarLog {
    pub fn open(dir: &Path, csv_path: &Path) -> Result<Self> {
        let events = EventWriter::create(dir)?;
        let new = !csv_path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(csv_path)
            .with_context(|| format!("opening {}", csv_path.display()))?;
        let mut csv = std::io::BufWriter::new(file);
        if new {
            writeln!(csv, "step,tag,value")?;
        }
        Ok(ScalarLog { events, csv })
    }

    pub fn scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        let v = value as f32;
        self.events.add_scalar(tag, v, step)?;
        writeln!(self.csv, "{step},{tag},{v}").context("writing scalars.csv")
    }

    pub fn flush(&mut self) -> Result<()> {
        self.events.flush()?;
        self.csv.flush().context("flushing scalars.csv")
    }
}

/// metrics.json entries that describe the run (speed, counts, settings) rather than results:
/// kept out of TensorBoard's scalars and the HParams metrics.
const RUNTIME_METRICS: [&str; 8] = [
    "steps",
    "steps_trained_this_session",
    "steps_per_sec",
    "train_seconds",
    "threads",
    "best_step",
    "eval_samples",
    "imputations_clamped",
];

/// The TensorBoard tag of a final result in metrics.json: held-out results under `test/`
/// (`test_nll` → `test/nll`, beside `val/`), others under `final/` (`kl` → `final/kl`);
/// `None` for run descriptions (steps, speed, threads).
pub fn final_metric_tag(name: &str) -> Option<String> {
    if RUNTIME_METRICS.contains(&name) {
        None
    } else if let Some(rest) = name.strip_prefix("test_") {
        Some(format!("test/{rest}"))
    } else {
        Some(format!("final/{name}"))
    }
}

/// One tag's `(step, value)` points.
pub type Curve = (String, Vec<(f64, f64)>);

/// A run's `scalars.csv` grouped by tag, in the order tags first appear: `(tag, [(step, value)])`.
/// Lines that do not parse (a run cut off mid-line) are skipped.
pub fn read_scalars_csv(run: &Path) -> Result<Vec<Curve>> {
    let path = run.join("scalars.csv");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read scalars.csv", run.display()))?;
    let mut out: Vec<Curve> = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let [step, tag, value] = f[..] else { continue };
        let (Ok(x), Ok(y)) = (step.parse::<f64>(), value.parse::<f64>()) else {
            continue;
        };
        match out.iter_mut().find(|(t, _)| t == tag) {
            Some((_, s)) => s.push((x, y)),
            None => out.push((tag.to_string(), vec![(x, y)])),
        }
    }
    Ok(out)
}
