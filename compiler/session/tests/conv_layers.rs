//! The `Conv2d` layer in groups and `Conv2dSame`, trained for a few steps on both
//! backends: the checkpoint holds the grouped kernel shapes, and the losses agree.

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_testing::files::Scratch;

fn setup(tag: &str) -> Scratch {
    let dir = Scratch::new(&format!("convl-{tag}"));
    let mut csv = (0..17)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for r in 0..6 {
        let row: Vec<String> = (0..17)
            .map(|c| format!("{}", ((r * 7 + c * 3) % 11) as f32 / 11.0 - 0.4))
            .collect();
        csv += &(row.join(",") + "\n");
    }
    std::fs::write(dir.path("d.csv"), csv).unwrap();
    let src = "use std::nn::{Conv2d, Conv2dSame}
use std::losses::mse
model Net {
    grouped = Conv2d(4, 4, 1, groups = 2)
    same = Conv2dSame(4, 2, 2, groups = 2)
    fn forward(x: [B, 16]) -> [B, 1] {
        let y = reshape(x, [B, 4, 2, 2]) |> grouped |> same
        sum(reshape(y, [B, 8]), axis = 1, keepdims = true)
    }
}
dataset tiny {
    train = (x: csv(\"d.csv\")[:, 0:16], y: csv(\"d.csv\")[:, 16:17])
}
train Net on tiny {
    batch = 3
    loss = mse(model(x), y)
    optimizer = sgd(lr = 0.05)
    shuffle = false
}
";
    std::fs::write(dir.path("net.dnn"), src).unwrap();
    dir
}

fn train(dir: &Path, backend: BackendKind) -> (f64, Vec<(String, Vec<usize>)>) {
    let db = RootDatabase::new();
    let file = db.open(&dir.join("net.dnn")).unwrap();
    let diags = file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:#?}");
    let job = dnnc_session::job(&db, file).unwrap();
    let out = dir.join(format!("{backend:?}.safetensors"));
    let opts = TrainOptions {
        epochs: Some(2),
        seed: Some(3),
        ..TrainOptions::quiet(backend, out.clone())
    };
    let summary = dnnc_session::train(&job, &opts).unwrap();
    let shapes = dnnc_runtime::checkpoint::load(&out)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.shape.clone()))
        .collect();
    (summary.get("train_loss").unwrap(), shapes)
}

#[test]
fn grouped_and_same_layers_train_alike_on_both_backends() {
    let dir = setup("both");
    let (interp, shapes) = train(dir.dir(), BackendKind::Interp);
    let (native, native_shapes) = train(dir.dir(), BackendKind::Cranelift);
    assert_eq!(shapes, native_shapes);
    let w = |name: &str| shapes.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(w("grouped.W"), [4, 2, 1, 1]);
    assert_eq!(w("same.W"), [2, 2, 2, 2]);
    assert!(interp.is_finite());
    assert!(
        (interp - native).abs() <= 1e-4 * interp.abs().max(1.0),
        "{interp} vs {native}"
    );
}
