//! The cost of augmenting one MNIST batch (64 images of 28×28): every augmentation
//! alone and all six together, as the median and the fastest of 2000 batches (the
//! fastest is the cost on an idle core). Run with
//! `cargo run --release -p dnnc-runtime --example augment_cost`.

use dnnc_runtime::{augment_batch, Augmentation, Tensor};

fn main() {
    let list = [
        Augmentation::RandomCrop { padding: 2 },
        Augmentation::Rotate { degrees: 10.0 },
        Augmentation::HFlip { p: 0.5 },
        Augmentation::Noise { std: 0.05 },
        Augmentation::Brightness { amount: 0.1 },
        Augmentation::Contrast { amount: 0.1 },
    ];
    let mut t = Tensor::f32(vec![64, 28, 28], vec![0.5; 64 * 784]).unwrap();
    let idx: Vec<usize> = (0..64).collect();
    let mut scratch = Vec::new();
    let mut cases: Vec<(String, &[Augmentation])> = vec![("all six".into(), &list[..])];
    cases.extend(
        list.iter()
            .map(|a| (format!("{a:?}"), std::slice::from_ref(a))),
    );
    for (name, l) in cases {
        let mut times: Vec<f64> = (0..2000)
            .map(|e| {
                let start = std::time::Instant::now();
                augment_batch(&mut t, &idx, l, 42, e, &mut scratch).unwrap();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.1} µs, fastest {:.1} µs per batch",
            times[times.len() / 2],
            times[0]
        );
    }
}
