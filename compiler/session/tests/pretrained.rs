//! Partial `from`: a sub-layer loads one sub-tree of a bigger checkpoint (`from "f" at
//! "prefix"`), and the checker compares what a `from` file holds with the layer before
//! anything runs (E0412: a missing prefix with the prefixes the file has, a shape that
//! differs with both shapes, a file still to come as a warning).

use std::path::Path;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_session::{BackendKind, TrainOptions};
use dnnc_testing::files::Scratch;

/// A model whose backbone is `Part(4, 3)`; trained first, its checkpoint holds
/// `part.lin.W` `[4, 3]`, `part.lin.b` `[3]`, `head.W`, `head.b`.
const BASE: &str = "use std::nn::Dense
use std::losses::mse
layer Part(i: Int, o: Int) {
    lin = Dense(i, o)
    fn forward(x: [B, i]) -> [B, o] { lin(x) }
}
model Base {
    part = Part(4, 3)
    head = Dense(3, 1)
    fn forward(x: [B, 4]) -> [B, 1] { head(part(x)) }
}
dataset d {
    train = (x: csv(\"d.csv\")[:, 0:4], t: csv(\"d.csv\")[:, 4:5])
}
train Base on d {
    batch = 2
    loss = mse(model(x), t)
    optimizer = sgd(lr = 0.1)
}
";

/// A new model reusing the backbone: `FROM` is the sub-layer's clause.
fn reuse(from: &str, width: usize) -> String {
    format!(
        "use std::nn::Dense
use std::losses::mse
layer Part(i: Int, o: Int) {{
    lin = Dense(i, o)
    fn forward(x: [B, i]) -> [B, o] {{ lin(x) }}
}}
model Reuse {{
    body = Part(4, {width}) {from}
    out = Dense({width}, 1)
    fn forward(x: [B, 4]) -> [B, 1] {{ out(body(x)) }}
}}
dataset d {{
    train = (x: csv(\"d.csv\")[:, 0:4], t: csv(\"d.csv\")[:, 4:5])
}}
train Reuse on d {{
    batch = 2
    loss = mse(model(x), t)
    optimizer = sgd(lr = 0.1)
}}
"
    )
}

fn messages(path: &Path) -> Vec<String> {
    let db = RootDatabase::new();
    let file = db.open(path).unwrap();
    file_diagnostics(&db, file)
        .iter()
        .map(|d| {
            format!(
                "{}[{}] {} | {}",
                if d.is_error() { "error" } else { "warning" },
                d.code,
                d.message,
                d.notes.join(" | ")
            )
        })
        .collect()
}

fn train(path: &Path, out: &Path) {
    let db = RootDatabase::new();
    let file = db.open(path).unwrap();
    let job = dnnc_session::job(&db, file).unwrap();
    let opts = TrainOptions {
        steps: Some(1),
        ..TrainOptions::quiet(BackendKind::Cranelift, out.to_path_buf())
    };
    dnnc_session::train(&job, &opts).unwrap();
}

#[test]
fn a_sub_layer_loads_one_sub_tree_of_a_checkpoint() {
    let s = Scratch::new("pretrained-at");
    s.write("d.csv", "a,b,c,d,t\n1,2,3,4,1\n0,1,0,1,0\n");
    train(
        Path::new(&s.write("base.dnn", BASE)),
        &s.path("base.safetensors"),
    );
    // Loaded with its prefix, frozen: after a step the backbone still holds the base's
    // weights, the new head moved.
    let path = s.write(
        "reuse.dnn",
        &reuse("from \"base.safetensors\" at \"part\" frozen", 3),
    );
    assert!(
        messages(Path::new(&path)).is_empty(),
        "{:?}",
        messages(Path::new(&path))
    );
    train(Path::new(&path), &s.path("reuse.safetensors"));
    let base = dnnc_runtime::checkpoint::load(&s.path("base.safetensors")).unwrap();
    let got = dnnc_runtime::checkpoint::load(&s.path("reuse.safetensors")).unwrap();
    let get = |ts: &[(String, dnnc_tensor::Tensor)], n: &str| {
        ts.iter().find(|(k, _)| k == n).unwrap().1.clone()
    };
    assert_eq!(get(&got, "body.lin.W"), get(&base, "part.lin.W"));
    assert_eq!(get(&got, "body.lin.b"), get(&base, "part.lin.b"));
}

#[test]
fn weights_that_do_not_fit_are_reported_at_check_time() {
    let s = Scratch::new("pretrained-misfit");
    s.write("d.csv", "a,b,c,d,t\n1,2,3,4,1\n0,1,0,1,0\n");
    train(
        Path::new(&s.write("base.dnn", BASE)),
        &s.path("base.safetensors"),
    );
    // No prefix: the tensors are under `part.`.
    let m = messages(Path::new(
        &s.write("a.dnn", &reuse("from \"base.safetensors\"", 3)),
    ));
    assert!(
        m.len() == 1 && m[0].starts_with("error[E0412]") && m[0].contains("`lin.W` is missing"),
        "{m:?}"
    );
    // A prefix the file lacks: the prefixes it has.
    let m = messages(Path::new(
        &s.write("b.dnn", &reuse("from \"base.safetensors\" at \"prt\"", 3)),
    ));
    assert!(
        m.len() == 1 && m[0].contains("no tensors under `prt`") && m[0].contains("`head`, `part`"),
        "{m:?}"
    );
    // Another width: both shapes.
    let m = messages(Path::new(
        &s.write("c.dnn", &reuse("from \"base.safetensors\" at \"part\"", 5)),
    ));
    assert!(
        m.len() == 1
            && m[0].contains("`part.lin.W` is f32[4, 3] in the file")
            && m[0].contains("f32[4, 5]"),
        "{m:?}"
    );
    // A file still to come: a warning, and training names the file.
    let path = s.write("d.dnn", &reuse("from \"later.safetensors\" at \"part\"", 3));
    let m = messages(Path::new(&path));
    assert!(m.len() == 1 && m[0].starts_with("warning[E0412]"), "{m:?}");
    let db = RootDatabase::new();
    let file = db.open(Path::new(&path)).unwrap();
    let job = dnnc_session::job(&db, file).unwrap();
    let err = dnnc_session::train(
        &job,
        &TrainOptions::quiet(BackendKind::Interp, s.path("w.safetensors")),
    )
    .unwrap_err();
    assert_eq!(err.code().0, "E1200", "{err}");
    assert!(err.to_string().contains("later.safetensors"), "{err}");
}
