//! `--set` overrides, sweeps run locally (skipping finished runs, resuming interrupted ones) or
//! written as a Slurm job array, and `compare`'s mean ± std over seeds.
mod common;
use common::*;

#[test]
fn set_overrides_fields_by_path_with_the_files_validation() {
    let dir = scratch("set");
    let cfg = write(&dir, "c.json", &tiny_config("s", 2, 20));
    let out = dir.join("runs");
    let args = |sets: &[&str]| {
        let mut a = vec!["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()];
        for s in sets {
            a.extend(["--set", s]);
        }
        flowlab(&a)
    };
    let o = args(&[
        "name=s2",
        "model.flow_fit.flow[0].planar.length=3",
        "train.grad_clip=5",
        "train.seed=4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resolved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("s2/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        resolved["model"]["flow_fit"]["flow"][0]["planar"]["length"],
        3
    );
    assert_eq!(resolved["train"]["grad_clip"], 5.0);
    assert_eq!(resolved["train"]["seed"], 4);
    for (set, needle) in [
        (
            "model.flow_fit.flow[0].planar.lenght=3",
            "unknown field `lenght`",
        ),
        ("train.steps=-1", "train.steps"),
        (
            "model.flow_fit.flow[4].planar.length=3",
            "index 4 is beyond the list's 1 items",
        ),
        ("train.steps", "expected PATH=VALUE"),
    ] {
        let o = args(&["name=bad", set]);
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{set}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_sweep_runs_its_grid_skips_finished_runs_and_writes_a_slurm_array() {
    let dir = scratch("sweep");
    write(&dir, "base.json", &tiny_config("b", 2, 30));
    let sweep = write(
        &dir,
        "s.json",
        r#"{ "base": "base.json", "grid": { "model.flow_fit.flow[0].planar.length": [1, 2], "train.seed": [0, 1] }, "threads_per_job": 1 }"#,
    );
    let out = dir.join("runs");
    let o = flowlab(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = [
        "b-length1-seed0",
        "b-length1-seed1",
        "b-length2-seed0",
        "b-length2-seed1",
    ];
    for n in names {
        assert!(out.join(n).join("metrics.json").exists(), "{n}");
    }
    // Interrupt one: its metrics vanish; a second sweep resumes it and skips the others.
    std::fs::remove_file(out.join(names[3]).join("metrics.json")).unwrap();
    let o = flowlab(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("finished already").count(),
        3,
        "{}",
        stderr(&o)
    );
    assert!(out.join(names[3]).join("metrics.json").exists());
    // compare: the two seeds of each length are one setting.
    let dirs: Vec<String> = names
        .iter()
        .map(|n| out.join(n).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["compare"];
    args.extend(dirs.iter().map(String::as_str));
    let o = flowlab(&args);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("mean ± std over seeds") && table.contains("| b-length1-seed0 | 2 |"),
        "{table}"
    );
    // `compare ROOT` takes the sweep's folder; the columns are the settings that differ
    // (by their shortest distinct names) and metrics.json's values under its names.
    let csv = dir.join("cmp.csv");
    let o = flowlab(&[
        "compare",
        out.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("| run | length | seed | elbo |") && header.contains("| kl |"),
        "{header}"
    );
    assert!(
        !header.contains("lr") && !header.contains("target"),
        "only differing settings: {header}"
    );
    assert!(table.contains("| b-length2-seed1 | 2 | 1 |"), "{table}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(names[0]).join("metrics.json")).unwrap(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let row = text.lines().find(|l| l.starts_with(names[0])).unwrap();
    assert!(
        row.contains(&m["kl"].as_f64().unwrap().to_string()),
        "full precision: {row}"
    );
    assert!(dir.join("cmp-seeds.csv").exists());
    // A single run has no spread to show, and no CSV is written unless asked.
    let o = flowlab(&["compare", &dirs[0]]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && !table.contains("±") && !table.contains("mean ± std"),
        "{table}"
    );
    let o = flowlab(&["compare", dir.join("nowhere").to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("no such folder"),
        "{}",
        stderr(&o)
    );

    // Slurm: a job-array script that bash accepts, and one task run by hand.
    let slurm_out = dir.join("cluster");
    let o = flowlab(&[
        "sweep",
        sweep.to_str().unwrap(),
        "--out",
        slurm_out.to_str().unwrap(),
        "--slurm",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = slurm_out.join(".slurm/sweep.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("#SBATCH --array=0-3") && text.contains("#SBATCH --cpus-per-task=1"),
        "{text}"
    );
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(check.success());
    let task = std::process::Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("FLOWLAB", env!("CARGO_BIN_EXE_flowlab"))
        .output()
        .unwrap();
    assert!(
        task.status.success(),
        "{}",
        String::from_utf8_lossy(&task.stderr)
    );
    assert!(slurm_out.join("b-length2-seed0/metrics.json").exists());
    assert!(
        !slurm_out.join("b-length1-seed0").exists(),
        "only task 2 ran"
    );
}

#[test]
fn bad_sweep_files_are_named() {
    let dir = scratch("sweep-bad");
    write(&dir, "base.json", &tiny_config("b", 2, 30));
    for (text, needle) in [
        (
            r#"{ "base": "base.json", "grid": { "train.seed": [] } }"#,
            "non-empty list",
        ),
        (
            r#"{ "base": "base.json", "grid": { "train.steps": [10, -1] } }"#,
            "train.steps",
        ),
        (r#"{ "base": "missing.json" }"#, "missing.json"),
        (
            r#"{ "base": "base.json", "random": { "samples": 2, "fields": { "train.optimizer.lr": { "gamma": [1, 2] } } } }"#,
            "unknown distribution `gamma`",
        ),
        (
            r#"{ "base": "base.json", "gird": {} }"#,
            "unknown field `gird`",
        ),
    ] {
        let s = write(&dir, "s.json", text);
        let o = flowlab(&[
            "sweep",
            s.to_str().unwrap(),
            "--out",
            dir.join("runs").to_str().unwrap(),
        ]);
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{needle}: {}",
            stderr(&o)
        );
    }
}
