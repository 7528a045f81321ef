//! `flowlab weights FILE [--map …]`: the names, shapes and element types of a weight file
//! (.safetensors, tch .ot, PyTorch .pt/.pth), optionally after `--init-from`'s name mapping.
use anyhow::Result;
use clap::Args;
use flowlab::experiment::weights::{map_names, read_tensors, MapRule};
use std::path::PathBuf;

#[derive(Args)]
pub struct WeightsArgs {
    /// The weight file.
    file: PathBuf,
    /// Show names after these rules, as `run --init-from FILE --map …` would see them.
    #[arg(long = "map", value_name = "REGEX=REPLACEMENT")]
    map: Vec<MapRule>,
}

pub fn run(args: WeightsArgs) -> Result<()> {
    let mapped = map_names(read_tensors(&args.file)?, &args.map)?;
    let mut tensors = mapped.tensors;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let width = tensors
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  {:>16}  kind", "name", "shape");
    let mut total = 0;
    for (name, t) in &tensors {
        total += t.numel();
        println!(
            "{name:width$}  {:>16}  {:?}",
            format!("{:?}", t.size()),
            t.kind()
        );
    }
    println!("{} tensors, {total} values", tensors.len());
    if !args.map.is_empty() && !mapped.unmatched.is_empty() {
        eprintln!("note: no --map rule matched {:?}", mapped.unmatched);
    }
    Ok(())
}
