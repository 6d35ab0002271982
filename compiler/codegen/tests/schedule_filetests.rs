//! Golden tests of fusion and memory planning.
//!
//! `tests/schedule/<name>.ir` holds a graph in the IR's text format (`#` comments say
//! what it shows) and `<name>.schedule` what `dnnc compile --emit schedule` prints for
//! it: the steps (fused loops with their ops, matmuls with folded transposes and
//! epilogues, kernels, copies) and where every value lives (arena offsets, in-place
//! updates). Run with `DNNC_BLESS=1` to (re)write the `.schedule` files. Every case is
//! also run against the interpreter, and the MNIST training step's schedule is golden
//! too (`mnist_mlp.train.schedule`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use dnnc_ir::{DType, Graph, Op};
use dnnc_tensor::{Data, Tensor};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schedule")
}

fn bless() -> bool {
    std::env::var_os("DNNC_BLESS").is_some()
}

/// Compares `actual` with the golden file `path`, or writes it when blessing.
fn golden(path: &Path, actual: &str) -> Result<(), String> {
    if bless() {
        fs::write(path, actual).unwrap();
        return Ok(());
    }
    let expected = fs::read_to_string(path)
        .map_err(|_| format!("{}: missing (bless with DNNC_BLESS=1)", path.display()))?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs; re-bless with DNNC_BLESS=1 if intended.\n--- actual ---\n{actual}",
            path.display()
        ))
    }
}

/// Deterministic values for every input and state of `g` (non-negative states).
fn feeds(g: &Graph) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let mut rng = dnnc_testing::Rng(7);
    let mut next = move || rng.unit();
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for id in g.node_ids() {
        let (name, dtype, shape, is_state) = match &g.node(id).op {
            Op::Input { name, dtype, shape } => (name, *dtype, shape, false),
            Op::State { name, dtype, shape } => (name, *dtype, shape, true),
            _ => continue,
        };
        assert_eq!(dtype, DType::F32, "the cases read f32 values");
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|_| if is_state { next().abs() } else { next() })
            .collect();
        let t = Tensor::new(dtype, shape.clone(), Data::F32(v)).unwrap();
        if is_state {
            states.insert(name.clone(), t);
        } else {
            inputs.insert(name.clone(), t);
        }
    }
    (inputs, states)
}

/// The compiled graph gives the interpreter's results (the stated tolerance of the
/// differential tests: matrix products round differently).
fn agrees(g: &Graph) -> Result<(), String> {
    let (inputs, states) = feeds(g);
    let want = dnnc_interp::run(g, &inputs, &states).map_err(|e| e.to_string())?;
    let mut c = dnnc_codegen::compile(g).map_err(|e| e.to_string())?;
    let (outs, ups) = c.run(&inputs, &states).map_err(|e| e.to_string())?;
    for (got, want) in [(&outs, &want.outputs), (&ups, &want.updates)] {
        for ((name, gt), (_, wt)) in got.iter().zip(want.iter()) {
            match (&gt.data, &wt.data) {
                (Data::F32(a), Data::F32(b)) => {
                    for (i, (x, y)) in a.iter().zip(b).enumerate() {
                        if (x - y).abs() > 1e-4 * (1.0 + x.abs().max(y.abs())) {
                            return Err(format!("`{name}`[{i}]: jit {x}, interp {y}"));
                        }
                    }
                }
                (a, b) if a == b => {}
                _ => return Err(format!("`{name}` differs")),
            }
        }
    }
    Ok(())
}

#[test]
fn schedules_are_golden() {
    let mut cases: Vec<PathBuf> = fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let text = fs::read_to_string(case).unwrap();
        let g =
            dnnc_ir::text::parse_text(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let c = dnnc_codegen::compile(&g).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        if let Err(e) = golden(&case.with_extension("schedule"), c.schedule_text()) {
            failures.push(e);
        }
        if let Err(e) = agrees(&g) {
            failures.push(format!("{}: {e}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn mnist_training_step_schedule_is_golden() {
    use dnnc_sema::RootDatabase;
    use dnnc_session::steps::{train_step, PassOptions};
    let db = RootDatabase::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mnist_mlp.dnn");
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let step = train_step(job.db, job.file, job.item, &job.cfg, 0, 63, 128, &opts).unwrap();
    let c = dnnc_codegen::compile(&step.graph).unwrap();
    let stats = c.stats();
    // What the schedule must achieve: no materialised transposes or bias broadcasts
    // (8 matmuls, 3 with a bias epilogue), every optimizer update in place, and
    // sharing that keeps the arena well under the sum of its values. The one copy is
    // the optimizer's 8-byte step counter, advanced while the step still reads the
    // old count.
    assert_eq!(stats.matmuls, 8);
    assert_eq!(stats.in_place_updates, 18);
    assert_eq!(stats.copies, 1);
    assert!(
        stats.arena_bytes * 3 < stats.unshared_bytes * 2,
        "{stats:?}"
    );
    let text = c.schedule_text();
    assert_eq!(text.matches(" + v").count(), 3, "bias epilogues:\n{text}");
    // The five backward matmuls read `Wᵀ` or `xᵀ` in place.
    assert_eq!(
        text.matches('ᵀ').count(),
        5,
        "transposes read in place:\n{text}"
    );
    assert!(
        !text.contains("transpose"),
        "a transpose is materialised:\n{text}"
    );
    golden(&dir().join("mnist_mlp.train.schedule"), text).unwrap();
}
