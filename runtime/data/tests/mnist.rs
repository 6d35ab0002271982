//! Probes and loads the real MNIST files shipped in `examples/data/mnist/`.

use std::path::Path;

use dnnc_data::{header_of, idx, DType, Data};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/mnist/");

fn check_images(name: &str, count: u64) {
    let path = Path::new(DIR).join(name);
    let header = idx::probe(&path).unwrap();
    assert_eq!(header.elem, DType::U8);
    assert_eq!(header.shape, vec![count, 28, 28]);
    let t = idx::load(&path).unwrap();
    assert_eq!(header_of(&t), header);
    assert_eq!(t.data.len() as u64, count * 28 * 28);
    let Data::U8(pixels) = &t.data else {
        panic!("expected u8 data, got {:?}", t.dtype);
    };
    assert_eq!(pixels.iter().copied().max(), Some(255));
    assert_eq!(pixels.iter().copied().min(), Some(0));
    let f = t.data.to_f32_vec();
    assert_eq!(f.len(), t.data.len());
}

fn check_labels(name: &str, count: u64) {
    let path = Path::new(DIR).join(name);
    let header = idx::probe(&path).unwrap();
    assert_eq!(header.elem, DType::U8);
    assert_eq!(header.shape, vec![count]);
    let t = idx::load(&path).unwrap();
    let Data::U8(labels) = &t.data else {
        panic!("expected u8 data, got {:?}", t.dtype);
    };
    assert_eq!(labels.len() as u64, count);
    let mut seen = [false; 10];
    for &l in labels {
        assert!(l <= 9, "label {l} out of range");
        seen[usize::from(l)] = true;
    }
    assert!(seen.iter().all(|&s| s), "every digit appears");
}

#[test]
fn mnist_train_images() {
    check_images("train-images-idx3-ubyte.gz", 8000);
}

#[test]
fn mnist_train_labels() {
    check_labels("train-labels-idx1-ubyte.gz", 8000);
}

#[test]
fn mnist_test_images() {
    check_images("test-images-idx3-ubyte.gz", 2000);
}

#[test]
fn mnist_test_labels() {
    check_labels("test-labels-idx1-ubyte.gz", 2000);
}
