//! Measures the cost of augmenting one MNIST batch (64 images of 28×28) with every augmentation.
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
    for (name, l) in [("all six", &list[..])].into_iter().chain(
        list.iter()
            .map(|a| (format!("{a:?}").leak() as &str, std::slice::from_ref(a))),
    ) {
        let reps = 2000;
        let start = std::time::Instant::now();
        for e in 0..reps {
            augment_batch(&mut t, &idx, l, 42, e, &mut scratch).unwrap();
        }
        println!(
            "{name}: {:.1} µs per batch",
            start.elapsed().as_secs_f64() / reps as f64 * 1e6
        );
    }
}
