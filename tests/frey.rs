//! Frey Faces as the Sylvester-flow paper uses it: the release's images split by its three
//! permutations, a 256-way categorical decoder per pixel, and −ELBO in bits/dim.
mod common;
use common::*;
use flowlab::data::images::{ImageData, ImageDataConfig};
use flowlab::model::vae::Likelihood;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

fn frey_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/freyfaces")
}

fn frey_config(permutation: &str) -> ImageDataConfig {
    serde_json::from_value(serde_json::json!({
        "dir": frey_dir(), "layout": "permuted", "images": "frey-images-idx3-ubyte",
        "permutation": permutation, "n_val": 200, "n_test": 200, "binarize": "none"
    }))
    .unwrap()
}

#[test]
fn the_permuted_layout_gives_the_papers_splits() {
    let bytes = std::fs::read(frey_dir().join("frey-images-idx3-ubyte")).unwrap();
    let pixel = |image: usize, i: usize| bytes[16 + image * 560 + i] as f64 / 255.0;
    for seed in [123, 321, 231] {
        let name = format!("split-seed{seed}.txt");
        let perm: Vec<usize> = std::fs::read_to_string(frey_dir().join(&name))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        let d = ImageData::load(&frey_config(&name), tch::Device::Cpu).unwrap();
        assert_eq!((d.rows, d.cols), (28, 20));
        let sizes = [&d.train, &d.val, &d.test].map(|t| t.size()[0]);
        assert_eq!(sizes, [1565, 200, 200]);
        // Row r of each split is image perm[start + r] of the file.
        for (t, start) in [(&d.train, 0), (&d.val, 1565), (&d.test, 1765)] {
            for r in [0, 7, t.size()[0] - 1] {
                for i in [0, 250, 559] {
                    let got = t.double_value(&[r, i as i64]);
                    let want = pixel(perm[start + r as usize], i);
                    assert!((got - want).abs() < 1e-6, "seed {seed}, row {r}");
                }
            }
        }
    }
}

#[test]
fn bad_permutation_files_are_named_with_their_line() {
    let dir = scratch("frey-perm");
    std::fs::copy(
        frey_dir().join("frey-images-idx3-ubyte"),
        dir.join("frey-images-idx3-ubyte"),
    )
    .unwrap();
    let good: Vec<String> = (0..1965).map(|i| i.to_string()).collect();
    let load = |text: String| {
        std::fs::write(dir.join("p.txt"), text).unwrap();
        let mut c = frey_config("p.txt");
        c.dir = Some(dir.clone());
        ImageData::load(&c, tch::Device::Cpu).map(|d| d.test.size()[0])
    };
    // A BOM, CRLF line ends and a trailing blank line are read as plain lines.
    assert_eq!(
        load(format!("\u{feff}{}\r\n\r\n", good.join("\r\n"))).unwrap(),
        200
    );
    let mut twice = good.clone();
    twice[5] = "3".into();
    let mut outside = good.clone();
    outside[9] = "1965".into();
    let mut word = good.clone();
    word[2] = "two".into();
    for (text, want) in [
        (twice.join("\n"), "line 6: index 3 appears twice"),
        (outside.join("\n"), "line 10: index 1965 is outside 0..1965"),
        (word.join("\n"), "line 3: `two` is not an image index"),
        (
            good[..1900].join("\n"),
            "1900 indices, but the image file holds 1965",
        ),
    ] {
        let err = format!("{:#}", load(text).unwrap_err());
        assert!(err.contains(want) && err.contains("p.txt"), "{err}");
    }
}

#[test]
fn the_categorical_decoder_is_a_softmax_over_256_grey_levels() {
    tch::manual_seed(0);
    let (rows, pixels) = (2, 3);
    let out = Tensor::randn([rows, 256 * pixels], (Kind::Double, tch::Device::Cpu)) * 3.0;
    let levels = [[0i64, 128, 255], [17, 254, 1]];
    let x = Tensor::from_slice(&levels.concat())
        .reshape([rows, pixels])
        .to_kind(Kind::Double)
        / 255.0;
    let lp = Likelihood::Categorical.log_prob(&out, &x);
    let mean = Likelihood::Categorical.mean(&out);
    for r in 0..rows {
        let (mut want, mut want_mean) = (0.0, vec![0.0; pixels as usize]);
        for p in 0..pixels {
            // Channel-major: logit of level k for pixel p is out[r, k·P + p].
            let logits: Vec<f64> = (0..256)
                .map(|k| out.double_value(&[r, k * pixels + p]))
                .collect();
            let norm = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
            want += logits[levels[r as usize][p as usize] as usize] - norm;
            want_mean[p as usize] = (0..256)
                .map(|k| (logits[k] - norm).exp() * k as f64 / 255.0)
                .sum();
        }
        assert!((lp.double_value(&[r]) - want).abs() < 1e-9);
        for p in 0..pixels {
            assert!((mean.double_value(&[r, p]) - want_mean[p as usize]).abs() < 1e-9);
        }
    }
}

#[test]
fn a_frey_run_reports_bits_per_dim_and_refuses_binary_pixels() {
    let dir = scratch("frey-run");
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/sylvester/frey-vae-mlp.json"),
    )
    .unwrap()
    .replace("\"data/freyfaces\"", &format!("{:?}", frey_dir()));
    let cfg = write(&dir, "frey.json", &config);
    let o = flowlab(&[
        "run",
        cfg.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--set",
        "train.epochs=null",
        "--set",
        "train.steps=2",
        "--set",
        "logging.every_epoch=false",
        "--set",
        "model.vae.architecture={\"mlp\": {\"hidden\": [32]}}",
        "--set",
        "model.vae.evaluation.importance_samples=4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("frey-vae-mlp/metrics.json")).unwrap(),
    )
    .unwrap();
    let per_dim = 560.0 * std::f64::consts::LN_2;
    let bpd = m["test_elbo_bits_per_dim"].as_f64().unwrap();
    assert!((bpd + m["test_elbo"].as_f64().unwrap() / per_dim).abs() < 1e-9);
    // Two steps from a random start: near the 8 bits of a uniform grey level, and positive.
    assert!(bpd > 0.0 && bpd < 12.0, "{bpd}");
    let nll_bpd = m["test_nll_bits_per_dim"].as_f64().unwrap();
    assert!(
        nll_bpd > 0.0 && (nll_bpd - bpd).abs() < 1.0,
        "{nll_bpd} against {bpd}"
    );

    let o = flowlab(&[
        "run",
        cfg.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--set",
        "name=\"binary\"",
        "--set",
        "model.vae.data.binarize=\"static\"",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("a categorical decoder models grey levels"),
        "{}",
        stderr(&o)
    );
}
