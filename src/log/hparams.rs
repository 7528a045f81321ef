//! TensorBoard's HParams plugin data, so the HParams dashboard lists runs as a sortable table
//! (with parallel coordinates) of their settings and final metrics.
//!
//! Each run writes a session-start record (its flattened config as hyperparameters) and, when
//! it finishes, a session-end record; its final metrics are scalars in the same run. A sweep
//! writes one experiment record at its root naming the settings that vary and the metrics.
//! Messages follow `tensorboard/plugins/hparams/{api,plugin_data}.proto` (plugin data version 0).
use super::tensorboard::EventWriter;
use anyhow::Result;
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;

pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// `google.protobuf.Value` (the kinds hyperparameters take).
#[derive(Clone, PartialEq, Message)]
struct PbValue {
    #[prost(oneof = "Kind", tags = "2, 3, 4, 6")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "6")]
    List(PbList),
}

#[derive(Clone, PartialEq, Message)]
struct PbList {
    #[prost(message, repeated, tag = "1")]
    values: Vec<PbValue>,
}

#[derive(Clone, PartialEq, Message)]
struct PluginData {
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(oneof = "Data", tags = "2, 3, 4")]
    data: Option<Data>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Data {
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    #[prost(message, tag = "3")]
    SessionStart(SessionStart),
    #[prost(message, tag = "4")]
    SessionEnd(SessionEnd),
}

#[derive(Clone, PartialEq, Message)]
struct Experiment {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(double, tag = "3")]
    time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    metric_infos: Vec<MetricInfo>,
    #[prost(string, tag = "6")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct HParamInfo {
    #[prost(string, tag = "1")]
    name: String,
    /// DataType: 1 string, 2 bool, 3 float64.
    #[prost(int32, tag = "4")]
    data_type: i32,
    #[prost(message, optional, tag = "5")]
    domain_discrete: Option<PbList>,
    #[prost(bool, tag = "7")]
    differs: bool,
}

#[derive(Clone, PartialEq, Message)]
struct MetricName {
    #[prost(string, tag = "1")]
    group: String,
    #[prost(string, tag = "2")]
    tag: String,
}

#[derive(Clone, PartialEq, Message)]
struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    name: Option<MetricName>,
    #[prost(string, tag = "3")]
    display_name: String,
}

#[derive(Clone, PartialEq, Message)]
struct SessionStart {
    #[prost(btree_map = "string, message", tag = "1")]
    hparams: BTreeMap<String, PbValue>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

#[derive(Clone, PartialEq, Message)]
struct SessionEnd {
    /// Status: 1 success, 2 failure.
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

/// A hyperparameter's value: what a config leaf becomes.
fn pb_value(v: &Value) -> Option<PbValue> {
    let kind = match v {
        Value::Number(n) => Kind::Number(n.as_f64()?),
        Value::String(s) => Kind::Text(s.clone()),
        Value::Bool(b) => Kind::Bool(*b),
        // Lists (hidden sizes, …) as their JSON text: TensorBoard tabulates scalars only.
        Value::Array(_) => Kind::Text(v.to_string()),
        _ => return None,
    };
    Some(PbValue { kind: Some(kind) })
}

/// A config's settings as `path → value`, paths in the `--set` syntax
/// (`model.flow_fit.flow[0].planar.length`). An object with a single object-valued key is a
/// choice among kinds (`"model": {"vae": …}`, `{"planar": {…}}`): its path also gets the kind's
/// name (`model = "vae"`, `model.flow_fit.flow[0] = "planar"`). The run's name and its logging
/// settings are left out: they do not change what is learned.
pub fn flatten_config(cfg: &Value) -> BTreeMap<String, Value> {
    fn walk(path: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) => {
                if let (1, Some((kind, Value::Object(_)))) = (map.len(), map.iter().next()) {
                    if !path.is_empty() {
                        out.insert(path.to_string(), Value::String(kind.clone()));
                    }
                }
                for (k, child) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if p != "name" && p != "logging" {
                        walk(&p, child, out);
                    }
                }
            }
            Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                for (i, child) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), child, out);
                }
            }
            Value::Null => {}
            leaf => {
                out.insert(path.to_string(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", cfg, &mut out);
    out
}

fn write(events: &mut EventWriter, tag: &str, data: Data, step: i64) -> Result<()> {
    let content = PluginData {
        version: 0,
        data: Some(data),
    }
    .encode_to_vec();
    events.add_plugin_record(tag, "hparams", content, step)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A run's session-start record: its settings as hyperparameters, grouped under its name.
pub fn write_session_start(events: &mut EventWriter, run_name: &str, config: &Value) -> Result<()> {
    let hparams = flatten_config(config)
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), pb_value(v)?)))
        .collect();
    let start = SessionStart {
        hparams,
        group_name: run_name.to_string(),
        start_time_secs: now(),
    };
    write(events, SESSION_START_TAG, Data::SessionStart(start), 0)
}

/// A run's session-end record.
pub fn write_session_end(events: &mut EventWriter, success: bool, step: i64) -> Result<()> {
    let end = SessionEnd {
        status: if success { 1 } else { 2 },
        end_time_secs: now(),
    };
    write(events, SESSION_END_TAG, Data::SessionEnd(end), step)
}

/// A sweep's experiment record: the settings that differ between `configs` (with their values
/// as discrete domains) and the metric tags the runs report.
pub fn write_experiment(
    events: &mut EventWriter,
    name: &str,
    configs: &[Value],
    metric_tags: &[String],
) -> Result<()> {
    let flat: Vec<BTreeMap<String, Value>> = configs.iter().map(flatten_config).collect();
    let mut domains: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in &flat {
        for (k, v) in f {
            let d = domains.entry(k.clone()).or_default();
            if !d.contains(v) {
                d.push(v.clone());
            }
        }
    }
    let hparam_infos = domains
        .into_iter()
        .filter(|(k, d)| d.len() > 1 || flat.iter().any(|f| !f.contains_key(k)))
        .map(|(name, domain)| {
            let data_type = match domain.first() {
                Some(Value::Number(_)) if domain.iter().all(Value::is_number) => 3,
                Some(Value::Bool(_)) if domain.iter().all(Value::is_boolean) => 2,
                _ => 1,
            };
            let values = if data_type == 1 {
                domain
                    .iter()
                    .map(|v| {
                        pb_value(&Value::String(
                            v.as_str().map_or_else(|| v.to_string(), String::from),
                        ))
                    })
                    .collect::<Option<Vec<_>>>()
            } else {
                domain.iter().map(pb_value).collect()
            };
            HParamInfo {
                name,
                data_type,
                domain_discrete: values.map(|values| PbList { values }),
                differs: true,
            }
        })
        .collect();
    let metric_infos = metric_tags
        .iter()
        .map(|t| MetricInfo {
            name: Some(MetricName {
                group: String::new(),
                tag: t.clone(),
            }),
            display_name: t.clone(),
        })
        .collect();
    let experiment = Experiment {
        description: format!("flowlab sweep {name}"),
        time_created_secs: now(),
        hparam_infos,
        metric_infos,
        name: name.to_string(),
    };
    write(events, EXPERIMENT_TAG, Data::Experiment(experiment), 0)
}
