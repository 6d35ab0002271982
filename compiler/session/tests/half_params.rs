//! Parameters declared `bf16` or `f16` train: the gradient is widened, the update is
//! computed in f32 and rounded once to the parameter's type, on every backend; the
//! checkpoint keeps the declared types, and an f32 checkpoint loads into them rounded.

use std::path::{Path, PathBuf};

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_tensor::DType;
use dnnc_testing::files::Scratch;

fn setup(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("half-{tag}"));
    std::fs::write(dir.path("tiny.csv"), "x1,x2,y\n1,2,3\n2,0,1\n").unwrap();
    let src = "use std::losses::mse
model Lin {
    param w: bf16[2, 1] = constant(0.5)
    param b: f16[1] = zeros
    fn forward(x: [B, 2]) -> [B, 1] { x @ cast(w, f32) + cast(b, f32) }
}
dataset tiny {
    train = (x: csv(\"tiny.csv\")[:, 0:2], y: csv(\"tiny.csv\")[:, 2:3])
}
train Lin on tiny {
    batch = 2
    loss = mse(model(x), y)
    optimizer = sgd(lr = 0.1)
    shuffle = false
}
";
    std::fs::write(dir.path("lin.dnn"), src).unwrap();
    dir
}

fn train(
    dir: &Path,
    backend: BackendKind,
    init: Option<PathBuf>,
) -> Vec<(String, DType, Vec<f32>)> {
    let db = RootDatabase::new();
    let file = db.open(&dir.join("lin.dnn")).unwrap();
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:#?}",
        file_diagnostics(&db, file)
    );
    let job = dnnc_session::job(&db, file).unwrap();
    let out = dir.join(format!("w-{}.safetensors", backend.name()));
    let opts = TrainOptions {
        epochs: Some(1),
        steps: Some(1),
        init,
        ..TrainOptions::quiet(backend, out.clone())
    };
    dnnc_session::train(&job, &opts).unwrap();
    dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.dtype, t.to_f32_vec()))
        .collect()
}

#[test]
fn one_sgd_step_rounds_the_f32_update_to_the_parameters_types() {
    // As in sgd_by_hand.rs: the f32 step gives w = [0.65, 0.8], b = 0.15; rounded to
    // bf16 (8 significant bits) and f16 (11) to nearest.
    let dir = setup("sgd");
    for backend in [BackendKind::Interp, BackendKind::Cranelift] {
        let w = train(dir.dir(), backend, None);
        assert_eq!(
            w[0],
            ("b".to_string(), DType::F16, vec![0.150_024_41]),
            "{backend:?}"
        );
        assert_eq!(
            w[1],
            (
                "w".to_string(),
                DType::BF16,
                vec![0.648_437_5, 0.800_781_25]
            ),
            "{backend:?}"
        );
    }
}

#[test]
fn an_f32_checkpoint_loads_into_half_parameters_rounded() {
    let dir = setup("init");
    let f32s = dir.path("f32.safetensors");
    let w = dnnc_tensor::Tensor::f32(vec![2, 1], vec![0.65, 0.8]).unwrap();
    let b = dnnc_tensor::Tensor::f32(vec![1], vec![0.15]).unwrap();
    dnnc_runtime::checkpoint::save(&f32s, &[("w".to_string(), &w), ("b".to_string(), &b)]).unwrap();
    // One more step from the rounded weights: pred = [0.648 + 1.602 + 0.15, ...].
    let from_file = train(dir.dir(), BackendKind::Interp, Some(f32s));
    let rounded = dir.path("rounded.safetensors");
    let wr = w.cast(DType::BF16);
    let br = b.cast(DType::F16);
    dnnc_runtime::checkpoint::save(&rounded, &[("w".to_string(), &wr), ("b".to_string(), &br)])
        .unwrap();
    let from_rounded = train(dir.dir(), BackendKind::Interp, Some(rounded));
    assert_eq!(from_file, from_rounded);
    assert_eq!(from_file[1].1, DType::BF16);
}
