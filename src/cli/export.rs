//! `flowlab export RUN_DIR… --out NAME.ipynb`: a Jupyter notebook (nbformat 4) of finished runs:
//! the equations each model implements (LaTeX, with the papers they come from), the final
//! metrics, one figure per curve tag overlaying every run (drawn from the runs' scalars.csv by a
//! code cell, its output embedded), and each run's config, metrics and figures. Paths in the
//! notebook are relative to the notebook's own folder, so it opens from there; the figures are
//! linked, and embedded only when chosen with `--figures`. Generated, never edited by hand.
use anyhow::{ensure, Context, Result};
use clap::Args;
use flowlab::experiment::config::{ExperimentConfig, ModelConfig};
use flowlab::experiment::rundir::{self, RunDir};
use flowlab::plot;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ExportArgs {
    /// Finished run folders to put in the notebook.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The notebook file to write (.ipynb).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The notebook's title (default: the output file's stem).
    #[arg(long)]
    title: Option<String>,
    /// A paragraph placed under the title.
    #[arg(long)]
    intro: Option<String>,
    /// Embed these figures (file stems, comma-separated, e.g. "reconstructions,prior_samples")
    /// so the notebook shows them on its own; the others are linked by relative path.
    #[arg(long)]
    figures: Option<String>,
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn lines(text: &str) -> Value {
    let parts: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    json!(parts)
}

fn markdown(text: &str) -> Value {
    json!({"cell_type": "markdown", "metadata": {}, "source": lines(text)})
}

fn code(source: &str, outputs: Vec<Value>) -> Value {
    json!({"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": outputs, "source": lines(source)})
}

fn png_output(png: &[u8], caption: &str) -> Value {
    json!({"output_type": "display_data", "metadata": {}, "data": {"image/png": base64(png), "text/plain": [caption]}})
}

const CHANGE_OF_VARIABLES: &str = "**Change of variables** (Rezende & Mohamed 2015, §3.1): for z_K = f_K ∘ … ∘ f_1(z_0), $z_0 \\sim q_0$,\n\n$$\\ln q_K(z_K) = \\ln q_0(z_0) - \\sum_{k=1}^{K} \\ln\\left|\\det \\frac{\\partial f_k}{\\partial z_{k-1}}\\right|.$$\n";

/// The equations a model implements, as markdown.
fn equations(model: &ModelConfig) -> &'static str {
    match model {
        ModelConfig::FlowFit(_) => "**Reverse-KL fit to an unnormalized target** $p(z) \\propto e^{-U(z)}$ (Rezende & Mohamed 2015, §6.1), annealed by $\\beta$:\n\n$$\\mathcal F_\\beta = \\mathbb E_{q_0}\\Big[\\ln q_0(z_0) - \\sum_k \\ln\\left|\\det \\tfrac{\\partial f_k}{\\partial z_{k-1}}\\right| + \\beta\\, U(z_K)\\Big], \\qquad \\mathrm{KL}(q_K\\,\\|\\,p) = \\mathcal F_1 + \\ln Z.$$\n\n**Planar flow** (Rezende & Mohamed 2015, eq. 10–12): $f(z) = z + \\hat u\\, h(w^\\top z + b)$, $\\ln|\\det \\partial f/\\partial z| = \\ln|1 + h'(w^\\top z + b)\\, w^\\top \\hat u|$, with $w^\\top\\hat u \\ge -1$.\n\n**Radial flow** (ibid., eq. 14): $f(z) = z + \\beta h(\\alpha, r)(z - z_0)$, $h = 1/(\\alpha + r)$, $r = \\|z - z_0\\|$, $\\ln|\\det| = (d-1)\\ln(1 + \\beta h) + \\ln(1 + \\beta h + \\beta h' r)$, with $\\beta \\ge -\\alpha$.\n",
        ModelConfig::Density(_) => "**Maximum likelihood** (Dinh et al. 2016, eq. 3): $\\ln p(x) = \\ln q_0(f^{-1}(x)) + \\ln\\left|\\det \\partial f^{-1}/\\partial x\\right|$, the loss is $-\\mathbb E_{\\text{data}}\\ln p(x)$ in nats.\n\n**MAF** (Papamakarios et al. 2017): $x_i = u_i\\, e^{\\alpha_i} + \\mu_i$, $(\\mu_i, \\alpha_i) = \\mathrm{MADE}(x_{<i})$, so $\\ln|\\det \\partial u/\\partial x| = -\\sum_i \\alpha_i$.\n\n**Coupling layers** (NICE, RealNVP): $y_{1} = x_{1}$, $y_{2} = x_{2} \\odot e^{s(x_{1})} + t(x_{1})$ ($s = 0$ for NICE), $\\ln|\\det| = \\sum s(x_1)$.\n",
        ModelConfig::Vae(_) | ModelConfig::Autoencoder(_) => "**ELBO** (Kingma & Welling 2014, eq. 3 and Appendix B): $\\mathcal L(x) = \\mathbb E_{q(z|x)}[\\ln p(x|z)] - \\mathrm{KL}(q(z|x)\\,\\|\\,p(z))$, $z = \\mu + \\sigma \\odot \\epsilon$, $\\mathrm{KL} = \\tfrac12\\sum_j (\\mu_j^2 + \\sigma_j^2 - 1 - \\ln \\sigma_j^2)$; Bernoulli decoder (Kingma & Welling 2014, Appendix C.1): $\\ln p(x|z) = \\sum_i x_i \\ln \\hat x_i + (1 - x_i)\\ln(1 - \\hat x_i)$.\n\n**Flow posterior** (Rezende & Mohamed 2015, §4.2): $\\mathcal L(x) = \\mathbb E_{q_0}\\big[\\ln p(x|z_K) + \\ln p(z_K) - \\ln q_0(z_0|x) + \\sum_k \\ln|\\det \\partial f_k/\\partial z_{k-1}|\\big]$.\n\n**IAF step** (Kingma et al. 2016): $(m, s) = \\mathrm{MADE}(z, h)$, $\\sigma = \\mathrm{sigmoid}(s)$, $z' = \\sigma \\odot z + (1 - \\sigma) \\odot m$, $\\ln|\\det| = \\sum_i \\ln \\sigma_i$.\n\n**Sylvester flow** (van den Berg et al. 2018): $z' = z + Q R_1 h(R_2 Q^\\top z + b)$, $\\ln|\\det| = \\sum_i \\ln|1 + r_{1,ii} r_{2,ii} h'(\\cdot)_i|$.\n\n**Importance-weighted NLL**: $-\\ln p(x) \\approx -\\ln \\frac1S \\sum_s \\frac{p(x|z_K^{(s)}) p(z_K^{(s)})}{q_K(z_K^{(s)}|x)}$.\n\n(The autoencoder (Hinton & Salakhutdinov 2006) minimizes the reconstruction error alone.)\n",
        ModelConfig::Hivae(_) => "**HI-VAE with flows** (Nazábal et al. 2020): $s \\sim \\mathrm{Cat}(1/K)$, $z|s \\sim \\mathcal N(\\mu_s, I)$ (optionally through a prior flow), $x_d | z, s \\sim p_d(\\cdot\\,|\\, y_d(z), s)$ per column type;\n\n$$\\mathcal L(x) = \\sum_{d \\in \\mathcal O} \\mathbb E_q[\\ln p(x_d | z, s)] - \\mathrm{KL}(q(s|x)\\,\\|\\,p(s)) - \\mathbb E_{q(s|x)}\\mathrm{KL}(q(z|x,s)\\,\\|\\,p(z|s)),$$\n\nwith $\\mathcal O$ the observed cells; missing cells are zero-filled at the encoder and imputed by the likelihood's mode.\n",
    }
}

/// The notebook family of a model: autoencoders share the VAE's.
fn kind(model: &ModelConfig) -> &'static str {
    match model.kind() {
        "autoencoder" => "vae",
        k => k,
    }
}

/// (step, value) series of each tag worth a curve, from scalars.csv.
/// A named series of (step, value) points.
use flowlab::log::Curve;

fn curves(run: &Path) -> Result<Vec<Curve>> {
    let shown = [
        "train/loss",
        "train/elbo",
        "train/kl",
        "train/kl_z",
        "train/log_det",
        "train/nll",
    ];
    Ok(flowlab::log::read_scalars_csv(run)?
        .into_iter()
        .filter(|(t, _)| shown.contains(&t.as_str()) || t.starts_with("val/"))
        .collect())
}

/// A finished run: its folder, config and metrics.
type Loaded = (PathBuf, ExperimentConfig, Value);

pub fn run(args: ExportArgs) -> Result<()> {
    ensure!(
        args.out.extension().is_some_and(|e| e == "ipynb"),
        "--out must end in .ipynb, got {}",
        args.out.display()
    );
    let title = args.title.clone().unwrap_or_else(|| {
        args.out
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("flowlab")
            .to_string()
    });
    let mut loaded: Vec<Loaded> = Vec::new();
    for run in &args.runs {
        let dir = RunDir::open(run)?;
        let cfg = dir.read_config()?;
        let metrics: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("metrics.json")).with_context(|| {
                format!("{}: no metrics.json (is the run finished?)", run.display())
            })?,
        )?;
        loaded.push((run.clone(), cfg, metrics));
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let rel: Vec<String> = args
        .runs
        .iter()
        .map(|r| relative_to_notebook(r, &args.out))
        .collect::<Result<_>>()?;
    let mut cells = vec![markdown(&format!(
        "# {title}\n\n{}Generated by `flowlab export` from {} run folder(s) (relative to this notebook): {}. Regenerate it with the same command; do not edit by hand.\n",
        args.intro.as_ref().map(|i| format!("{i}\n\n")).unwrap_or_default(),
        args.runs.len(),
        rel.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
    ))];
    let mut kinds: Vec<&'static str> = Vec::new();
    cells.push(markdown(&format!(
        "## What the models compute\n\n{CHANGE_OF_VARIABLES}"
    )));
    for (_, cfg, _) in &loaded {
        if !kinds.contains(&kind(&cfg.model)) {
            kinds.push(kind(&cfg.model));
            cells.push(markdown(equations(&cfg.model)));
        }
    }
    cells.extend(metrics_cells(&rel, &loaded));
    cells.extend(curve_cells(&rel, &loaded)?);
    for (run, r) in loaded.iter().zip(&rel) {
        cells.extend(run_cells(run, r, args.figures.as_deref())?);
    }
    let nb = json!({
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}, "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4
    });
    rundir::write_atomic(&args.out, serde_json::to_string_pretty(&nb)?.as_bytes())?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The final-metrics table and the cell that reloads it from the run folders.
fn metrics_cells(runs: &[String], loaded: &[Loaded]) -> Vec<Value> {
    let paths: Vec<String> = runs.iter().map(|r| format!("{r:?}")).collect();
    let keys = [
        "test_elbo",
        "test_nll",
        "kl",
        "test_imputation_error",
        "test_mean_mode_error",
        "test_recon",
        "steps_per_sec",
    ];
    let mut table = String::from("run");
    for k in keys {
        table += &format!(" | {k}");
    }
    table += "\n";
    for (_, cfg, m) in loaded {
        table += &cfg.name;
        for k in keys {
            table += &m
                .get(k)
                .and_then(Value::as_f64)
                .map(|v| format!(" | {v:.4}"))
                .unwrap_or_else(|| " | -".into());
        }
        table += "\n";
    }
    vec![
        markdown("## Final metrics\n\nThe cell below reloads them from the run folders (paths relative to this notebook's folder).\n"),
        code(
            &format!("import json, pathlib\nruns = [{}]\nfor r in runs:\n    m = json.loads((pathlib.Path(r) / 'metrics.json').read_text())\n    print(pathlib.Path(r).name, {{k: round(v, 4) for k, v in m.items() if isinstance(v, float)}})", paths.join(", ")),
            vec![json!({"output_type": "stream", "name": "stdout", "text": lines(&table)})],
        ),
    ]
}

/// `run`'s path as seen from the notebook's folder (`../runs/a`), with `/` separators.
fn relative_to_notebook(run: &Path, notebook: &Path) -> Result<String> {
    let abs = |p: &Path| {
        p.canonicalize()
            .with_context(|| format!("cannot resolve {}", p.display()))
    };
    let run = abs(run)?;
    let nb_dir = abs(
        match notebook.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => p,
            None => Path::new("."),
        },
    )?;
    let (a, b): (Vec<_>, Vec<_>) = (run.components().collect(), nb_dir.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); b.len() - common];
    parts.extend(
        a[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// One figure per curve tag with every run on it: a code cell that draws it from the runs'
/// scalars.csv (matplotlib), its output rendered by flowlab and embedded.
fn curve_cells(rel: &[String], loaded: &[Loaded]) -> Result<Vec<Value>> {
    let mut tags: Vec<(String, Vec<Curve>)> = Vec::new();
    for ((run, cfg, _), _) in loaded.iter().zip(rel) {
        for (tag, points) in curves(run)? {
            match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, s)) => s.push((cfg.name.clone(), points)),
                None => tags.push((tag, vec![(cfg.name.clone(), points)])),
            }
        }
    }
    if tags.is_empty() {
        return Ok(vec![]);
    }
    let mut cells = vec![markdown("## Curves\n\nOne figure per tag, every run on it. Each cell redraws its figure from the runs' `scalars.csv` (paths relative to this notebook's folder); the output shown is flowlab's drawing of the same numbers. TensorBoard has every tag.\n")];
    let paths: Vec<String> = rel.iter().map(|r| format!("{r:?}")).collect();
    for (tag, series) in tags {
        let mut fig = plot::Curves::new(&tag, "step", &tag);
        fig.size = (760, 360);
        for (name, points) in series {
            fig = fig.with_series(&name, points);
        }
        let png = plot::Figure::from(fig).render(plot::Format::Png)?;
        let source = format!(
            "import csv, pathlib\nimport matplotlib.pyplot as plt\nfor run in [{}]:\n    rows = [r for r in csv.DictReader(open(pathlib.Path(run) / 'scalars.csv')) if r['tag'] == {tag:?}]\n    plt.plot([float(r['step']) for r in rows], [float(r['value']) for r in rows], label=pathlib.Path(run).name)\nplt.xlabel('step'); plt.ylabel({tag:?}); plt.legend(); plt.show()",
            paths.join(", ")
        );
        cells.push(code(&source, vec![png_output(&png, &tag)]));
    }
    Ok(cells)
}

/// One run's section: config, metrics, and its figures (linked; embedded when chosen).
fn run_cells((run, cfg, metrics): &Loaded, rel: &str, figures: Option<&str>) -> Result<Vec<Value>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(run.join("figures"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let links: Vec<String> = paths
        .iter()
        .map(|p| format!("[{0}]({rel}/figures/{0})", name_of(p)))
        .collect();
    let mut cells = vec![markdown(&format!(
        "## Run `{}`\n\nFolder: `{rel}`. Figures: {}.\n\nConfig:\n\n```json\n{}\n```\n\nMetrics:\n\n```json\n{}\n```\n",
        cfg.name,
        if links.is_empty() { "none".to_string() } else { links.join(", ") },
        cfg.to_pretty_json(),
        serde_json::to_string_pretty(metrics)?
    ))];
    let Some(chosen) = figures else {
        return Ok(cells);
    };
    let figs: Vec<Value> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            chosen.split(',').any(|w| w.trim() == stem)
        })
        .filter_map(|p| Some(png_output(&std::fs::read(p).ok()?, &name_of(p))))
        .collect();
    if !figs.is_empty() {
        cells.push(code(
            &format!("# figures of {} ({rel}/figures/)", cfg.name),
            figs,
        ));
    }
    Ok(cells)
}
