//! Early stopping on the first validation metric, as a value that saves and restores itself so a
//! resumed run continues the same count.
use super::rundir;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The state of early stopping: the best value seen (stored as "lower is better": an ELBO is
/// negated, `sign` = −1), its step, and how many checks have passed since.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EarlyStopping {
    /// The TensorBoard tag followed, e.g. `val/elbo`.
    pub metric: String,
    pub best: f64,
    /// +1 when lower is better, −1 when higher is.
    pub sign: f64,
    pub best_step: i64,
    pub since: i64,
}

/// What one check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A new best: keep these weights.
    Improved,
    /// No improvement, still patient.
    Waiting,
    /// No improvement for `patience` checks.
    Stop,
}

impl EarlyStopping {
    /// No check yet.
    pub fn new(metric: &str, higher_is_better: bool, step: i64) -> Self {
        EarlyStopping {
            metric: metric.to_string(),
            best: f64::INFINITY,
            sign: if higher_is_better { -1.0 } else { 1.0 },
            best_step: step,
            since: 0,
        }
    }

    /// The state saved at `path` by an earlier session of the run.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        rundir::write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }

    /// Records `value` of the metric at `step`; a check without improvement counts towards
    /// `patience` only when `counting` (false during a warm-up that does not count).
    pub fn check(&mut self, value: f64, step: i64, patience: i64, counting: bool) -> Check {
        if self.sign * value < self.best {
            self.best = self.sign * value;
            self.best_step = step;
            self.since = 0;
            return Check::Improved;
        }
        if !counting {
            return Check::Waiting;
        }
        self.since += 1;
        if self.since >= patience {
            Check::Stop
        } else {
            Check::Waiting
        }
    }

    /// The best value in the metric's own sign.
    pub fn best_value(&self) -> f64 {
        self.sign * self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_counts_only_checks_that_count() {
        let mut es = EarlyStopping::new("val/elbo", true, 0);
        assert_eq!(es.check(-100.0, 1, 2, false), Check::Improved);
        // During warm-up a worse value neither stops nor uses up patience...
        for step in 2..10 {
            assert_eq!(es.check(-120.0, step, 2, false), Check::Waiting);
        }
        assert_eq!(es.since, 0);
        // ...but a better one is still kept.
        assert_eq!(es.check(-90.0, 10, 2, false), Check::Improved);
        assert_eq!(es.best_step, 10);
        // After warm-up: two checks without improvement stop.
        assert_eq!(es.check(-95.0, 11, 2, true), Check::Waiting);
        assert_eq!(es.check(-95.0, 12, 2, true), Check::Stop);
        assert_eq!(es.best_value(), -90.0);
    }
}
