//! A small table of every HI-VAE column type, as the release's files, and a run config for it.
use std::path::Path;

/// A 5-column table with every type, 300 rows, written as the release's files.
pub fn synthetic(dir: &Path) {
    let mut data = String::new();
    for i in 0..300 {
        let g = (i % 3) as f64;
        let real = g * 2.0 - 2.0 + ((i * 37 % 11) as f64 - 5.0) / 10.0;
        let pos = (g + 1.0) * 3.0 + (i % 5) as f64 / 4.0;
        let count = (g as i64) * 2 + (i % 2) as i64;
        let cat = (g as i64) + 1;
        let ord = ((g as i64) + (i % 2) as i64).min(3) + 1;
        data += &format!("{real},{pos},{count},{cat},{ord}\n");
    }
    std::fs::write(dir.join("data.csv"), data).unwrap();
    std::fs::write(
        dir.join("types.csv"),
        "type,dim,nclass\r\nreal,1,\r\npos,1,\r\ncount,1,\r\ncat,3,3\r\nordinal,4,4\r\n",
    )
    .unwrap();
    let mask: String = (1..=300)
        .filter(|r| r % 4 == 0)
        .map(|r| format!("{r},{}\n", r % 5 + 1))
        .collect();
    std::fs::write(dir.join("mask.csv"), mask).unwrap();
}

pub fn config(dir: &Path, name: &str, epochs: i64, extra: &str) -> String {
    format!(
        r#"{{ "name": "{name}",
  "model": {{ "hivae": {{ "data": {{ "csv": "{d}/data.csv", "types": "{d}/types.csv", "missing": {{ "mask": "{d}/mask.csv" }} }}{extra} }} }},
  "train": {{ "epochs": {epochs}, "batch_size": 50, "optimizer": {{ "lr": 0.01 }}, "beta": {{ "start": 1.0, "end": 1.0, "anneal_steps": 0 }} }},
  "runtime": {{ "threads": 1, "device": "cpu" }},
  "logging": {{ "every_epoch": true }} }}"#,
        d = dir.display()
    )
}
