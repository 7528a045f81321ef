//! Bad input: each case exits non-zero with a message naming the culprit, never panics, and
//! leaves nothing half-written.
mod common;
use common::*;

fn assert_clean_failure(o: &std::process::Output, needles: &[&str]) {
    assert!(!o.status.success(), "expected failure");
    assert_eq!(
        o.status.code(),
        Some(1),
        "a clean error exit, not a crash: {}",
        stderr(o)
    );
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn config_errors_name_the_file_and_the_field() {
    let dir = scratch("cfg-errors");
    let out = dir.join("runs");
    let good = tiny_config("x", 2, 10);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "malformed.json",
            good.replace("\"steps\": 10,", "\"steps\": 10"),
            vec!["malformed.json", "expected"],
        ),
        (
            "unknown.json",
            good.replace("\"seed\": 3", "\"seed\": 3, \"sead\": 4"),
            vec!["unknown.json", "train", "sead"],
        ),
        (
            "type.json",
            good.replace("\"steps\": 10", "\"steps\": \"ten\""),
            vec!["type.json", "train.steps"],
        ),
        (
            "value.json",
            good.replace("\"lr\": 0.005", "\"lr\": -1"),
            vec!["value.json", "train.optimizer.lr"],
        ),
        (
            "flow.json",
            good.replace("\"planar\"", "\"plannar\""),
            vec!["flow.json", "model.flow_fit.flow[0]", "plannar"],
        ),
        (
            "target.json",
            good.replace("\"U1\"", "\"U9\""),
            vec!["target.json", "model.flow_fit.target", "U9"],
        ),
        (
            "length.json",
            good.replace("\"length\": 2", "\"length\": 0"),
            vec!["length.json", "model.flow_fit.flow[0]"],
        ),
        (
            "threads.json",
            good.replace("\"threads\": 1", "\"threads\": 0"),
            vec!["threads.json", "runtime.threads"],
        ),
    ];
    for (file, text, needles) in cases {
        let o = run_config(&dir, file, &text);
        assert_clean_failure(&o, &needles);
    }
    let o = flowlab(&[
        "run",
        dir.join("missing.json").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["missing.json"]);
    assert!(!out.exists(), "no run folder is created for a bad config");
}

#[test]
fn a_bad_config_among_several_fails_before_any_training() {
    let dir = scratch("cfg-several");
    let a = write(&dir, "a.json", &tiny_config("a", 2, 10));
    let b = write(&dir, "b.json", "{ \"name\": ");
    let out = dir.join("runs");
    let o = flowlab(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["b.json"]);
    assert!(!out.join("a").exists());
}

/// `--device cuda` trains on the GPU where one is (metrics.json names it), and is a clear error
/// naming the setting where none is; each machine checks its own branch.
#[test]
fn cuda_runs_on_a_gpu_and_is_a_clear_error_without_one() {
    let dir = scratch("cuda");
    let cfg = write(&dir, "c.json", &tiny_config("c", 2, 10));
    let o = flowlab(&[
        "run",
        cfg.to_str().unwrap(),
        "--device",
        "cuda",
        "--out",
        dir.join("runs").to_str().unwrap(),
    ]);
    if tch::Cuda::is_available() {
        assert!(o.status.success(), "{}", stderr(&o));
        let device = metrics(&dir.join("runs/c"))["device"].to_string();
        assert!(device.contains("Cuda"), "trained on {device}");
    } else {
        assert_clean_failure(&o, &["cuda", "no CUDA device"]);
    }
}

#[test]
fn bad_csv_and_bad_checkpoints_are_named() {
    let dir = scratch("bad-input");
    let run = train_tiny(&dir, "r", 2, 40);
    let run_s = run.to_str().unwrap();
    let lp = dir.join("lp.csv");
    let csv_cases = [
        (
            "cols.csv",
            "x1,x2\n0.1,0.2\n0.3\n",
            vec!["cols.csv", "row 2 (line 3)", "1 columns, expected 2"],
        ),
        (
            "cr-only.csv",
            "x1,x2\r0.1,0.2\r\r0.3\r",
            vec!["cr-only.csv", "row 2 (line 4)", "1 columns, expected 2"],
        ),
        (
            "text.csv",
            "x1,x2\n0.1,abc\n",
            vec!["text.csv", "row 1 (line 2) column 2", "abc"],
        ),
        (
            "nan.csv",
            "0.1,0.2\nNaN,0.1\n",
            vec!["nan.csv", "row 2 column 1", "finite"],
        ),
        (
            "empty.csv",
            "x1,x2\n0.1,\n",
            vec!["empty.csv", "row 1 (line 2) column 2", "empty"],
        ),
    ];
    for (file, text, needles) in csv_cases {
        let p = write(&dir, file, text);
        let o = flowlab(&[
            "log-prob",
            run_s,
            "--input",
            p.to_str().unwrap(),
            "--out",
            lp.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, &needles);
        assert!(!lp.exists(), "no output for bad input");
    }
    let o = flowlab(&[
        "log-prob",
        run_s,
        "--input",
        dir.join("nope.csv").to_str().unwrap(),
        "--out",
        lp.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["nope.csv"]);

    // A truncated checkpoint: named, and not replaced by anything.
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    std::fs::write(run.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let o = flowlab(&["eval", run_s]);
    assert_clean_failure(&o, &["model.safetensors", "truncated or corrupt"]);
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap().len(),
        bytes.len() / 2
    );
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    let o = flowlab(&[
        "sample",
        run_s,
        "-n",
        "5",
        "--out",
        dir.join("s.csv").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["model.safetensors", "does not exist"]);
    let o = flowlab(&["eval", dir.to_str().unwrap()]);
    assert_clean_failure(&o, &["not a run folder"]);
}

#[test]
fn common_mistakes_with_paths_say_what_to_do() {
    let dir = scratch("path-mistakes");
    let cfg = dir.join("tiny.json");
    std::fs::write(&cfg, tiny_config("tiny", 2, 5)).unwrap();
    let out = dir.join("runs");
    let o = flowlab(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = out.join("tiny");
    // A Hydra-style override where a config path goes.
    let o = flowlab(&["run", cfg.to_str().unwrap(), "train.steps=500"]);
    assert_clean_failure(
        &o,
        &["no config file train.steps=500", "--set train.steps=500"],
    );
    // A run folder where a config goes, and a run's config.json where a folder goes.
    let o = flowlab(&["run", run.to_str().unwrap()]);
    assert_clean_failure(
        &o,
        &["is a folder, not a config file", "--resume", "flowlab eval"],
    );
    let o = flowlab(&["eval", run.join("config.json").to_str().unwrap()]);
    assert_clean_failure(
        &o,
        &["is a file, not a run folder", "did you mean its folder"],
    );
    // A folder that is not there says so.
    let o = flowlab(&["eval", dir.join("no-such-run").to_str().unwrap()]);
    assert_clean_failure(&o, &["no-such-run does not exist"]);
}

#[test]
fn config_errors_point_into_the_file_even_with_overrides_and_config_prints_the_result() {
    let dir = scratch("cfg-lines");
    let out = dir.join("runs");
    // Line 5 of the file has a string where an integer belongs.
    let bad = tiny_config("y", 2, 10).replace("\"steps\": 10", "\"steps\": \"ten\"");
    let line = bad.lines().position(|l| l.contains("\"ten\"")).unwrap() + 1;
    let cfg = write(&dir, "bad.json", &bad);
    for extra in [&[][..], &["--set", "train.seed=2"][..]] {
        let mut args = vec!["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend(extra);
        let o = flowlab(&args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{e}");
        assert!(
            e.contains("expected an integer") && !e.contains("i64"),
            "{e}"
        );
        assert!(
            e.contains(&format!("at line {line} column")) && !e.contains(": : "),
            "{e}"
        );
    }
    // An override's own mistake names the override, with no position in a file it is not in.
    let good = write(&dir, "good.json", &tiny_config("z", 2, 10));
    let o = flowlab(&[
        "run",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "train.steps=1.5",
    ]);
    let e = stderr(&o);
    assert!(
        e.contains("after --set train.steps=1.5")
            && e.contains("expected an integer")
            && !e.contains("line 1"),
        "{e}"
    );

    // `flowlab config` prints the resolved config (defaults and overrides) without training.
    let o = flowlab(&["config", good.to_str().unwrap(), "--set", "train.seed=9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resolved: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(resolved["train"]["seed"], 9);
    assert_eq!(resolved["logging"]["figure_format"], "png");
    assert!(!out.join("z").exists(), "config trains nothing");
    // A config saved with a UTF-8 byte-order mark and CRLF line endings reads the same.
    let bom = write(
        &dir,
        "bom.json",
        &format!("\u{feff}{}", tiny_config("z", 2, 10).replace('\n', "\r\n")),
    );
    let o = flowlab(&["config", bom.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["name"], "z");

    // A second run of the same name says how to name it.
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            good.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend(extra);
        flowlab(&a)
    };
    assert!(run(&[]).status.success());
    let o = run(&["--set", "train.seed=5"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--set name="),
        "{}",
        stderr(&o)
    );
}
