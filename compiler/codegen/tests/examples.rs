//! The training, evaluation and inference graphs of the examples, compiled and run
//! against the reference interpreter on random inputs and states.

mod support;

use std::time::Instant;

use dnnc_ir::Graph;
use support::{agree, close, example_graphs, feeds, Rng};

/// Runs `g` compiled and interpreted on several random feeds; returns the number of
/// `f32` elements compared and how many agreed bit for bit.
fn compare(what: &str, g: &Graph) -> (usize, usize) {
    let t = Instant::now();
    let mut c = dnnc_codegen::compile(g).unwrap_or_else(|e| panic!("{what}: {e}"));
    println!(
        "{what}: {} nodes compiled in {:.1} ms to {} steps ({} JIT loops)",
        g.len(),
        t.elapsed().as_secs_f64() * 1e3,
        c.step_count(),
        c.loop_count()
    );
    let (mut n, mut exact) = (0, 0);
    let mut rng = Rng(7);
    for _ in 0..3 {
        let (inputs, states) = feeds(g, &mut rng, Rng::unit);
        let want = dnnc_interp::run(g, &inputs, &states).unwrap_or_else(|e| panic!("{e}"));
        let got = c
            .run(&inputs, &states)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (m, x) = agree(what, &got, &(want.outputs, want.updates), close);
        n += m;
        exact += x;
    }
    println!("{what}: {exact} of {n} f32 elements bit for bit");
    (n, exact)
}

fn check_example(file: &str) {
    for (what, g) in example_graphs(file, 4) {
        compare(&what, &g);
    }
}

#[test]
fn mnist_mlp() {
    check_example("mnist_mlp.dnn");
}

#[test]
fn custom_layer() {
    check_example("custom_layer.dnn");
}

#[test]
fn regression() {
    check_example("regression.dnn");
}

#[test]
fn mnist_cnn() {
    check_example("mnist_cnn.dnn");
}

#[test]
fn mnist_cnn_bn() {
    check_example("mnist_cnn_bn.dnn");
}
