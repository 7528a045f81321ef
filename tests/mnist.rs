//! The MNIST IDX loader, on small files written here in the same format.
mod common;
use common::*;
use flowlab::data::mnist;

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
