//! `flowlab check`: the three bijector checks on the flow a config builds (at its init) or on a
//! trained run's flow, layer by layer and as a whole.
use anyhow::{bail, Result};
use clap::Args;
use flowlab::bijector::checks;
use flowlab::bijector::Bijector;
use flowlab::distribution::{Distribution, StandardNormal};
use flowlab::experiment::config::ExperimentConfig;
use flowlab::grid::Grid2d;
use std::path::PathBuf;
use tch::{Device, Kind};

#[derive(Args)]
pub struct CheckArgs {
    /// A config file (checks the flow at initialization) or a run folder (the trained flow).
    pub config_or_run: PathBuf,
    /// Samples for the round trip and the autograd log-det.
    #[arg(long, default_value_t = 256)]
    pub samples: i64,
    /// Tolerance for the round trip and log-det checks (float64).
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Tolerance for |∫q − 1|.
    #[arg(long, default_value_t = 1e-3)]
    pub integral_tol: f64,
    /// Grid cells per axis for the integral.
    #[arg(long, default_value_t = 1200)]
    pub grid: usize,
}

pub fn run(args: CheckArgs) -> Result<()> {
    let mut model = if args.config_or_run.is_dir() {
        super::load_run(&args.config_or_run, None)?.1
    } else {
        let cfg = ExperimentConfig::load(&args.config_or_run)?;
        tch::manual_seed(cfg.train.seed as i64);
        flowlab::experiment::build_model(&cfg.model, Device::Cpu)?
    };
    model.var_store_mut().double();
    let Some(view) = model.flow_view() else {
        bail!("this model has no flow to check (flow_fit and density models do)")
    };
    let (chain, names) = view.flow();
    tch::manual_seed(0);
    let dim = view.data_dim();
    let x = tch::Tensor::randn([args.samples, dim], (Kind::Double, Device::Cpu));
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>12}  result",
        "layer", "round trip", "ld fwd+inv", "ld−autograd", "∫q − 1"
    );
    let mut failed = 0;
    let mut report = |label: &str, b: &dyn Bijector| -> Result<()> {
        let rt = checks::round_trip(b, &x, None)?;
        let ld = checks::log_det_error(b, &x, None)?;
        let integral = if dim == 2 {
            let grid = integral_grid(b, args.grid)?;
            Some(checks::density_integral(b, &grid)?)
        } else {
            None
        };
        let rep = checks::CheckReport {
            round_trip: rt,
            log_det_error: ld,
            integral,
        };
        let ok = rep.passes(args.tol, args.integral_tol);
        failed += usize::from(!ok);
        println!(
            "{:<22} {:>14.3e} {:>14.3e} {:>14.3e} {:>12}  {}",
            label,
            rt.max_abs_error,
            rt.max_log_det_error,
            ld,
            integral
                .map(|i| format!("{:.2e}", i - 1.0))
                .unwrap_or_else(|| "n/a".into()),
            if ok { "ok" } else { "FAIL" }
        );
        Ok(())
    };
    for (i, layer) in chain.layers().into_iter().enumerate() {
        report(names.get(i).map(String::as_str).unwrap_or("?"), layer)?;
    }
    report("whole flow", &chain)?;
    if failed > 0 {
        bail!("{failed} check row(s) failed");
    }
    Ok(())
}

/// A grid adapted to the pushforward of N(0, I) through `b`.
fn integral_grid(b: &dyn Bijector, cells: usize) -> Result<Grid2d> {
    let base = StandardNormal::new(vec![2], Kind::Double, Device::Cpu);
    let z = base.sample(100_000)?;
    let (y, _) = tch::no_grad(|| b.forward(&z, None))?;
    Ok(Grid2d::from_samples(&y, cells))
}
