//! `flowlab plot`: Rezende & Mohamed (2015)'s Fig. 1 (a standard normal through one planar or radial layer),
//! target densities, curves from runs' scalars, and a run's figures regenerated from its
//! checkpoint. Every figure is PNG or SVG.
use super::plot_curves::{curves, parse_hline};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use flowlab::bijector::Bijector;
use flowlab::distribution::{Distribution, StandardNormal};
use flowlab::experiment::config::ModelConfig;
use flowlab::experiment::rundir::RunDir;
use flowlab::flow::planar::PlanarFlow;
use flowlab::flow::radial::RadialFlow;
use flowlab::plot::{self, Figure, Format, Heatmap, Scale};
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
        /// Grid points per side.
        #[arg(long, default_value_t = 400)]
        size: usize,
        /// Colour scale: the density or its logarithm.
        #[arg(long, value_enum, default_value_t = ColourScale::Density)]
        scale: ColourScale,
        #[command(flatten)]
        out: OutFile,
    },
    /// Rezende & Mohamed (2015)'s Fig. 1 as one figure: N(0, I), then through a planar layer (u = (1, 0),
    /// w = (5, 0), b = 0), then through a radial layer (z0 = (0.5, 0), α = 0.5, β = 1).
    Fig1 {
        #[command(flatten)]
        out: OutFile,
    },
    /// The unnormalized density exp(−U) of a target (U1–U4) on its window.
    Target {
        /// Target name: U1, U2, U3 or U4.
        name: String,
        /// Grid points per side.
        #[arg(long, default_value_t = 400)]
        size: usize,
        /// Colour scale: exp(−U) or −U.
        #[arg(long, value_enum, default_value_t = ColourScale::Density)]
        scale: ColourScale,
        #[command(flatten)]
        out: OutFile,
    },
    /// Regenerate a run's figures/ from its checkpoint.
    Run {
        /// The run folder.
        run_dir: PathBuf,
        /// File format (default: the config's `logging.figure_format`).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Curves of scalar tags for several runs on one figure (from each run's scalars.csv).
    Curves {
        /// Run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Scalar tag; repeat for several (an unknown tag lists the run's tags).
        #[arg(long = "tag", default_values_t = [String::from("train/loss")])]
        tags: Vec<String>,
        /// Legend names, one per run in order (default: the run folder's name).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Exponential moving average weight in [0, 1), debiased as TensorBoard's smoothing.
        #[arg(long, default_value_t = 0.0)]
        smooth: f64,
        /// Logarithmic y axis (curves spanning decades; needs positive values).
        #[arg(long)]
        log_y: bool,
        /// A dashed horizontal reference line, `VALUE=LABEL` (e.g. `-86.55=VAE, paper`); repeatable.
        #[arg(long = "hline", value_parser = parse_hline, allow_hyphen_values = true)]
        hlines: Vec<(f64, String)>,
        #[command(flatten)]
        out: OutFile,
    },
    /// A VAE's latent-space figures from its checkpoint (posterior-sample grid, latent sweep, reconstructions, prior
    /// samples, 2-D code scatter) into the run's figures/; options override the config's.
    Latent {
        /// The run folder.
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
        /// Number of values per swept dimension.
        #[arg(long)]
        steps: Option<i64>,
        /// File format (default: the config's `logging.figure_format`).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
}

/// Where a figure goes and in which format.
#[derive(clap::Args)]
pub struct OutFile {
    /// Output file; its extension (.png or .svg) chooses the format unless --format does.
    #[arg(long)]
    out: PathBuf,
    /// File format (default: from --out's extension, else PNG).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

impl OutFile {
    /// Writes `figure` and says where.
    fn write(&self, figure: Figure) -> Result<()> {
        let from_name = plot::format_of(&self.out, Format::Png)?;
        let format = self.format.unwrap_or(from_name);
        if self.out.extension().is_some() && format != from_name {
            bail!(
                "--out {} has the wrong extension for --format {}",
                self.out.display(),
                format.extension()
            );
        }
        let path = match self.out.extension() {
            Some(_) => self.out.clone(),
            None => plot::with_extension(&self.out, format),
        };
        let path = figure.save(&path, format)?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ColourScale {
    Density,
    Log,
}

impl From<ColourScale> for Scale {
    fn from(c: ColourScale) -> Scale {
        match c {
            ColourScale::Density => Scale::Density,
            ColourScale::Log => Scale::LogDensity,
        }
    }
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

/// Density of N(0, I) pushed through `layer` (exact, via the inverse).
fn pushforward(
    layer: Option<&dyn Bijector>,
    title: &str,
    window: f64,
    size: usize,
) -> Result<Heatmap> {
    let base = StandardNormal::new(vec![2], Kind::Double, Device::Cpu);
    let mut failure = None;
    let fig = Heatmap::of_log_density(
        title,
        "density p(z)",
        (-window, window),
        size,
        Device::Cpu,
        &mut |pts| {
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
        },
    )?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(fig),
    }
}

pub fn run(cmd: PlotCommand) -> Result<()> {
    match cmd {
        PlotCommand::Density {
            planar,
            radial,
            window,
            size,
            scale,
            out,
        } => {
            anyhow::ensure!(
                window > 0.0 && size >= 8,
                "--window must be positive and --size at least 8"
            );
            let layer = parse_layer(planar.as_deref(), radial.as_deref())?;
            let title = match (&planar, &radial) {
                (Some(p), _) => format!("N(0, I) through planar {p}"),
                (_, Some(r)) => format!("N(0, I) through radial {r}"),
                _ => "N(0, I)".to_string(),
            };
            let fig = pushforward(layer.as_deref(), &title, window, size)?.with_scale(scale.into());
            out.write(fig.into())?;
        }
        PlotCommand::Fig1 { out } => {
            let planar = parse_layer(Some("1,0;5,0;0"), None)?;
            let radial = parse_layer(None, Some("0.5,0;0.5;1"))?;
            let panels = vec![
                pushforward(None, "q0 = N(0, I)", 3.0, 300)?,
                pushforward(
                    planar.as_deref(),
                    "planar: u = (1, 0), w = (5, 0), b = 0",
                    3.0,
                    300,
                )?,
                pushforward(
                    radial.as_deref(),
                    "radial: z0 = (0.5, 0), α = 0.5, β = 1",
                    3.0,
                    300,
                )?,
            ];
            out.write(Figure::Row(panels))?;
        }
        PlotCommand::Target {
            name,
            size,
            scale,
            out,
        } => {
            let target = Target::parse(&name)?;
            let label = match scale {
                ColourScale::Density => "exp(−U(z)), unnormalized",
                ColourScale::Log => "−U(z)",
            };
            let title = format!("target {}", target.name());
            let fig = Heatmap::of_log_density(
                &title,
                label,
                target.window(),
                size,
                Device::Cpu,
                &mut |pts| -target.energy(pts),
            )?;
            out.write(fig.with_scale(scale.into()).into())?;
        }
        PlotCommand::Latent {
            run_dir,
            digit,
            dims,
            range,
            steps,
            format,
        } => latent(&run_dir, digit, dims, range, steps, format)?,
        PlotCommand::Curves {
            runs,
            tags,
            labels,
            smooth,
            log_y,
            hlines,
            out,
        } => {
            let mut fig = curves(&runs, &tags, &labels, smooth, log_y)?;
            fig.lines = hlines.into_iter().map(|(v, l)| (l, v)).collect();
            out.write(fig.into())?;
        }
        PlotCommand::Run { run_dir, format } => {
            let (cfg, model) = super::load_run(&run_dir, None)?;
            let format = format.unwrap_or(cfg.logging.figure_format);
            save_figures(model.as_ref(), &run_dir, format)?;
        }
    }
    Ok(())
}

/// Writes a model's figures into its run folder.
fn save_figures(model: &dyn flowlab::model::Model, run_dir: &Path, format: Format) -> Result<()> {
    let dir = RunDir::open(run_dir)?;
    for (stem, figure) in model.figures()? {
        let path = figure.save(&dir.figure_path(&stem, format), format)?;
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
    format: Option<Format>,
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
    save_figures(
        model.as_ref(),
        run_dir,
        format.unwrap_or(cfg.logging.figure_format),
    )
}
