//! Data-driven tests of the clean-up passes, plus the pipeline and the text parser.
//!
//! `tests/ir/<pass>/<name>.ir` holds an input graph in the printer's text format and
//! `<name>.expected` the graph after running `<pass>` on it (`standard` runs
//! [`Pipeline::standard`]). Run with `DNNC_BLESS=1` to (re)write the `.expected` files.
//! For every case the harness also checks that:
//!
//! - the input and expected texts read back to the same text (parser round trip);
//! - the graph verifies after the pass;
//! - the pass reports a change exactly when the text changed, and a second run changes
//!   nothing (idempotence);
//! - the reference interpreter gives the same outputs and updates before and after.
//!
//! The other tests cross-check constant folding against the interpreter bit for bit,
//! and run the standard pipeline on random graphs from a small deterministic generator,
//! comparing interpreter results before and after.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use dnnc_ir::text::parse_text;
use dnnc_ir::text::to_text;
use dnnc_ir::{
    verify, BinaryOp, DType, Dist, Graph, IrError, NodeId, Op, OpKind, ReduceKind, UnaryOp,
    Window2d,
};
use dnnc_passes::pipeline::{by_name, Pass, Pipeline, PipelineOptions, PASS_NAMES};
use dnnc_passes::PassError;
use dnnc_tensor::Tensor;
use dnnc_testing::tolerance::tensors_match;
use dnnc_testing::values::random;
use dnnc_testing::Rng;

// ---------------------------------------------------------------------------------------
// Running graphs in the interpreter.

type Feeds = (HashMap<String, Tensor>, HashMap<String, Tensor>);

/// Values for every input and state of `g`.
fn feeds(g: &Graph, seed: u64) -> Feeds {
    let mut rng = Rng(seed);
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for id in g.inputs().into_iter().chain(g.states()) {
        let (name, map) = match &g.node(id).op {
            Op::Input { name, .. } => (name, &mut inputs),
            Op::State { name, .. } => (name, &mut states),
            _ => unreachable!(),
        };
        let ty = g.ty(id);
        map.insert(name.clone(), random(&mut rng, ty.dtype, &ty.shape));
    }
    (inputs, states)
}

/// Whether `before` and `after` compute the same outputs and updates on random feeds.
/// A feed on which `before` fails (an integer division by zero) is replaced by the
/// next one; a graph that fails on 16 feeds in a row (a constant division by zero)
/// must fail after the pass as well.
fn same_results(before: &Graph, after: &Graph, seed: u64) -> Result<(), String> {
    for attempt in 0..16 {
        let (inputs, states) = feeds(before, seed + 1000 * attempt);
        if let Ok(want) = dnnc_interp::run(before, &inputs, &states) {
            return agree_on(after, &inputs, &states, &want);
        }
    }
    let (inputs, states) = feeds(before, seed);
    match dnnc_interp::run(after, &inputs, &states) {
        Err(_) => Ok(()),
        Ok(_) => Err("the original graph fails on every feed; the transformed one runs".into()),
    }
}

fn agree_on(
    after: &Graph,
    inputs: &HashMap<String, Tensor>,
    states: &HashMap<String, Tensor>,
    want: &dnnc_interp::Outputs,
) -> Result<(), String> {
    let got = dnnc_interp::run(after, inputs, states)
        .map_err(|e| format!("the transformed graph fails to run: {e}"))?;
    let pairs = want
        .outputs
        .iter()
        .zip(&got.outputs)
        .chain(want.updates.iter().zip(&got.updates));
    if want.outputs.len() != got.outputs.len() || want.updates.len() != got.updates.len() {
        return Err("different numbers of outputs or updates".into());
    }
    for ((n1, t1), (n2, t2)) in pairs {
        if n1 != n2 {
            return Err(format!("`{n1}` became `{n2}`"));
        }
        tensors_match(t1, t2, 1e-6).map_err(|e| format!("`{n1}` differs: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The filetests.

fn ir_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("ir")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn round_trips(text: &str) -> Result<Graph, String> {
    let g = parse_text(text).map_err(|e| e.to_string())?;
    let printed = to_text(&g);
    let again = to_text(&parse_text(&printed).map_err(|e| e.to_string())?);
    if again != printed {
        return Err(format!(
            "printing and parsing do not round-trip:\n{printed}\n---\n{again}"
        ));
    }
    Ok(g)
}

/// Runs one case; the text of the graph after the pass.
fn run_case(pass: &str, input: &str) -> Result<String, String> {
    let original = round_trips(input).map_err(|e| format!("input: {e}"))?;
    verify(&original).map_err(|e| format!("the input is malformed: {e:?}"))?;
    let before = to_text(&original);
    let mut g = original.clone();
    let run_once = |g: &mut Graph| -> Result<bool, String> {
        if pass == "standard" {
            let text = to_text(g);
            Pipeline::standard()
                .run(g, &mut PipelineOptions::verifying())
                .map_err(|e| e.to_string())?;
            Ok(to_text(g) != text)
        } else {
            let p = by_name(pass).ok_or_else(|| format!("no pass called `{pass}`"))?;
            let changed = p.run(g).map_err(|e| e.to_string())?;
            verify(g).map_err(|e| format!("malformed after `{pass}`: {e:?}\n{}", to_text(g)))?;
            Ok(changed)
        }
    };
    let changed = run_once(&mut g)?;
    let after = to_text(&g);
    if changed != (after != before) {
        return Err(format!(
            "the pass reported changed = {changed}, but the text {}",
            if after == before {
                "is the same"
            } else {
                "changed"
            }
        ));
    }
    let mut again = g.clone();
    if run_once(&mut again)? || to_text(&again) != after {
        return Err(format!(
            "a second run changed the graph again:\n{}",
            to_text(&again)
        ));
    }
    for seed in 1..=3 {
        same_results(&original, &g, seed)
            .map_err(|e| format!("the interpreter disagrees (seed {seed}): {e}"))?;
    }
    Ok(after)
}

#[test]
fn ir_filetests() {
    let bless = std::env::var("DNNC_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut per_pass: Vec<(String, usize)> = Vec::new();
    for dir in sorted_entries(&ir_dir()) {
        if !dir.is_dir() {
            continue;
        }
        let pass = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            pass == "standard" || by_name(&pass).is_some(),
            "tests/ir/{pass}: no pass of that name"
        );
        let mut count = 0;
        for file in sorted_entries(&dir) {
            if file.extension().is_none_or(|e| e != "ir") {
                continue;
            }
            count += 1;
            let name = format!("{pass}/{}", file.file_name().unwrap().to_string_lossy());
            let input = fs::read_to_string(&file).unwrap();
            let actual = match run_case(&pass, &input) {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let expected_path = file.with_extension("expected");
            if bless {
                fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            match fs::read_to_string(&expected_path) {
                Err(_) => failures.push(format!(
                    "{name}: no .expected file (run with DNNC_BLESS=1)"
                )),
                Ok(expected) if expected != actual => failures.push(format!(
                    "{name}: output differs (DNNC_BLESS=1 to accept)\n--- expected\n{expected}--- actual\n{actual}"
                )),
                Ok(expected) => {
                    if let Err(e) = round_trips(&expected) {
                        failures.push(format!("{name}: .expected: {e}"));
                    }
                }
            }
        }
        per_pass.push((pass, count));
    }
    for pass in [
        "simplify",
        "const_fold",
        "cse",
        "dce",
        "strip_stop_gradient",
        "standard",
    ] {
        let n = per_pass
            .iter()
            .find(|(p, _)| p == pass)
            .map_or(0, |(_, n)| *n);
        assert!(n >= 1, "no filetests for `{pass}`");
    }
    assert!(
        failures.is_empty(),
        "{} failing filetest(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// The parser.

/// A graph using every kind of op.
fn every_op() -> Graph {
    let mut g = Graph::new("every_op");
    let add = |g: &mut Graph, op: Op, ops: &[NodeId]| g.add(op, ops).unwrap();
    let x = add(
        &mut g,
        Op::Input {
            name: "x \"quoted\"\n".into(),
            dtype: DType::F32,
            shape: vec![2, 3],
        },
        &[],
    );
    let w = add(
        &mut g,
        Op::State {
            name: "w".into(),
            dtype: DType::F32,
            shape: vec![2, 3],
        },
        &[],
    );
    let k = add(
        &mut g,
        Op::Input {
            name: "step".into(),
            dtype: DType::I64,
            shape: vec![],
        },
        &[],
    );
    let c = add(
        &mut g,
        Op::Const {
            value: -1.5e-7,
            dtype: DType::F32,
        },
        &[],
    );
    let nan = add(
        &mut g,
        Op::Const {
            value: f64::NAN,
            dtype: DType::F32,
        },
        &[],
    );
    let inf = add(
        &mut g,
        Op::Const {
            value: f64::NEG_INFINITY,
            dtype: DType::F32,
        },
        &[],
    );
    let idx = add(
        &mut g,
        Op::Iota {
            dtype: DType::I32,
            shape: vec![2],
            axis: 0,
        },
        &[],
    );
    let cb = add(&mut g, Op::Broadcast(vec![2, 3]), &[c]);
    let mut acc = add(&mut g, Op::Binary(BinaryOp::Add), &[x, cb]);
    for u in UnaryOp::ALL {
        if u != UnaryOp::Not {
            acc = add(&mut g, Op::Unary(u), &[acc]);
        }
    }
    for b in BinaryOp::ALL {
        if !b.is_comparison() && !b.is_logical() {
            acc = add(&mut g, Op::Binary(b), &[acc, w]);
        }
    }
    let lt = add(&mut g, Op::Binary(BinaryOp::Lt), &[acc, w]);
    let mut cond = lt;
    for b in BinaryOp::ALL {
        if b.is_comparison() || b.is_logical() {
            cond = add(&mut g, Op::Binary(b), &[cond, lt]);
        }
    }
    let cond = add(&mut g, Op::Unary(UnaryOp::Not), &[cond]);
    let sel = add(&mut g, Op::Select, &[cond, acc, w]);
    let i = add(&mut g, Op::Cast(DType::U8), &[sel]);
    let f = add(&mut g, Op::Cast(DType::F32), &[i]);
    let r = add(&mut g, Op::Reshape(vec![3, 2]), &[f]);
    let t = add(&mut g, Op::Transpose(vec![1, 0]), &[r]);
    let s = add(
        &mut g,
        Op::Slice {
            starts: vec![0, 1],
            ends: vec![2, 3],
            steps: vec![1, 2],
        },
        &[t],
    );
    let cat = add(&mut g, Op::Concat { axis: 1 }, &[s, s, t]);
    let p = add(
        &mut g,
        Op::Pad {
            lo: vec![1, 0],
            hi: vec![0, 2],
            value: 0.25,
        },
        &[cat],
    );
    let sum = add(
        &mut g,
        Op::Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0],
            keepdims: true,
        },
        &[p],
    );
    let mx = add(
        &mut g,
        Op::Reduce {
            kind: ReduceKind::Max,
            axes: vec![0, 1],
            keepdims: false,
        },
        &[p],
    );
    let mn = add(
        &mut g,
        Op::Reduce {
            kind: ReduceKind::Min,
            axes: vec![],
            keepdims: false,
        },
        &[p],
    );
    let am = add(&mut g, Op::ArgMax { axis: 1 }, &[p]);
    let an = add(&mut g, Op::ArgMin { axis: 0 }, &[p]);
    let asort = add(
        &mut g,
        Op::ArgSort {
            axis: 1,
            descending: true,
        },
        &[p],
    );
    let mm = add(&mut g, Op::MatMul, &[x, r]);
    let ga = add(&mut g, Op::Gather { axis: 0 }, &[x, idx]);
    let sc = add(
        &mut g,
        Op::ScatterAdd {
            axis: 0,
            shape: vec![4, 3],
        },
        &[ga, idx],
    );
    let ru = add(
        &mut g,
        Op::Random {
            dist: Dist::Uniform {
                low: -1.0,
                high: 1.0,
            },
            shape: vec![2, 3],
            salt: 7,
        },
        &[k],
    );
    let rn = add(
        &mut g,
        Op::Random {
            dist: Dist::Normal {
                mean: 0.0,
                std: 0.1,
            },
            shape: vec![2, 3],
            salt: 8,
        },
        &[k],
    );
    let half = add(
        &mut g,
        Op::Const {
            value: 0.5,
            dtype: DType::F32,
        },
        &[],
    );
    let halves = add(&mut g, Op::Broadcast(vec![2, 3]), &[half]);
    let rb = add(
        &mut g,
        Op::Random {
            dist: Dist::Bernoulli,
            shape: vec![2, 3],
            salt: 9,
        },
        &[k, halves],
    );
    let sg = add(&mut g, Op::StopGradient, &[ru]);
    let img = add(&mut g, Op::Reshape(vec![1, 1, 2, 3]), &[x]);
    let win = Window2d {
        kh: 2,
        kw: 2,
        stride: 1,
        dilation: 1,
        pad_h: (1, 0),
        pad_w: (0, 1),
    };
    let pt = add(&mut g, Op::Patches(win), &[img]);
    let fo = add(
        &mut g,
        Op::Fold {
            win,
            shape: vec![1, 1, 2, 3],
        },
        &[pt],
    );
    for (i, n) in [sum, mx, mn, am, an, asort, mm, sc, rn, rb, sg, nan, inf, fo]
        .into_iter()
        .enumerate()
    {
        g.set_output(format!("o{i}"), n);
    }
    g.add_update("w", sel);
    g
}

#[test]
fn the_parser_reads_back_every_op() {
    let g = every_op();
    assert!(verify(&g).is_ok());
    let text = to_text(&g);
    for kind in OpKind::all() {
        let needle = format!(" = {kind}");
        assert!(text.contains(&needle), "no `{kind}` in\n{text}");
    }
    let back = parse_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(to_text(&back), text);
    assert_eq!(back.inputs().len(), 2);
    assert_eq!(back.updates().len(), 1);
    let x = back.inputs()[0];
    assert_eq!(
        back.node(x).op,
        Op::Input {
            name: "x \"quoted\"\n".into(),
            dtype: DType::F32,
            shape: vec![2, 3]
        }
    );
}

#[test]
fn the_parser_reports_bad_text() {
    let bad = [
        ("", "no `graph NAME {`"),
        ("graph g {\n", "not closed"),
        (
            "graph g {\n  %0 = frobnicate : f32[]\n}\n",
            "unknown op `frobnicate`",
        ),
        ("graph g {\n  %0 = neg %1 : f32[]\n}\n", "not defined above"),
        (
            "graph g {\n  %0 = const 1.0 : f32[]\n  %0 = const 2.0 : f32[]\n}\n",
            "defined twice",
        ),
        (
            "graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = exp %0 : f32[3]\n}\n",
            "declared f32[3]",
        ),
        (
            "graph g {\n  %0 = input \"x\" : i64[2]\n  %1 = exp %0 : i64[2]\n}\n",
            "not defined on i64",
        ),
        (
            "graph g {\n  %0 = const x : f32[]\n}\n",
            "not a valid number",
        ),
        (
            "graph g {\n  %0 = const 1.0 : f33[]\n}\n",
            "unknown element type",
        ),
        ("graph g {\n  output y = %3\n}\n", "%3 is not defined"),
        ("graph g {\n}\nmore\n", "after the end"),
        (
            "graph g {\n  %0 = input \"x : f32[2]\n}\n",
            "unterminated string",
        ),
        (
            "graph g {\n  %0 = reduce_sum [0 keepdims %1 : f32[]\n}\n",
            "line 2",
        ),
    ];
    for (text, want) in bad {
        let err = parse_text(text)
            .err()
            .unwrap_or_else(|| panic!("accepted {text:?}"));
        assert!(matches!(err, IrError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains(want), "{text:?}: {err}");
    }
    // Comments and blank lines are fine.
    let g = parse_text(
        "# a comment\ngraph g {\n\n  // another\n  %0 = const 1.0 : f32[]\n  output y = %0\n}\n",
    )
    .unwrap();
    assert_eq!(g.len(), 1);
}

// ---------------------------------------------------------------------------------------
// The pipeline.

/// A pass that breaks the graph, to test the verifier hook.
struct Vandal;

impl Pass for Vandal {
    fn name(&self) -> &'static str {
        "vandal"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        let (_, out) = g.outputs()[0].clone();
        g.remove(out);
        Ok(true)
    }
}

fn small_graph() -> Graph {
    parse_text(
        "graph g {
           %0 = input \"x\" : f32[2]
           %1 = const 0.0 : f32[]
           %2 = broadcast [2] %1 : f32[2]
           %3 = add %0, %2 : f32[2]
           %4 = const 2.0 : f32[]
           %5 = const 3.0 : f32[]
           %6 = mul %4, %5 : f32[]
           %7 = broadcast [2] %6 : f32[2]
           %8 = stop_gradient %3 : f32[2]
           %9 = mul %8, %7 : f32[2]
           output y = %9
         }",
    )
    .unwrap()
}

#[test]
fn the_pipeline_verifies_after_every_pass_and_names_the_culprit() {
    let mut g = small_graph();
    let p = Pipeline::new()
        .then(by_name("cse").unwrap())
        .then(Box::new(Vandal));
    let err = p
        .run(&mut g, &mut PipelineOptions::verifying())
        .unwrap_err();
    let PassError::Invalid {
        after, problems, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(after, "vandal");
    assert_eq!(problems, &["output `y` names a removed node"]);
    // Without verification the broken graph goes through.
    let mut g = small_graph();
    let mut opts = PipelineOptions {
        verify: false,
        ..PipelineOptions::default()
    };
    assert!(p.run(&mut g, &mut opts).is_ok());
}

#[test]
fn the_standard_pipeline_reaches_a_fixpoint() {
    let mut g = small_graph();
    let p = Pipeline::standard();
    assert_eq!(
        p.names(),
        [
            "strip_stop_gradient",
            "sum_of_products",
            "simplify",
            "const_fold",
            "cse",
            "dce"
        ]
    );
    let rounds = p
        .run_counting(&mut g, &mut PipelineOptions::verifying())
        .unwrap();
    assert!(
        (2..Pipeline::STANDARD_MAX_ROUNDS).contains(&rounds),
        "{rounds}"
    );
    assert_eq!(
        to_text(&g),
        "graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = const 6.0 : f32[]\n  \
         %2 = broadcast [2] %1 : f32[2]\n  %3 = mul %0, %2 : f32[2]\n  output y = %3\n}\n"
    );
    for name in p.names() {
        assert!(
            !by_name(name).unwrap().run(&mut g).unwrap(),
            "{name} still changes it"
        );
    }
    // `cleanups` keeps stop_gradient.
    let mut g = small_graph();
    Pipeline::cleanups()
        .run(&mut g, &mut PipelineOptions::verifying())
        .unwrap();
    assert!(to_text(&g).contains("stop_gradient"));
}

#[test]
fn the_pipeline_dumps_after_the_named_pass() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let seen: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
    let sink = seen.clone();
    let mut opts = PipelineOptions {
        verify: true,
        dump_after: Some("const_fold".into()),
        dump: Some(Box::new(move |pass: &str, text: &str| {
            sink.borrow_mut().push((pass.to_string(), text.to_string()))
        })),
    };
    let mut g = small_graph();
    Pipeline::standard().run(&mut g, &mut opts).unwrap();
    let seen_now = seen.borrow().clone();
    assert!(!seen_now.is_empty());
    assert!(seen_now.iter().all(|(p, _)| p == "const_fold"));
    assert!(seen_now[0].1.contains("const 6.0"), "{}", seen_now[0].1);

    seen.borrow_mut().clear();
    opts.dump_after = Some("all".into());
    let mut g = small_graph();
    Pipeline::standard().run(&mut g, &mut opts).unwrap();
    let passes: Vec<String> = seen.borrow().iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        passes[..6],
        [
            "strip_stop_gradient",
            "sum_of_products",
            "simplify",
            "const_fold",
            "cse",
            "dce"
        ]
    );

    // The driver's own passes go through the same hook.
    seen.borrow_mut().clear();
    opts.dump_after = Some("autodiff".into());
    opts.after_pass("autodiff", &g).unwrap();
    opts.after_pass("optimizer", &g).unwrap();
    assert_eq!(seen.borrow().len(), 1);

    opts.dump_after = Some("nonsense".into());
    let err = Pipeline::standard().run(&mut g, &mut opts).unwrap_err();
    assert_eq!(err, PassError::UnknownPass("nonsense".into()));
}

#[test]
fn every_listed_pass_is_known() {
    for name in PASS_NAMES {
        match *name {
            "lower" | "autodiff" | "optimizer" | "precision" => assert!(by_name(name).is_none()),
            _ => assert_eq!(by_name(name).unwrap().name(), *name),
        }
    }
    assert!(by_name("nope").is_none());
}

// ---------------------------------------------------------------------------------------
// Constant folding against the interpreter, bit for bit.

fn bits(t: &Tensor) -> Vec<u64> {
    if t.dtype.is_float() {
        return t
            .data
            .to_f64_vec()
            .iter()
            .map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() })
            .collect();
    }
    t.data.to_i64_vec().iter().map(|&x| x as u64).collect()
}

// Folding every unary, binary, cast and select on every element type's edge values is
// `codegen/tests/every_op.rs` (with the other engines); here, reductions and layout ops.

#[test]
fn folded_reductions_and_layout_ops_match_the_interpreter() {
    let mut checked = 0;
    for (dtype, value) in [
        (DType::F32, 0.1),
        (DType::F32, -0.0),
        (DType::F32, f64::NAN),
        (DType::I32, 2147483647.0),
        (DType::U8, 77.0),
        (DType::Bool, 1.0),
        (DType::Bool, 0.0),
    ] {
        for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min] {
            for op in [
                Op::Reduce {
                    kind,
                    axes: vec![0, 2],
                    keepdims: false,
                },
                Op::Reduce {
                    kind,
                    axes: vec![1],
                    keepdims: true,
                },
                Op::Transpose(vec![2, 0, 1]),
                Op::Reshape(vec![35, 3]),
                Op::Pad {
                    lo: vec![0, 1, 0],
                    hi: vec![1, 0, 0],
                    value,
                },
                Op::Slice {
                    starts: vec![1, 0, 0],
                    ends: vec![3, 5, 3],
                    steps: vec![1, 2, 2],
                },
            ] {
                let mut g = Graph::new("fold");
                let c = g.add(Op::Const { value, dtype }, &[]).unwrap();
                let b = g.add(Op::Broadcast(vec![7, 5, 3]), &[c]).unwrap();
                let Ok(n) = g.add(op.clone(), &[b]) else {
                    continue;
                };
                g.set_output("y", n);
                let mut f = g.clone();
                if !by_name("const_fold").unwrap().run(&mut f).unwrap() {
                    continue;
                }
                let empty = HashMap::new();
                let want = dnnc_interp::run(&g, &empty, &empty).unwrap();
                let got = dnnc_interp::run(&f, &empty, &empty).unwrap();
                assert_eq!(
                    bits(&got.outputs[0].1),
                    bits(&want.outputs[0].1),
                    "{op:?} of {value} ({dtype})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked}");
}

// ---------------------------------------------------------------------------------------
// Random graphs: the standard pipeline keeps what the interpreter computes.

/// A random graph over `f32[2, 3]` tensors (and a few `i32` ones), built to give every
/// pass something to do: splats of 0 and 1, duplicated nodes, layout round trips,
/// `stop_gradient`, dead nodes.
fn random_graph(seed: u64) -> Graph {
    let mut rng = Rng(seed);
    let mut g = Graph::new(format!("random_{seed}"));
    let shape = vec![2, 3];
    let input = |g: &mut Graph, name: &str, dtype| {
        g.add(
            Op::Input {
                name: name.into(),
                dtype,
                shape: vec![2, 3],
            },
            &[],
        )
        .unwrap()
    };
    let mut pool = vec![
        input(&mut g, "x", DType::F32),
        input(&mut g, "y", DType::F32),
    ];
    let w = g
        .add(
            Op::State {
                name: "w".into(),
                dtype: DType::F32,
                shape: shape.clone(),
            },
            &[],
        )
        .unwrap();
    pool.push(w);
    let mut ints = vec![input(&mut g, "i", DType::I32)];
    let steps = 6 + rng.below(14);
    for _ in 0..steps {
        let pick = |rng: &mut Rng, pool: &[NodeId]| pool[rng.below(pool.len())];
        let a = pick(&mut rng, &pool);
        let b = pick(&mut rng, &pool);
        let splat = |g: &mut Graph, rng: &mut Rng, dtype: DType| {
            let value = [0.0, 1.0, 2.0, 0.5, -1.0, -0.0][rng.below(6)];
            let c = g.add(Op::Const { value, dtype }, &[]).unwrap();
            if rng.below(3) == 0 {
                let row = g.add(Op::Broadcast(vec![3]), &[c]).unwrap();
                g.add(Op::Broadcast(vec![2, 3]), &[row]).unwrap()
            } else {
                g.add(Op::Broadcast(vec![2, 3]), &[c]).unwrap()
            }
        };
        let add = |g: &mut Graph, op: Op, ops: &[NodeId]| g.add(op, ops).unwrap();
        let new = match rng.below(14) {
            0 => splat(&mut g, &mut rng, DType::F32),
            1 | 2 => {
                let u = [
                    UnaryOp::Neg,
                    UnaryOp::Tanh,
                    UnaryOp::Abs,
                    UnaryOp::Sin,
                    UnaryOp::Floor,
                    UnaryOp::Exp,
                    UnaryOp::Sqrt,
                ][rng.below(7)];
                add(&mut g, Op::Unary(u), &[a])
            }
            3..=5 => {
                let op = [
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Max,
                    BinaryOp::Min,
                ][rng.below(6)];
                let b = if rng.below(2) == 0 {
                    splat(&mut g, &mut rng, DType::F32)
                } else {
                    b
                };
                let (l, r) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
                add(&mut g, Op::Binary(op), &[l, r])
            }
            6 => {
                // A duplicate of an existing pure node.
                let node = g.node(a).clone();
                if !node.op.is_pure() {
                    continue;
                }
                let ops = g.operands(a);
                add(&mut g, node.op, &ops)
            }
            7 => {
                let r = add(&mut g, Op::Reshape(vec![3, 2]), &[a]);
                let t = add(&mut g, Op::Transpose(vec![1, 0]), &[r]);
                let t2 = add(&mut g, Op::Transpose(vec![1, 0]), &[t]);
                let r2 = add(&mut g, Op::Reshape(vec![6]), &[t2]);
                add(&mut g, Op::Reshape(shape.clone()), &[r2])
            }
            8 => {
                let c = add(&mut g, Op::Cast(DType::F32), &[a]);
                add(&mut g, Op::StopGradient, &[c])
            }
            9 => {
                let cond = if rng.below(2) == 0 {
                    add(&mut g, Op::Binary(BinaryOp::Lt), &[a, b])
                } else {
                    splat(&mut g, &mut rng, DType::Bool)
                };
                let other = pick(&mut rng, &pool);
                add(&mut g, Op::Select, &[cond, b, other])
            }
            10 => {
                let s = add(
                    &mut g,
                    Op::Reduce {
                        kind: ReduceKind::Sum,
                        axes: vec![0],
                        keepdims: true,
                    },
                    &[a],
                );
                add(&mut g, Op::Broadcast(shape.clone()), &[s])
            }
            11 => {
                let s = add(
                    &mut g,
                    Op::Slice {
                        starts: vec![0, 0],
                        ends: vec![2, 3],
                        steps: vec![1, 1],
                    },
                    &[a],
                );
                add(
                    &mut g,
                    Op::Pad {
                        lo: vec![0, 0],
                        hi: vec![0, 0],
                        value: 0.0,
                    },
                    &[s],
                )
            }
            12 => {
                // Integer work: i * 1 + 0 - (neg neg i), cast to f32.
                let i = ints[rng.below(ints.len())];
                let one = splat(&mut g, &mut rng, DType::I32);
                let m = add(&mut g, Op::Binary(BinaryOp::Mul), &[i, one]);
                let n1 = add(&mut g, Op::Unary(UnaryOp::Neg), &[i]);
                let n2 = add(&mut g, Op::Unary(UnaryOp::Neg), &[n1]);
                let s = add(&mut g, Op::Binary(BinaryOp::Sub), &[m, n2]);
                ints.push(s);
                add(&mut g, Op::Cast(DType::F32), &[s])
            }
            _ => {
                // Constant arithmetic on splats.
                let p = splat(&mut g, &mut rng, DType::F32);
                let q = splat(&mut g, &mut rng, DType::F32);
                let s = add(&mut g, Op::Binary(BinaryOp::Add), &[p, q]);
                add(&mut g, Op::Binary(BinaryOp::Mul), &[a, s])
            }
        };
        pool.push(new);
    }
    let n = pool.len();
    g.set_output("out", pool[n - 1]);
    g.set_output("mid", pool[n / 2 + 1]);
    g.add_update("w", pool[n - 2]);
    g
}

#[test]
fn the_standard_pipeline_preserves_results_on_random_graphs() {
    let (mut before_nodes, mut after_nodes) = (0, 0);
    for seed in 0..300 {
        let original = random_graph(seed);
        assert!(verify(&original).is_ok());
        let mut g = original.clone();
        Pipeline::standard()
            .run(&mut g, &mut PipelineOptions::verifying())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", to_text(&original)));
        before_nodes += original.len();
        after_nodes += g.len();
        for feed in 0..2 {
            if let Err(e) = same_results(&original, &g, seed * 10 + feed) {
                panic!(
                    "seed {seed}, feed {feed}: {e}\nbefore:\n{}after:\n{}",
                    to_text(&original),
                    to_text(&g)
                );
            }
        }
        // A fixpoint: no pass changes the result any more.
        for name in ["simplify", "const_fold", "cse", "dce"] {
            let mut again = g.clone();
            assert!(
                !by_name(name).unwrap().run(&mut again).unwrap(),
                "seed {seed}: `{name}` still changes\n{}",
                to_text(&g)
            );
        }
    }
    assert!(
        after_nodes * 2 < before_nodes,
        "the pipeline removed too little: {before_nodes} → {after_nodes} nodes"
    );
}
