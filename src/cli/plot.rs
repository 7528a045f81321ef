//! `flowlab plot`: Rezende & Mohamed (2015)'s Fig. 1 (a standard normal through one planar or radial layer),
//! target densities, and a run's figures regenerated from its checkpoint.
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use flowlab::bijector::Bijector;
use flowlab::distribution::{Distribution, StandardNormal};
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::RunDir;
use flowlab::flow::planar::PlanarFlow;
use flowlab::flow::radial::RadialFlow;
use flowlab::plot;
use flowlab::target::Target;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Subcommand)]
pub enum PlotCommand {
    /// Density of N(0, I) in 2-D, optionally through one planar or radial layer (Rezende & Mohamed 2015, Fig. 1).
    Density {
        /// Planar parameters "u1,u2;w1,w2;b" (û is constrained so wᵀû ≥ −1).
        #[arg(long, conflicts_with = "radial")]
        planar: Option<String>,
        /// Radial parameters "z01,z02;alpha;beta" (alpha > 0, beta ≥ −alpha).
        #[arg(long)]
        radial: Option<String>,
        /// Half-width of the square window.
        #[arg(long, default_value_t = 3.0)]
        window: f64,
        /// Pixels per side.
        #[arg(long, default_value_t = 400)]
        size: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Rezende & Mohamed (2015)'s Fig. 1 as one image: N(0, I), then through a planar layer (u = (1, 0),
    /// w = (5, 0), b = 0), then through a radial layer (z0 = (0.5, 0), α = 0.5, β = 1).
    Fig1 {
        #[arg(long)]
        out: PathBuf,
    },
    /// The unnormalized density exp(−U) of a target (U1–U4) on [−4, 4]².
    Target {
        name: String,
        #[arg(long, default_value_t = 400)]
        size: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Regenerate a run's figures/ from its checkpoint.
    Run { run_dir: PathBuf },
    /// Curves of one scalar tag for several runs on one PNG (from each run's scalars.csv);
    /// run i is numbered i + 1 in the legend (the numbering is printed).
    Curves {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, default_value = "train/loss")]
        tag: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// A VAE's latent-space figures from its checkpoint (posterior-sample grid, latent sweep, reconstructions, prior
    /// samples, 2-D code scatter) into the run's figures/; options override the config's.
    Latent {
        run_dir: PathBuf,
        /// Test digit of the posterior grid and the sweep.
        #[arg(long)]
        digit: Option<i64>,
        /// Latent dimensions to sweep, e.g. "0,1,2".
        #[arg(long)]
        dims: Option<String>,
        /// The sweep adds linspace(−range, range, steps) to each dimension.
        #[arg(long)]
        range: Option<f64>,
        #[arg(long)]
        steps: Option<i64>,
    },
}

fn numbers(s: &str, what: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .with_context(|| format!("{what}: `{p}` is not a number"))
        })
        .collect()
}

fn parse_layer(planar: Option<&str>, radial: Option<&str>) -> Result<Option<Box<dyn Bijector>>> {
    if let Some(spec) = planar {
        let parts: Vec<&str> = spec.split(';').collect();
        if parts.len() != 3 {
            bail!("--planar: expected \"u1,u2;w1,w2;b\", got {spec:?}");
        }
        let (u, w, b) = (
            numbers(parts[0], "u")?,
            numbers(parts[1], "w")?,
            numbers(parts[2], "b")?,
        );
        if u.len() != 2 || w.len() != 2 || b.len() != 1 {
            bail!("--planar: u and w need 2 numbers and b one, got {spec:?}");
        }
        return Ok(Some(Box::new(PlanarFlow::new(
            Tensor::from_slice(&u),
            Tensor::from_slice(&w),
            Tensor::from(b[0]),
        ))));
    }
    if let Some(spec) = radial {
        let parts: Vec<&str> = spec.split(';').collect();
        if parts.len() != 3 {
            bail!("--radial: expected \"z01,z02;alpha;beta\", got {spec:?}");
        }
        let (z0, a, b) = (
            numbers(parts[0], "z0")?,
            numbers(parts[1], "alpha")?,
            numbers(parts[2], "beta")?,
        );
        if z0.len() != 2 || a.len() != 1 || b.len() != 1 {
            bail!("--radial: z0 needs 2 numbers, alpha and beta one each, got {spec:?}");
        }
        if a[0] <= 0.0 || b[0] < -a[0] {
            bail!("--radial: need alpha > 0 and beta ≥ −alpha for an invertible layer, got alpha = {}, beta = {}", a[0], b[0]);
        }
        return Ok(Some(Box::new(RadialFlow::new(
            Tensor::from_slice(&z0),
            Tensor::from(a[0]),
            Tensor::from(b[0]),
        ))));
    }
    Ok(None)
}

/// Density image of N(0, I) pushed through `layer` (exact, via the inverse).
fn pushforward_image(layer: Option<&dyn Bijector>, window: f64, size: usize) -> RgbImageResult {
    let base = StandardNormal::new(vec![2], Kind::Double, Device::Cpu);
    let mut failure = None;
    let img = plot::density_figure(-window, window, size, Device::Cpu, &mut |pts| {
        let res = match layer {
            None => base.log_prob(pts),
            Some(b) => b
                .inverse(pts, None)
                .and_then(|(x, ld)| Ok(base.log_prob(&x)? + ld)),
        };
        res.unwrap_or_else(|e| {
            failure = Some(e);
            pts.select(1, 0).full_like(f64::NAN)
        })
    });
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(img),
    }
}

type RgbImageResult = Result<image::RgbImage>;

pub fn run(cmd: PlotCommand) -> Result<()> {
    match cmd {
        PlotCommand::Density {
            planar,
            radial,
            window,
            size,
            out,
        } => {
            anyhow::ensure!(
                window > 0.0 && size >= 8,
                "--window must be positive and --size at least 8"
            );
            let layer = parse_layer(planar.as_deref(), radial.as_deref())?;
            let img = pushforward_image(layer.as_deref(), window, size)?;
            plot::save_png(&img, &out)?;
            eprintln!("wrote {}", out.display());
        }
        PlotCommand::Fig1 { out } => {
            let planar = parse_layer(Some("1,0;5,0;0"), None)?;
            let radial = parse_layer(None, Some("0.5,0;0.5;1"))?;
            let panels = [
                pushforward_image(None, 3.0, 300)?,
                pushforward_image(planar.as_deref(), 3.0, 300)?,
                pushforward_image(radial.as_deref(), 3.0, 300)?,
            ];
            plot::save_png(&plot::hstack(&panels), &out)?;
            eprintln!(
                "wrote {} (N(0, I) | planar | radial, window [-3, 3]²)",
                out.display()
            );
        }
        PlotCommand::Target { name, size, out } => {
            let target = Target::parse(&name)?;
            let (lo, hi) = target.window();
            let img =
                plot::density_figure(lo, hi, size, Device::Cpu, &mut |pts| -target.energy(pts));
            plot::save_png(&img, &out)?;
            eprintln!("wrote {}", out.display());
        }
        PlotCommand::Latent {
            run_dir,
            digit,
            dims,
            range,
            steps,
        } => latent(&run_dir, digit, dims, range, steps)?,
        PlotCommand::Curves { runs, tag, out } => curves(&runs, &tag, &out)?,
        PlotCommand::Run { run_dir } => {
            let (_, model) = super::load_run(&run_dir, None)?;
            save_figures(model.as_ref(), &run_dir)?;
        }
    }
    Ok(())
}

/// Writes a model's figures into its run folder.
fn save_figures(model: &dyn flowlab::model::Model, run_dir: &Path) -> Result<()> {
    let dir = RunDir::open(run_dir)?;
    for (stem, img) in model.figures()? {
        let path = dir.figure_path(&stem);
        plot::save_png(&img, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `plot latent`: a VAE run's latent-space figures with other choices than its config's.
fn latent(
    run_dir: &Path,
    digit: Option<i64>,
    dims: Option<String>,
    range: Option<f64>,
    steps: Option<i64>,
) -> Result<()> {
    let dir = RunDir::open(run_dir)?;
    let mut cfg = dir.read_config()?;
    let ModelConfig::Vae(vae_cfg) = &mut cfg.model else {
        bail!("{}: `plot latent` needs a vae run (this is another model; `plot run` draws its figures)", run_dir.display());
    };
    let ev = &mut vae_cfg.evaluation;
    if let Some(d) = digit {
        ev.digit = d;
    }
    if let Some(d) = dims {
        let v = numbers(&d, "--dims")?;
        ev.sweep_dims = Some(v.iter().map(|x| *x as i64).collect());
    }
    if let Some(r) = range {
        ev.sweep_range = r;
    }
    if let Some(s) = steps {
        ev.sweep_steps = s;
    }
    ev.validate(vae_cfg.latent_dim, "plot latent")?;
    let model = super::build_loaded(&cfg, run_dir, None, true)?;
    save_figures(model.as_ref(), run_dir)
}

/// `plot curves`: one tag of several runs on one figure.
fn curves(runs: &[PathBuf], tag: &str, out: &Path) -> Result<()> {
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let path = run.join("scalars.csv");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let points: Vec<(f64, f64)> = text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() == 3 && f[1] == tag)
                    .then(|| Some((f[0].parse().ok()?, f[2].parse().ok()?)))?
            })
            .collect();
        if points.is_empty() {
            bail!("{}: no `{tag}` values in scalars.csv", run.display());
        }
        eprintln!("{}: {}", i + 1, run.display());
        series.push(points);
    }
    plot::save_png(&plot::curves::curves_figure(&series, 900, 500)?, out)?;
    eprintln!("wrote {} ({tag})", out.display());
    Ok(())
}
