//! Where a run's numbers go: TensorBoard events plus a plain `scalars.csv`, and the progress line.
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
