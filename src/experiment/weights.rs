//! Named tensors from weight files, and the name-mapping rules of `--init-from … --map`.
//!
//! Formats (by extension): `.safetensors`, tch's `.ot`, and PyTorch's `torch.save` files
//! (`.pt`, `.pth`, `.bin`), which are read with the `pytorch-reader` crate: it parses the pickle
//! inside as data and never executes it. A pickle holding anything but tensors, numbers,
//! strings and plain containers (lists, tuples, dicts, OrderedDict) is refused, naming the
//! Python type it holds.
use anyhow::{anyhow, bail, ensure, Context, Result};
use pytorch_reader::{DType, PickleValue, PytorchReader};
use regex::Regex;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Reads every named tensor of a weight file.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        bail!("weight file {} does not exist", path.display());
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let res = match ext {
        "safetensors" => Tensor::read_safetensors(path).map_err(anyhow::Error::from),
        "ot" => Tensor::load_multi(path).map_err(anyhow::Error::from),
        "pt" | "pth" | "bin" => return read_pytorch(path),
        _ => bail!(
            "weight file {}: unknown format (expected .safetensors, .ot, or PyTorch's .pt/.pth/.bin)",
            path.display()
        ),
    };
    res.map_err(|e| {
        anyhow!(
            "weight file {} is unreadable (truncated or corrupt?): {e}",
            path.display()
        )
    })
}

fn kind_of(d: DType) -> Result<Kind> {
    Ok(match d {
        DType::F64 => Kind::Double,
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
        other => bail!("element type {other:?} has no libtorch equivalent"),
    })
}

/// Finds the first object that is not data: its Python type name.
fn foreign_object(v: &PickleValue) -> Option<String> {
    match v {
        PickleValue::Unsupported(name) if name == "torch.Tensor" => None,
        PickleValue::Unsupported(name) => Some(name.clone()),
        PickleValue::List(items) => items.iter().find_map(foreign_object),
        PickleValue::Dict(map) => map.values().find_map(foreign_object),
        _ => None,
    }
}

/// A `torch.save` file's tensors, by their dotted paths through the saved dictionaries.
fn read_pytorch(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let what = || format!("PyTorch file {}", path.display());
    let data = PytorchReader::read_pickle_data(path, None).map_err(|e| {
        anyhow!(
            "{}: unreadable (truncated, corrupt, or not a torch.save file?): {e}",
            what()
        )
    })?;
    if let Some(name) = foreign_object(&data) {
        bail!(
            "{}: refused: its pickle holds a `{name}` object, not only tensors and plain containers \
             (flowlab never executes pickle code; save `model.state_dict()` instead of the model or other objects)",
            what()
        );
    }
    let reader = PytorchReader::new(path).map_err(|e| anyhow!("{}: {e}", what()))?;
    let mut out = Vec::new();
    for (name, t) in reader.tensors() {
        let kind = kind_of(t.dtype()).with_context(|| format!("{}: tensor `{name}`", what()))?;
        let bytes = t
            .read()
            .with_context(|| format!("{}: reading tensor `{name}`", what()))?;
        let shape: Vec<i64> = t.shape().iter().map(|&s| s as i64).collect();
        out.push((name.clone(), Tensor::from_data_size(&bytes, &shape, kind)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// One `--map 'REGEX=REPLACEMENT'` rule. The replacement may use the regex's groups (`$1`);
/// one ending in `[INDEX]` (e.g. `flow.0.u[$1]`) stacks the tensors it names, in index order,
/// into one tensor along a new first dimension.
#[derive(Clone, Debug)]
pub struct MapRule {
    pattern: Regex,
    replacement: String,
}

impl std::str::FromStr for MapRule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (re, rep) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--map {s:?}: expected REGEX=REPLACEMENT"))?;
        let pattern = Regex::new(&format!("^(?:{re})$"))
            .map_err(|e| anyhow!("--map {s:?}: bad regular expression: {e}"))?;
        Ok(MapRule {
            pattern,
            replacement: rep.to_string(),
        })
    }
}

/// Tensors renamed by `rules` and stacked where a name ends in `[INDEX]`.
pub struct Mapped {
    pub tensors: Vec<(String, Tensor)>,
    /// Original names no rule matched (kept under their own names).
    pub unmatched: Vec<String>,
}

/// Applies the rules in order to each name (each rule sees the previous one's result; a rule
/// must match the whole name), then stacks indexed names.
pub fn map_names(named: Vec<(String, Tensor)>, rules: &[MapRule]) -> Result<Mapped> {
    let mut unmatched = Vec::new();
    let mut plain = Vec::new();
    let mut stacks: BTreeMap<String, BTreeMap<i64, (String, Tensor)>> = BTreeMap::new();
    let indexed = Regex::new(r"^(.*)\[(\d+)\]$").expect("valid regex");
    for (original, t) in named {
        let mut name = original.clone();
        let mut matched = rules.is_empty();
        for r in rules {
            if r.pattern.is_match(&name) {
                name = r
                    .pattern
                    .replace(&name, r.replacement.as_str())
                    .into_owned();
                matched = true;
            }
        }
        if !matched {
            unmatched.push(original.clone());
        }
        match indexed.captures(&name) {
            Some(c) => {
                let index: i64 = c[2].parse()?;
                let slot = stacks.entry(c[1].to_string()).or_default();
                if let Some((other, _)) = slot.insert(index, (original.clone(), t)) {
                    bail!("--map: `{other}` and `{original}` both become {name}");
                }
            }
            None => plain.push((name, t)),
        }
    }
    for (base, parts) in stacks {
        let k = parts.keys().max().map_or(0, |m| m + 1);
        let missing: Vec<i64> = (0..k).filter(|i| !parts.contains_key(i)).collect();
        ensure!(
            missing.is_empty(),
            "--map: stacking `{base}` needs indices 0..{k}, missing {missing:?}"
        );
        let first = parts[&0].1.size();
        for (original, t) in parts.values() {
            ensure!(
                t.size() == first,
                "--map: stacking `{base}`: `{original}` has shape {:?}, `{}` has {first:?}",
                t.size(),
                parts[&0].0
            );
        }
        let pieces: Vec<Tensor> = parts.into_values().map(|(_, t)| t).collect();
        plain.push((base, Tensor::stack(&pieces, 0)));
    }
    Ok(Mapped {
        tensors: plain,
        unmatched,
    })
}

/// Whether `from` can be reshaped to `to` by dropping or adding size-1 dimensions only
/// (PyTorch modules often keep a leading 1, as normflows' planar `u` of shape [1, D]).
pub fn same_up_to_unit_dims(from: &[i64], to: &[i64]) -> bool {
    let strip = |s: &[i64]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    strip(from) == strip(to)
}
