//! Training with a dataset's `augment` item: the augmentations change the training
//! batches (and so the losses), are reproducible from the seed, and never touch the
//! test split, whose evaluation is the same with and without `augment`.

use dnnc_testing::files::{write_npy, Scratch};
use std::path::{Path, PathBuf};

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, PassOptions, Summary, TrainOptions};

/// 6×6 images whose target is the brightness of their left half, in a fresh directory,
/// with `plain.dnn` (no augmentation) and `aug.dnn` (every augmentation).
fn setup(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("augment-{tag}"));
    for (split, n) in [("train", 40usize), ("test", 16)] {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let img: Vec<f32> = (0..36)
                .map(|p| ((i * 13 + p * 7) % 17) as f32 / 17.0)
                .collect();
            y.push(
                img.chunks(6)
                    .map(|row| row[..3].iter().sum::<f32>())
                    .sum::<f32>()
                    / 18.0,
            );
            x.extend(img);
        }
        write_npy(&dir.path(&format!("{split}_x.npy")), &[n, 6, 6], &x);
        write_npy(&dir.path(&format!("{split}_y.npy")), &[n, 1], &y);
    }
    for (file, augment) in [
        ("plain.dnn", ""),
        (
            "aug.dnn",
            "augment = (x: [random_crop(1), hflip, rotate(10.0), noise(0.05),
                            brightness(0.2), contrast(0.2)])",
        ),
    ] {
        let src = format!(
            "use std::nn::Dense
use std::losses::mse
use std::shape::flatten
model Lin {{
    fc = Dense(36, 1)
    fn forward(x: [B, 6, 6]) -> [B, 1] {{ x |> flatten |> fc }}
}}
dataset pics {{
    train = (x: npy(\"train_x.npy\"), y: npy(\"train_y.npy\"))
    test  = (x: npy(\"test_x.npy\"), y: npy(\"test_y.npy\"))
    {augment}
}}
train Lin on pics {{
    batch     = 8
    loss      = mse(model(x), y)
    optimizer = sgd(lr = 0.05)
    shuffle   = false
    seed      = 3
}}
"
        );
        std::fs::write(dir.path(file), src).unwrap();
    }
    dir
}

fn options(epochs: usize, seed: Option<u64>, init: Option<PathBuf>, out: PathBuf) -> TrainOptions {
    TrainOptions {
        epochs: Some(epochs),
        seed,
        init,
        ..TrainOptions::quiet(BackendKind::Interp, out)
    }
}

fn train(file: &Path, opts: &TrainOptions) -> Summary {
    let db = RootDatabase::new();
    let f = db.open(file).unwrap();
    assert!(
        file_diagnostics(&db, f).is_empty(),
        "{:#?}",
        file_diagnostics(&db, f)
    );
    let job = dnnc_session::job(&db, f).unwrap();
    dnnc_session::train(&job, opts).unwrap()
}

fn eval(file: &Path, weights: &Path) -> Vec<(String, f64)> {
    let db = RootDatabase::new();
    let f = db.open(file).unwrap();
    let job = dnnc_session::job(&db, f).unwrap();
    let passes = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    dnnc_session::eval(&job, weights, BackendKind::Interp, None, &passes).unwrap()
}

#[test]
fn augmentation_is_reproducible_from_the_seed() {
    let dir = setup("seed");
    let aug = dir.path("aug.dnn");
    // Fixed initial weights and order: only the augmentations' draws depend on the seed.
    let init = dir.path("init.safetensors");
    train(
        &dir.path("plain.dnn"),
        &options(1, None, None, init.clone()),
    );
    let run = |seed: u64, tag: &str| {
        let w = dir.path(&format!("{tag}.safetensors"));
        let s = train(&aug, &options(2, Some(seed), Some(init.clone()), w));
        s.get("train_loss").unwrap()
    };
    let a = run(3, "a");
    let b = run(3, "b");
    let c = run(4, "c");
    assert_eq!(
        a.to_bits(),
        b.to_bits(),
        "the same seed gives the same losses"
    );
    assert_ne!(a, c, "another seed draws other augmentations");
    let w =
        |t: &str| dnnc_runtime::checkpoint::load(&dir.path(&format!("{t}.safetensors"))).unwrap();
    assert_eq!(w("a"), w("b"));
    assert_ne!(w("a"), w("c"));
    // Without `augment`, the same start trains differently.
    let plain = train(
        &dir.path("plain.dnn"),
        &options(2, Some(3), Some(init), dir.path("p.safetensors")),
    );
    assert_ne!(plain.get("train_loss").unwrap(), a);
}

#[test]
fn the_test_split_is_never_augmented() {
    let dir = setup("test");
    let w = dir.path("w.safetensors");
    let summary = train(&dir.path("aug.dnn"), &options(1, None, None, w.clone()));
    // The same weights evaluate the same on the test split with and without `augment`,
    // and as the training run's own evaluation after its epoch did.
    let with = eval(&dir.path("aug.dnn"), &w);
    let without = eval(&dir.path("plain.dnn"), &w);
    assert_eq!(with, without);
    let loss = with.iter().find(|(k, _)| k == "test_loss").unwrap().1;
    assert_eq!(loss.to_bits(), summary.get("test_loss").unwrap().to_bits());
}
