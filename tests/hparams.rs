//! TensorBoard's HParams dashboard data, read back with TensorBoard's own code: its event
//! multiplexer and data provider (the path the dashboard takes) and its hparams protobufs.
mod common;
use common::*;
use std::process::Command;

const READ: &str = r#"
import sys, json
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.backend.event_processing import data_provider as dp
from tensorboard import context
from tensorboard.plugins.hparams import metadata, api_pb2
from google.protobuf import json_format
mux = pem.EventMultiplexer()
mux.AddRunsFromDirectory(sys.argv[1])
mux.Reload()
provider = dp.MultiplexerDataProvider(mux, sys.argv[1])
series = provider.list_tensors(context.RequestContext(), experiment_id="", plugin_name=metadata.PLUGIN_NAME)
out = {}
for run, tags in series.items():
    r = out.setdefault(run, {})
    for tag, ts in tags.items():
        parse, key = {
            metadata.EXPERIMENT_TAG: (metadata.parse_experiment_plugin_data, "experiment"),
            metadata.SESSION_START_INFO_TAG: (metadata.parse_session_start_info_plugin_data, "session_start_info"),
            metadata.SESSION_END_INFO_TAG: (metadata.parse_session_end_info_plugin_data, "session_end_info"),
        }[tag]
        data = parse(ts.plugin_content)
        r[tag] = {key: json_format.MessageToDict(data, preserving_proto_field_name=True)}
scalars = provider.list_scalars(context.RequestContext(), experiment_id="", plugin_name="scalars")
for run, tags in scalars.items():
    out.setdefault(run, {})["scalars"] = sorted(tags)
print(json.dumps(out))
"#;

#[test]
fn runs_and_sweeps_write_what_the_hparams_dashboard_reads() {
    let dir = scratch("hparams");
    write(&dir, "base.json", &tiny_config("h", 2, 30));
    let sweep = write(
        &dir,
        "s.json",
        r#"{ "base": "base.json", "grid": { "model.flow_fit.flow[0].planar.length": [1, 3], "train.optimizer.lr": [0.01] }, "threads_per_job": 1 }"#,
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

    let o = Command::new(python())
        .args(["-c", READ, out.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tb: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    // Each run: a session start with its settings, a successful end, its metrics as scalars.
    for (run, k) in [("h-length1-lr1.000e-2", 1.0), ("h-length3-lr1.000e-2", 3.0)] {
        let r = &tb[run];
        let start = &r["_hparams_/session_start_info"]["session_start_info"];
        let hp = &start["hparams"];
        assert_eq!(
            hp["model.flow_fit.flow[0].planar.length"], k,
            "{run}: {start}"
        );
        assert_eq!(hp["model"], "flow_fit", "{run}");
        assert_eq!(hp["model.flow_fit.flow[0]"], "planar", "{run}");
        assert_eq!(hp["model.flow_fit.target"], "U1", "{run}");
        assert_eq!(hp["train.optimizer.lr"], 0.01, "{run}");
        assert!(
            hp.get("name").is_none() && hp.get("logging.log_every").is_none(),
            "{run}: {hp}"
        );
        assert_eq!(start["group_name"], run);
        let end = &r["_hparams_/session_end_info"]["session_end_info"];
        assert_eq!(end["status"], "STATUS_SUCCESS", "{run}: {end}");
        let scalars: Vec<&str> = r["scalars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(scalars.contains(&"final/kl"), "{run}: {scalars:?}");
        assert!(
            !scalars
                .iter()
                .any(|s| *s == "final/threads" || *s == "final/steps_per_sec"),
            "{scalars:?}"
        );
    }

    // The sweep's root: one experiment naming the setting that varies and the runs' metrics.
    let exp = &tb["."]["_hparams_/experiment"]["experiment"];
    let infos = exp["hparam_infos"].as_array().unwrap();
    let names: Vec<&str> = infos.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["model.flow_fit.flow[0].planar.length"], "{exp}");
    assert_eq!(infos[0]["type"], "DATA_TYPE_FLOAT64");
    let domain: Vec<f64> = infos[0]["domain_discrete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(domain, [1.0, 3.0]);
    let metrics: Vec<&str> = exp["metric_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"]["tag"].as_str().unwrap())
        .collect();
    for m in ["final/kl", "final/elbo"] {
        assert!(metrics.contains(&m), "{metrics:?}");
    }
    assert!(!metrics.iter().any(|m| m.contains("steps")), "{metrics:?}");
}
