//! The bodies of dnnc's fuzz targets, one function per target. Each takes arbitrary
//! bytes and panics when a property breaks; a panic inside dnnc (a crash) is a failure
//! too. The AFL harness (`afl/`, built with `cargo afl build`) calls them from its
//! binaries; `tests/replay.rs` runs them over the seed corpora and over every
//! minimised crash kept in `regressions/TARGET/`, so a fixed crash stays fixed.
//!
//! - [`check_and_format`]: parsing and checking never panic; formatting a file that
//!   parses is idempotent, changes only whitespace and keeps it parsing.
//! - [`lower_and_run`]: a file that checks lowers (every train block's step and
//!   evaluation), passes the IR verifier after the pass pipeline and autodiff, and runs
//!   one step on the interpreter with random inputs, failing only with typed errors.
//! - [`loaders`]: the IDX, NPY, CSV and text loaders on any bytes return data or an
//!   error naming the file.
//! - [`safetensors`]: checkpoint parsing and loading into a model's expected tensors.
//! - [`ir_text`]: the IR text parser; what parses prints back to text that parses to
//!   the same text.
//! - [`lsp_transport`]: the language server's frame relay ends on any input and
//!   forwards only well-formed frames.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use dnnc_sema::{file_diagnostics, RootDatabase};
use dnnc_tensor::{DType, Data, Tensor};
use dnnc_testing::files::Scratch;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, for the harness and the replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("check_and_format", check_and_format),
    ("lower_and_run", lower_and_run),
    ("loaders", loaders),
    ("safetensors", safetensors),
    ("ir_text", ir_text),
    ("lsp_transport", lsp_transport),
];

thread_local! {
    /// A scratch folder for the files the targets write, one per thread: made on a
    /// thread's first run and reused by every later one (the targets overwrite the same
    /// few names), removed when the thread ends normally (a harness process that
    /// crashes or is killed leaves its one folder behind).
    static SCRATCH: Scratch = Scratch::new("fuzz");
}

/// `name` in this thread's scratch folder.
fn scratch(name: &str) -> PathBuf {
    SCRATCH.with(|d| d.path(name))
}

/// Writes `data` to `name` in this thread's scratch folder (made again if something
/// removed it); returns its path.
fn write_scratch(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch(name);
    if std::fs::write(&path, data).is_err() {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        std::fs::write(&path, data).expect("the scratch file is written");
    }
    path
}

fn text_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Parsing and checking never panic; a file that formats formats to itself again,
/// only its whitespace changed, and still parses.
pub fn check_and_format(data: &[u8]) {
    let text = text_of(data);
    let db = RootDatabase::new();
    let file = db.add_text(Path::new("/fuzz/input.dnn"), &text);
    let _ = file_diagnostics(&db, file);
    match dnnc_syntax::format::format(&text) {
        Ok(out) => {
            let squeeze =
                |s: &str| -> String { s.chars().filter(|c| !c.is_whitespace()).collect() };
            assert_eq!(
                squeeze(&out),
                squeeze(&text),
                "formatting changed more than whitespace"
            );
            let again = dnnc_syntax::format::format(&out).expect("formatted text formats");
            assert_eq!(again, out, "formatting is not idempotent");
        }
        Err(e) => assert!(
            !e.message.contains("internal formatter error"),
            "{}",
            e.message
        ),
    }
}

/// Tensors of random values for every input of `g` (integers below the graph's limits).
fn random_inputs(g: &dnnc_ir::Graph) -> HashMap<String, Tensor> {
    let mut rng = dnnc_testing::Rng(1);
    let mut out = HashMap::new();
    for n in g.inputs() {
        if let dnnc_ir::Op::Input { name, dtype, shape } = &g.node(n).op {
            let len: usize = shape.iter().product();
            let limit = g.index_limit(name).unwrap_or(2).max(1) as u64;
            let data = match dtype {
                DType::Bool => Data::Bool((0..len).map(|_| rng.next_u64() & 1 == 1).collect()),
                d if d.is_float() => Data::from_f64(
                    *d,
                    (0..len)
                        .map(|_| (rng.next_u64() % 1000) as f64 / 1000.0)
                        .collect::<Vec<_>>(),
                ),
                d => Data::from_i64(
                    *d,
                    (0..len)
                        .map(|_| (rng.next_u64() % limit) as i64)
                        .collect::<Vec<_>>(),
                ),
            };
            out.insert(
                name.clone(),
                Tensor {
                    dtype: *dtype,
                    shape: shape.clone(),
                    data,
                },
            );
        }
    }
    out
}

/// The elements of every node of `g`: what running it would touch.
fn elements(g: &dnnc_ir::Graph) -> u128 {
    g.node_ids()
        .iter()
        .map(|&n| g.ty(n).shape.iter().map(|&d| d as u128).product::<u128>())
        .sum()
}

/// A file that checks without errors lowers, verifies after the pipeline and autodiff,
/// and runs on the interpreter (small graphs), failing only with errors, not panics.
pub fn lower_and_run(data: &[u8]) {
    let text = text_of(data);
    let db = RootDatabase::new();
    let file = db.add_text(&scratch("input.dnn"), &text);
    let diags = file_diagnostics(&db, file);
    if diags
        .iter()
        .any(|d| d.severity == dnnc_diagnostics::Severity::Error)
    {
        return;
    }
    let items = &dnnc_sema::scope::parse(&db, file).module.items;
    for (index, item) in items.iter().enumerate() {
        if !matches!(item.kind, dnnc_syntax::ast::ItemKind::Train(_)) {
            continue;
        }
        for mode in [
            dnnc_lower::Mode::Train(0),
            dnnc_lower::Mode::Eval,
            dnnc_lower::Mode::Predict,
        ] {
            let Ok(mut l) = dnnc_lower::lower(&db, file, index as u32, mode, 2) else {
                continue;
            };
            if let Err(e) = dnnc_ir::verify(&l.graph) {
                panic!("the lowered graph does not verify: {e:?}");
            }
            if matches!(mode, dnnc_lower::Mode::Train(_)) {
                let trainable: Vec<String> = l
                    .params
                    .iter()
                    .filter(|p| !p.frozen && !p.buffer)
                    .map(|p| p.name.clone())
                    .collect();
                if dnnc_passes::optimizer::add_gradients(&mut l.graph, &trainable).is_err() {
                    continue;
                }
            }
            let mut opts = dnnc_passes::pipeline::PipelineOptions::verifying();
            if let Err(e) = dnnc_passes::pipeline::Pipeline::standard().run(&mut l.graph, &mut opts)
            {
                panic!("the pass pipeline failed on a program that checks: {e}");
            }
            if elements(&l.graph) > 1 << 20 {
                continue;
            }
            let states: HashMap<String, Tensor> = l
                .graph
                .states()
                .into_iter()
                .filter_map(|n| match &l.graph.node(n).op {
                    dnnc_ir::Op::State { name, dtype, shape } => {
                        Some((name.clone(), Tensor::zeros(*dtype, shape.clone())))
                    }
                    _ => None,
                })
                .collect();
            let _ = dnnc_interp::run(&l.graph, &random_inputs(&l.graph), &states);
        }
    }
}

/// Every loader on the bytes as a file: data or an error naming the file.
pub fn loaders(data: &[u8]) {
    // Every loader tells the formats apart by content (gzip by its magic bytes), not
    // by the file's name: one file serves them all.
    let path = write_scratch("input.data", data);
    let shown = path.display().to_string();
    let named = |e: &dnnc_data::DataError| {
        assert!(
            e.to_string().contains(&shown),
            "the error does not name the file: {e}"
        );
    };
    if let Err(e) = dnnc_data::idx::probe(&path) {
        named(&e);
    }
    if let Err(e) = dnnc_data::idx::load(&path) {
        named(&e);
    }
    if let Err(e) = dnnc_data::npy::load(&path) {
        named(&e);
    }
    for has_header in [false, true] {
        let opts = dnnc_data::csv::CsvOptions {
            has_header,
            delimiter: b',',
        };
        if let Err(e) = dnnc_data::csv::load(&path, &opts) {
            named(&e);
        }
    }
    for bytes in [false, true] {
        let opts = dnnc_data::text::TextOptions {
            window: 4,
            from_ppm: 0,
            to_ppm: 1_000_000,
            bytes,
        };
        if let Err(e) = dnnc_data::text::load(&path, &opts) {
            named(&e);
        }
    }
}

/// Safetensors: parsing, loading everything, and loading into expected tensors
/// (including conversions) return tensors or an error, never panic.
pub fn safetensors(data: &[u8]) {
    let path = write_scratch("input.safetensors", data);
    if let Ok(all) = dnnc_runtime::checkpoint::load(&path) {
        for (_, t) in &all {
            assert_eq!(
                t.data.len(),
                t.shape.iter().product::<usize>(),
                "a tensor's size"
            );
        }
        let expected: Vec<(String, DType, Vec<usize>)> = all
            .iter()
            .map(|(n, t)| (n.clone(), DType::F32, t.shape.clone()))
            .collect();
        let _ = dnnc_runtime::checkpoint::load_into(&path, &expected);
    }
    let guess = vec![("w".to_string(), DType::BF16, vec![2, 2])];
    let _ = dnnc_runtime::checkpoint::load_into(&path, &guess);
}

/// The IR text parser: what parses prints to text that parses to the same text.
pub fn ir_text(data: &[u8]) {
    let text = text_of(data);
    if let Ok(g) = dnnc_ir::text::parse_text(&text) {
        let printed = dnnc_ir::text::to_text(&g);
        let again = dnnc_ir::text::parse_text(&printed).expect("printed IR parses");
        assert_eq!(
            dnnc_ir::text::to_text(&again),
            printed,
            "the IR text does not round-trip"
        );
    }
}

/// The language server's frame relay: any input ends, and every frame it forwards
/// has a `Content-Length` matching a JSON object body.
pub fn lsp_transport(data: &[u8]) {
    let rt = tokio_runtime();
    let shutdown = AtomicBool::new(false);
    let mut out = Vec::new();
    rt.block_on(dnnc_lsp::transport::relay(data, &mut out, &shutdown))
        .expect("writing to memory cannot fail");
    let mut rest = &out[..];
    while !rest.is_empty() {
        let text = String::from_utf8_lossy(rest);
        let header_end = text
            .find("\r\n\r\n")
            .expect("a forwarded frame has a header");
        let length: usize = text[..header_end]
            .strip_prefix("Content-Length: ")
            .and_then(|l| l.trim().parse().ok())
            .expect("a forwarded frame declares its length");
        let body = &rest[header_end + 4..header_end + 4 + length];
        let v: serde_json::Value = serde_json::from_slice(body).expect("a forwarded body is JSON");
        assert!(v.is_object(), "a forwarded body is an object");
        rest = &rest[header_end + 4 + length..];
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}
