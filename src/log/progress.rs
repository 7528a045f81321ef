//! Progress display: a redrawn bar on a terminal, plain lines otherwise (logs, CI, pipes).
use std::io::{IsTerminal, Write};

pub struct Progress {
    total: i64,
    tty: bool,
}

impl Progress {
    pub fn new(total: i64) -> Self {
        Progress {
            total,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `label value` (the ELBO, the NLL or the loss) beside the step and the speed.
    pub fn update(&mut self, step: i64, label: &str, value: f64, steps_per_sec: f64) {
        let mut err = std::io::stderr();
        if self.tty {
            let width = 30;
            let filled = ((step as f64 / self.total.max(1) as f64) * width as f64) as usize;
            let bar: String =
                "#".repeat(filled.min(width)) + &"-".repeat(width - filled.min(width));
            let _ = write!(
                err,
                "\r[{bar}] {step}/{} {label} {value:.4} {steps_per_sec:.0} steps/s ",
                self.total
            );
            let _ = err.flush();
        } else {
            let _ = writeln!(
                err,
                "step {step}/{} {label} {value:.4} {steps_per_sec:.0} steps/s",
                self.total
            );
        }
    }

    pub fn finish(&mut self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}
