//! `flowlab sweep SWEEP.json [--jobs N] [--slurm]`: runs a sweep's configs locally, N at a time
//! (each with the sweep's `threads_per_job`), skipping finished runs and resuming interrupted
//! ones; or, with `--slurm`, writes an sbatch job-array script and one resolved config per task
//! instead (under `ROOT/.slurm/`). All runs land under one output root, so `tensorboard --logdir ROOT` overlays them and
//! `flowlab compare ROOT/*` tabulates them (mean ± std over seeds).
use anyhow::{bail, Context, Result};
use clap::Args;
use flowlab::experiment::rundir;
use flowlab::experiment::sweep::SweepFile;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct SweepArgs {
    /// The sweep file (JSON: base config, grid and/or random draws, threads per job).
    sweep: PathBuf,
    /// Runs at a time (choose jobs × threads_per_job ≤ cores).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Output root: a folder (default: the sweep file's `out`, else runs/<sweep file stem>).
    #[arg(long, value_name = "ROOT")]
    out: Option<PathBuf>,
    /// Write a Slurm job-array script instead of running.
    #[arg(long)]
    slurm: bool,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

pub fn run(args: SweepArgs) -> Result<()> {
    let file = SweepFile::load(&args.sweep)?;
    let runs = file.expand()?;
    let stem = args
        .sweep
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sweep")
        .to_string();
    let out = args
        .out
        .clone()
        .or(file.out.clone())
        .unwrap_or_else(|| PathBuf::from("runs").join(&stem));
    let out = absolute(&out)?;
    let configs = out.join(if args.slurm {
        ".slurm/configs"
    } else {
        ".sweep/configs"
    });
    std::fs::create_dir_all(&configs)
        .with_context(|| format!("cannot create {}", configs.display()))?;
    for (i, r) in runs.iter().enumerate() {
        let file_name = if args.slurm {
            format!("{i}.json")
        } else {
            format!("{}.json", r.name)
        };
        rundir::write_atomic(
            &configs.join(file_name),
            r.config.to_pretty_json().as_bytes(),
        )?;
    }
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    if args.slurm {
        return write_slurm(&args.sweep, &stem, &names, file.threads_per_job, &out);
    }
    let result = run_local(names.clone(), args.jobs.max(1), &out, &configs);
    let values = runs
        .iter()
        .map(|r| serde_json::to_value(&r.config))
        .collect::<Result<Vec<_>, _>>()?;
    write_experiment_summary(&out, &stem, &names, &values)?;
    result
}

/// TensorBoard's HParams experiment record at the sweep's root (a fresh event file replaces an
/// earlier one): the settings that vary between the runs and the metrics the finished runs
/// report.
fn write_experiment_summary(
    out: &Path,
    stem: &str,
    names: &[String],
    configs: &[serde_json::Value],
) -> Result<()> {
    let mut tags: Vec<String> = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(out.join(name).join("metrics.json")) else {
            continue;
        };
        let metrics: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        for (k, v) in metrics.as_object().into_iter().flatten() {
            if let (true, Some(tag)) = (v.is_number(), flowlab::log::final_metric_tag(k)) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
    }
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("events.out.tfevents.") && name.ends_with(".flowlab") {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("replacing {}", entry.path().display()))?;
        }
    }
    let mut events = flowlab::log::tensorboard::EventWriter::create(out)?;
    flowlab::log::hparams::write_experiment(&mut events, stem, configs, &tags)?;
    events.flush()?;
    eprintln!(
        "HParams experiment record for {} runs and {} metrics (tensorboard --logdir {})",
        names.len(),
        tags.len(),
        out.display()
    );
    Ok(())
}

/// The sbatch job-array script (one task per run, skipping finished ones, resuming started ones).
fn write_slurm(sweep: &Path, stem: &str, names: &[String], threads: i32, out: &Path) -> Result<()> {
    let exe = std::env::current_exe()?;
    let list: String = names.iter().map(|n| format!("{n}\n")).collect();
    rundir::write_atomic(&out.join(".slurm/names.txt"), list.as_bytes())?;
    std::fs::create_dir_all(out.join(".slurm/logs"))?;
    let path = out.join(".slurm/sweep.sbatch");
    let script = format!(
        r#"#!/bin/bash
# flowlab sweep {sweep}: {n} runs as a Slurm job array. Submit with: sbatch {script}
#SBATCH --job-name=flowlab-{stem}
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={threads}
#SBATCH --output={out}/.slurm/logs/%A_%a.out
set -euo pipefail
FLOWLAB="${{FLOWLAB:-{exe}}}"
task="${{SLURM_ARRAY_TASK_ID:?run under sbatch, or set SLURM_ARRAY_TASK_ID}}"
name=$(sed -n "$((task + 1))p" "{out}/.slurm/names.txt")
if [ -f "{out}/$name/metrics.json" ]; then echo "$name: finished already"; exit 0; fi
resume=()
if [ -d "{out}/$name" ]; then resume=(--resume); fi
exec "$FLOWLAB" run "{out}/.slurm/configs/$task.json" --out "{out}" --threads {threads} "${{resume[@]}}"
"#,
        sweep = sweep.display(),
        n = names.len(),
        script = path.display(),
        last = names.len() - 1,
        out = out.display(),
        exe = exe.display(),
    );
    rundir::write_atomic(&path, script.as_bytes())?;
    eprintln!(
        "wrote {} ({} tasks) and its configs; submit with `sbatch {}`",
        path.display(),
        names.len(),
        path.display()
    );
    Ok(())
}

/// Runs the sweep `jobs` at a time, each in its own process; fails naming the runs that failed.
fn run_local(names: Vec<String>, jobs: usize, out: &Path, configs: &Path) -> Result<()> {
    let total = names.len();
    let exe = std::env::current_exe()?;
    let queue = Arc::new(Mutex::new(names));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (queue, failed) = (queue.clone(), failed.clone());
            let (out, configs, exe) = (out.to_path_buf(), configs.to_path_buf(), exe.clone());
            let next = move || {
                queue
                    .lock()
                    .map(|mut q| (!q.is_empty()).then(|| q.remove(0)))
                    .ok()
                    .flatten()
            };
            std::thread::spawn(move || {
                while let Some(name) = next() {
                    if !run_one(&name, &exe, &out, &configs) {
                        if let Ok(mut f) = failed.lock() {
                            f.push(name);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    if !failed.is_empty() {
        bail!(
            "{} of {} runs failed: {}",
            failed.len(),
            total,
            failed.join(", ")
        );
    }
    eprintln!(
        "{} runs under {}; compare with `flowlab compare {}/*/`",
        total,
        out.display(),
        out.display()
    );
    Ok(())
}

/// One run of the sweep (skipped when finished, resumed when started); true when it succeeded.
fn run_one(name: &str, exe: &Path, out: &Path, configs: &Path) -> bool {
    let folder = out.join(name);
    if folder.join("metrics.json").exists() {
        eprintln!("{name}: finished already, skipped");
        return true;
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg(configs.join(format!("{name}.json")))
        .arg("--out")
        .arg(out);
    if folder.is_dir() {
        cmd.arg("--resume");
    }
    let log = out.join(".sweep/logs").join(format!("{name}.log"));
    let _ = std::fs::create_dir_all(out.join(".sweep/logs"));
    let status = std::fs::File::create(&log)
        .and_then(|f| cmd.stdout(std::process::Stdio::null()).stderr(f).status());
    match status {
        Ok(s) if s.success() => {
            eprintln!("{name}: done");
            true
        }
        _ => {
            eprintln!("{name}: FAILED (see {})", log.display());
            false
        }
    }
}
