//! The MNIST IDX loader, on small files written here in the same format, and the image data
//! built on it: the original files' split, seeded batches and binarization on the npm split.
mod common;
use common::*;
use flowlab::data::mnist;
use tch::Kind;

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803, n, rows, cols] {
        v.extend(x.to_be_bytes());
    }
    v.extend(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x801, labels.len() as u32] {
        v.extend(x.to_be_bytes());
    }
    v.extend(labels);
    v
}

#[test]
fn reads_images_and_labels_and_scales_to_unit_interval() {
    let dir = scratch("mnist-ok");
    let pixels: Vec<u8> = (0..3 * 4 * 2).map(|i| (i * 10) as u8).collect();
    std::fs::write(
        dir.join("val-images-idx3-ubyte"),
        idx_images(3, 4, 2, &pixels),
    )
    .unwrap();
    std::fs::write(dir.join("val-labels-idx1-ubyte"), idx_labels(&[7, 0, 9])).unwrap();
    let split = mnist::load(&dir, "val").unwrap();
    assert_eq!((split.rows, split.cols), (4, 2));
    assert_eq!(split.images.size(), vec![3, 8]);
    assert_eq!(Vec::<i64>::try_from(&split.labels).unwrap(), vec![7, 0, 9]);
    assert!((split.images.double_value(&[1, 0]) - 80.0 / 255.0).abs() < 1e-7);
}

#[test]
fn corrupt_files_are_named() {
    let dir = scratch("mnist-bad");
    let images = dir.join("train-images-idx3-ubyte");
    let labels = dir.join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_labels(&[1, 2])).unwrap();
    // Truncated pixel data.
    std::fs::write(&images, idx_images(2, 28, 28, &[0u8; 1000])).unwrap();
    let err = mnist::load(&dir, "train").err().unwrap().to_string();
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("truncated"),
        "{err}"
    );
    // Wrong magic: a label file where images belong.
    std::fs::write(&images, idx_labels(&[1, 2])).unwrap();
    let err = mnist::load(&dir, "train").err().unwrap().to_string();
    assert!(err.contains("not an IDX image file"), "{err}");
    // Counts disagree.
    std::fs::write(&images, idx_images(3, 2, 2, &[0u8; 12])).unwrap();
    let err = mnist::load(&dir, "train").err().unwrap().to_string();
    assert!(err.contains("3 images but 2 labels"), "{err}");
    // A label that is not a digit.
    std::fs::write(&images, idx_images(2, 2, 2, &[0u8; 8])).unwrap();
    std::fs::write(&labels, idx_labels(&[1, 12])).unwrap();
    let err = mnist::load(&dir, "train").err().unwrap().to_string();
    assert!(err.contains("label 12"), "{err}");
    // Missing files.
    let err = mnist::load(&dir, "test").err().unwrap().to_string();
    assert!(err.contains("test-images-idx3-ubyte"), "{err}");
}

/// `make mnist-full` verifies the SHA-256 of every file: a corrupt or missing file is refused,
/// naming it with both hashes.
#[test]
fn the_full_mnist_fetcher_refuses_files_that_do_not_match_their_hashes() {
    let dir = common::scratch("mnist-full-verify");
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
    ] {
        std::fs::write(dir.join(name), b"not mnist").unwrap();
    }
    let o = std::process::Command::new(common::python())
        .args([
            "data/fetch_mnist_full.py",
            "--verify",
            dir.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("4 of 4 MNIST files do not verify"), "{e}");
    assert!(
        e.contains("train-images-idx3-ubyte: sha256 ") && e.contains("expected ba891046e650"),
        "{e}"
    );
    assert!(e.contains("t10k-labels-idx1-ubyte: sha256 missing"), "{e}");
}

#[test]
fn batches_are_seeded_epochs_cover_the_data_and_binarization_follows_the_config() {
    use flowlab::data::images::{Binarization, ImageData, ImageDataConfig};
    let cfg = ImageDataConfig {
        max_train: Some(300),
        max_eval: Some(50),
        ..Default::default()
    };
    let data = ImageData::load(&cfg, tch::Device::Cpu).unwrap();
    assert_eq!(data.steps_per_epoch(100), 3);
    // One epoch visits every image once: the grey levels of its batches sum to the data's.
    let grey = ImageData::load(
        &ImageDataConfig {
            binarize: Binarization::None,
            ..cfg.clone()
        },
        tch::Device::Cpu,
    )
    .unwrap();
    let epoch: f64 = (0..3)
        .map(|s| grey.train_batch(s, 100).sum(Kind::Double).double_value(&[]))
        .sum();
    assert!((epoch - grey.train.sum(Kind::Double).double_value(&[])).abs() < 1e-3);
    // The next epoch is another order.
    assert!(!grey.train_batch(3, 100).equal(&grey.train_batch(0, 100)));
    // Dynamic: bits, redrawn at every visit; reproducible from the generator's seed.
    tch::manual_seed(5);
    let a = data.train_batch(0, 100);
    let b = data.train_batch(0, 100);
    tch::manual_seed(5);
    let a_again = data.train_batch(0, 100);
    assert!(a.equal(&a_again) && !a.equal(&b));
    assert!(a.eq(0.0).logical_or(&a.eq(1.0)).all().int64_value(&[]) == 1);
    // Evaluation images are binarized once, the same for every model and run.
    let again = ImageData::load(&cfg, tch::Device::Cpu).unwrap();
    assert!(data.test.equal(&again.test) && data.val.equal(&again.val));
    // Static: the training bits are fixed too.
    let stat = ImageData::load(
        &ImageDataConfig {
            binarize: Binarization::Static,
            ..cfg
        },
        tch::Device::Cpu,
    )
    .unwrap();
    let x = stat.train_batch(0, 100);
    assert!(x.equal(&stat.train_batch(0, 100)));
}

#[test]
fn the_original_mnist_files_load_with_validation_carved_from_training() {
    use flowlab::data::images::{ImageData, ImageDataConfig, Layout};
    let dir = scratch("mnist-original");
    let idx = |magic: u32, dims: &[u32], body: Vec<u8>| {
        let mut v: Vec<u8> = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(body);
        v
    };
    for (prefix, n) in [("train", 12u32), ("t10k", 5)] {
        let pixels: Vec<u8> = (0..n * 4).map(|i| (i % 256) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx(0x803, &[n, 2, 2], pixels),
        )
        .unwrap();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(0x801, &[n], labels),
        )
        .unwrap();
    }
    let cfg = ImageDataConfig {
        dir: Some(dir.clone()),
        layout: Layout::Original,
        n_val: 3,
        binarize: flowlab::data::images::Binarization::None,
        ..Default::default()
    };
    let d = ImageData::load(&cfg, tch::Device::Cpu).unwrap();
    assert_eq!(
        (d.train.size()[0], d.val.size()[0], d.test.size()[0]),
        (9, 3, 5)
    );
    assert_eq!((d.rows, d.cols), (2, 2));
    // Validation is the last 3 training images: pixels 36..47 / 255.
    assert!((d.val.double_value(&[0, 0]) - 36.0 / 255.0).abs() < 1e-6);
    let err = ImageData::load(&ImageDataConfig { n_val: 12, ..cfg }, tch::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("n_val = 12"), "{err}");
}
