//! `flowlab sample`: draw samples from a trained model into a CSV.
use anyhow::{ensure, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct SampleArgs {
    /// The trained run folder.
    pub run_dir: PathBuf,
    /// Number of samples.
    #[arg(short = 'n', long = "num", visible_alias = "n", default_value_t = 1000)]
    pub n: i64,
    /// CSV file to write, one sample per row.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also draw the first 64 samples as an image grid into this .png or .svg (image models).
    #[arg(long, value_name = "FILE")]
    pub grid: Option<PathBuf>,
    /// Random seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Sampling temperature: the base (or prior) noise is scaled by T (Glow); 1 samples the model.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Precision to load the weights in and compute with: f32 or f64 (default: the run's
    /// runtime.dtype). f64 keeps log-densities finite further from the data.
    #[arg(long, value_enum)]
    pub dtype: Option<flowlab::experiment::config::Dtype>,
    /// Write the file even if some samples are NaN or infinite (they are reported).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

pub fn run(args: SampleArgs) -> Result<()> {
    let t = args.temperature;
    ensure!(
        t.is_finite() && t >= 0.0,
        "--temperature must be ≥ 0, got {t}"
    );
    ensure!(args.n > 0, "-n must be positive, got {}", args.n);
    let (cfg, model) = super::load_run(&args.run_dir, args.dtype)?;
    let Some(sampler) = model.sampler() else {
        anyhow::bail!(
            "{} runs have no prior to sample from (runs that sample: flow_fit, density, vae, hivae; train a vae for samples)",
            cfg.model.kind()
        )
    };
    tch::manual_seed(args.seed);
    let t0 = std::time::Instant::now();
    let x = sampler.sample(args.n, t)?;
    let drawn = t0.elapsed().as_secs_f64();
    super::check_finite(&x, "samples", args.allow_nonfinite)?;
    if let Some(path) = &args.grid {
        let Some((rows, cols)) = sampler.image_shape() else {
            anyhow::bail!("--grid: {} samples are not images", cfg.model.kind());
        };
        let format = flowlab::plot::format_of(path, flowlab::plot::Format::Png)?;
        let first = x.narrow(0, 0, args.n.min(64));
        let tiles = flowlab::plot::images::tile(&first, rows, cols, 8)?;
        let title = format!("{} samples, temperature {t}", first.size()[0]);
        flowlab::plot::Figure::from(flowlab::plot::ImageGrid::new(&title, tiles))
            .save(path, format)?;
        eprintln!("wrote {}", path.display());
    }
    let header: Vec<String> = (1..=sampler.data_dim()).map(|i| format!("x{i}")).collect();
    let t1 = std::time::Instant::now();
    flowlab::data::csv::write_matrix(&args.out, &header, &x)?;
    eprintln!(
        "drew {} {} in {drawn:.3} s, wrote them to {} in {:.3} s",
        args.n,
        sampler.sample_meaning(),
        args.out.display(),
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}
