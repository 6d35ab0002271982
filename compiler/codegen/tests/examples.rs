//! The training, evaluation and inference graphs of the examples, compiled and run
//! against the reference interpreter on random inputs and states.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use dnnc_ir::{Graph, Op};
use dnnc_lower::Mode;
use dnnc_sema::RootDatabase;
use dnnc_session::steps::{forward, train_step, PassOptions};
use dnnc_tensor::{DType, Data, Tensor};

/// SplitMix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// How many classes integer labels may name: the smallest `iota` axis of the graph
/// (the one-hot encodings of the labels), or 2.
fn classes(g: &Graph) -> i64 {
    g.node_ids()
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Iota { shape, axis, .. } => Some(shape[*axis] as i64),
            _ => None,
        })
        .filter(|&n| n > 1)
        .min()
        .unwrap_or(2)
}

/// Random values for every input and state of `g`: floats in `[-1, 1)` (non-negative
/// for states, which include second moments), labels as valid class indices, `step`
/// in `0..3` and any `rng_key`.
fn feeds(g: &Graph, rng: &mut Rng) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let k = classes(g);
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for id in g.node_ids() {
        let (name, dtype, shape, is_state) = match &g.node(id).op {
            Op::Input { name, dtype, shape } => (name, *dtype, shape, false),
            Op::State { name, dtype, shape } => (name, *dtype, shape, true),
            _ => continue,
        };
        let n: usize = shape.iter().product();
        let data = match dtype {
            DType::F32 => Data::F32(
                (0..n)
                    .map(|_| {
                        let x = rng.f32();
                        if is_state {
                            x.abs()
                        } else {
                            x
                        }
                    })
                    .collect(),
            ),
            DType::Bool => Data::Bool((0..n).map(|_| rng.next() & 1 == 1).collect()),
            _ => Data::I64(
                (0..n)
                    .map(|_| match name.as_str() {
                        "step" => (rng.next() % 3) as i64,
                        "rng_key" => rng.next() as i64,
                        _ => (rng.next() % k as u64) as i64,
                    })
                    .collect(),
            ),
        };
        let t = Tensor::new(dtype, shape.clone(), data).unwrap();
        if is_state {
            states.insert(name.clone(), t);
        } else {
            inputs.insert(name.clone(), t);
        }
    }
    (inputs, states)
}

/// The stated tolerance: matrix products use fused multiply-add and blocked
/// summation, so they (and what is computed from them) may differ from the
/// interpreter by rounding; everything else agrees bit for bit. Relative 1e-4 plus
/// absolute 1e-4 (cancellation in a sum can leave a small result with the absolute
/// error of its large terms).
fn close(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

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
        let (inputs, states) = feeds(g, &mut rng);
        let want = dnnc_interp::run(g, &inputs, &states).unwrap_or_else(|e| panic!("{e}"));
        let (outs, ups) = c
            .run(&inputs, &states)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        for (got, want) in [(&outs, &want.outputs), (&ups, &want.updates)] {
            assert_eq!(got.len(), want.len(), "{what}");
            for ((gn, gt), (wn, wt)) in got.iter().zip(want.iter()) {
                assert_eq!(gn, wn, "{what}");
                assert_eq!(
                    (gt.dtype, &gt.shape),
                    (wt.dtype, &wt.shape),
                    "{what}: `{gn}`"
                );
                match (&gt.data, &wt.data) {
                    (Data::F32(gv), Data::F32(wv)) => {
                        for (i, (&x, &y)) in gv.iter().zip(wv).enumerate() {
                            assert!(close(x, y), "{what}: `{gn}`[{i}]: jit {x}, interp {y}");
                            n += 1;
                            exact += usize::from(x == y || (x.is_nan() && y.is_nan()));
                        }
                    }
                    (gd, wd) => assert_eq!(gd, wd, "{what}: `{gn}`"),
                }
            }
        }
    }
    println!("{what}: {exact} of {n} f32 elements bit for bit");
    (n, exact)
}

fn check_example(file: &str) {
    let db = RootDatabase::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
    };
    let batch = 4;
    let train = train_step(job.db, job.file, job.item, &job.cfg, 3, batch, &opts).unwrap();
    compare(&format!("{file} train"), &train.graph);
    for (mode, name) in [(Mode::Eval, "eval"), (Mode::Predict, "predict")] {
        let l = forward(job.db, job.file, job.item, mode, batch, &opts).unwrap();
        compare(&format!("{file} {name}"), &l.graph);
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
