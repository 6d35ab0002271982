//! `dnnc compile --emit lib|obj|header`: static libraries with a C API.
//!
//! A library holds the inference graph at batch 1 and at the train block's batch, and
//! the training step at that batch (and at the size of the training split's last,
//! partial batch, when the data is there to tell), compiled by the native backend into
//! an object file ([`dnnc_codegen::object`]), with the initial parameters (the given
//! weights, else the seed's initialisation) embedded. `lib` bundles the object with the
//! runtime archive (`libdnnc_capi.a`) into `libNAME.a`, next to `NAME.h` and `NAME.pc`.

use crate::error::RunError;
use std::path::{Path, PathBuf};
use std::process::Command;

use dnnc_codegen::object::{header, library, Library, LibraryInput, LoopCompiler};
use dnnc_exec::library::{Field, ModelDesc, Param};
use dnnc_ir::{Graph, Op};
use dnnc_lower::{Lowered, Mode};

use crate::run::{initial_params, Job};
use crate::steps::{forward, train_step, PassOptions};

/// The library's C name: `NAME` of `libNAME.a`, else the model's name (the run's name in
/// the multi-model form) in snake_case.
pub fn library_name(job: &Job<'_>, output: Option<&Path>) -> Result<String, RunError> {
    let from_output = output
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .map(|s| s.strip_prefix("lib").unwrap_or(s).to_string());
    let name = match from_output {
        Some(n) => n,
        None => {
            let (id, sig) = dnnc_lower::model::train_item(job.db, job.file, job.item)?;
            match sig.models.as_slice() {
                [] => return Err(RunError::NotRunnable("the train block has no model".into())),
                [model] => snake_case(&model.inst.layer.name),
                // The multi-model form names its run: `train gan on mnist { ... }`.
                _ => match &dnnc_sema::items::item_ast(job.db, id).kind {
                    dnnc_syntax::ast::ItemKind::Train(t) => snake_case(&t.name.text),
                    _ => return Err(RunError::NotRunnable("not a train block".into())),
                },
            }
        }
    };
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(RunError::NotRunnable(format!(
            "`{name}` is not a C identifier; name the library `libNAME.a` with NAME made of letters, digits and `_`"
        )));
    }
    Ok(name)
}

fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The inputs of `g` other than the compiler's ports, with their per-sample shapes.
fn data_fields(g: &Graph) -> Vec<Field> {
    g.inputs()
        .into_iter()
        .filter_map(|n| match &g.node(n).op {
            Op::Input { name, dtype, shape } if dnnc_ir::Port::of(name).is_none() => Some(Field {
                name: name.clone(),
                dtype: *dtype,
                sample: shape.get(1..).unwrap_or(&[]).to_vec(),
            }),
            _ => None,
        })
        .collect()
}

/// The loop compiler `--backend` names for a library.
pub fn loop_compiler(backend: &str) -> Result<LoopCompiler, RunError> {
    match backend {
        "cranelift" => Ok(LoopCompiler::Cranelift),
        #[cfg(feature = "llvm")]
        "llvm" => Ok(LoopCompiler::Llvm),
        #[cfg(not(feature = "llvm"))]
        "llvm" => Err(RunError::NotRunnable("backend `llvm` is not in this build of dnnc: build it with `--features llvm` (needs LLVM 14)".into())),
        other => Err(RunError::NotRunnable(format!("libraries are compiled with `cranelift` or `llvm`, not `{other}`"))),
    }
}

/// Compiles the train block of `job` into a library named `name` (loops by `loops`),
/// with the parameters from `weights` if given.
pub fn build(
    job: &Job<'_>,
    name: &str,
    weights: Option<&Path>,
    loops: LoopCompiler,
    passes: &PassOptions,
) -> Result<(Library, String), RunError> {
    // Quantized weights (`dnnc quantize`) make an inference-only library: its products
    // run in int8, and it has no training step (which would need the f32 weights).
    let inference_passes = match weights {
        Some(w) => crate::quantize::passes_for(passes, w)?,
        None => passes.clone(),
    };
    let inference_only = !inference_passes.int8.is_empty();
    let max = job.cfg.batch.max(1);
    // The training split's size, if its data can be read, for the last partial batch
    // and the schedule's steps per epoch.
    let n_train = crate::data::load_split(job.db, job.dataset, "train")
        .ok()
        .map(|s| s.len());
    let steps_per_epoch = n_train.map_or(1, |n| n.div_ceil(max).max(1));
    let mut train_batches = vec![max];
    if let Some(rest) = n_train.map(|n| n % max).filter(|&r| r > 0) {
        train_batches.insert(0, rest);
    }
    let port = |g: &Graph, node: Option<dnnc_ir::NodeId>, what: &str| -> Result<Field, RunError> {
        let id =
            node.ok_or_else(|| RunError::Internal(format!("the inference graph has no {what}")))?;
        let ty = g.ty(id);
        Ok(Field {
            name: what.to_string(),
            dtype: ty.dtype,
            sample: ty.shape.get(1..).unwrap_or(&[]).to_vec(),
        })
    };
    // The exported models: the one model of the single-model form; every model of the
    // multi-model form that is not frozen, by its binding name.
    let (_, sig) = dnnc_lower::model::train_item(job.db, job.file, job.item)?;
    let exported: Vec<(String, Mode)> = if job.cfg.multi {
        sig.models
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.frozen)
            .map(|(k, m)| (m.name.to_string(), Mode::Forward(k)))
            .collect()
    } else {
        vec![(String::new(), Mode::Predict)]
    };
    let mut fwd = Vec::new();
    let mut models = Vec::new();
    for (k, (model, mode)) in exported.iter().enumerate() {
        for b in if max > 1 { vec![1, max] } else { vec![1] } {
            fwd.push((
                k,
                b,
                forward(job.db, job.file, job.item, *mode, b, &inference_passes)?,
            ));
        }
        let one = &fwd
            .iter()
            .find(|(m, _, _)| *m == k)
            .expect("compiled")
            .2
            .graph;
        let input_node = one.input_named("input");
        let input = port(one, input_node, "input")?;
        let output = port(one, one.output("output"), "output")?;
        // Inputs are floats or integers (`int32_t` in C: token ids, class indices);
        // outputs are floats.
        let input_ok = input.dtype == dnnc_ir::DType::F32 || input.dtype.is_int();
        if !input_ok || output.dtype != dnnc_ir::DType::F32 {
            return Err(RunError::NotRunnable(format!(
                "static libraries take f32 or integer inputs and return f32 tensors; the input or output of {} is neither",
                if model.is_empty() { "this model".to_string() } else { format!("model `{model}`") }
            )));
        }
        models.push(ModelDesc {
            name: model.clone(),
            input,
            output,
        });
    }
    let mut train = Vec::new();
    let steps = if inference_only {
        0
    } else {
        job.cfg.steps.len()
    };
    for s in 0..steps {
        for &b in &train_batches {
            let l = train_step(
                job.db,
                job.file,
                job.item,
                &job.cfg,
                s,
                steps_per_epoch,
                b,
                passes,
            )?;
            train.push((s, b, l));
        }
    }
    // Every step's parameters and data fields, each once, in order of appearance.
    let mut params: Vec<Param> = Vec::new();
    let mut infos = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    // The parameters of the training steps (a superset of inference's), or of
    // inference alone.
    let graphs: Vec<&Lowered> = if inference_only {
        fwd.iter().map(|(_, _, l)| l).collect()
    } else {
        train.iter().map(|(_, _, l)| l).collect()
    };
    for l in graphs {
        for p in &l.params {
            if !params.iter().any(|q| q.name == p.name) {
                params.push(Param {
                    name: p.name.clone(),
                    dtype: p.dtype,
                    shape: p.shape.clone(),
                });
                infos.push(p.clone());
            }
        }
        if inference_only {
            continue;
        }
        for f in data_fields(&l.graph) {
            if !fields.iter().any(|g| g.name == f.name) {
                fields.push(f);
            }
        }
    }
    let values = initial_params(
        &infos,
        match weights {
            Some(w) => crate::run::Weights::Saved(w),
            None => crate::run::Weights::Init(None, job.cfg.seed),
        },
    )?;
    let tensors: Vec<(String, &dnnc_tensor::Tensor)> = params
        .iter()
        .map(|p| (p.name.clone(), &values[&p.name]))
        .collect();
    let weights_bytes = dnnc_runtime::checkpoint::to_bytes(Path::new("<weights>"), &tensors)?;
    let lib = library(LibraryInput {
        loops,
        name: name.to_string(),
        forward: fwd.iter().map(|(k, b, l)| (*k, *b, &l.graph)).collect(),
        train: train.iter().map(|(s, b, l)| (*s, *b, &l.graph)).collect(),
        models,
        steps: job.cfg.steps[..steps]
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        fields,
        params,
        seed: job.cfg.seed,
        max_batch: max,
        weights: weights_bytes,
    })?;
    let h = header(&lib.desc);
    Ok((lib, h))
}

/// The runtime archive a library bundles.
#[derive(Clone, Debug)]
pub enum Runtime {
    /// `libdnnc_capi.a` on disk.
    File(PathBuf),
    /// Its bytes, embedded in `dnnc` when it was built.
    Embedded(&'static [u8]),
}

/// Where the runtime archive is: `explicit`, `$DNNC_RUNTIME`, the archive `dnnc` was
/// built with (`embedded`), or `libdnnc_capi.a` in the directory of the running `dnnc`
/// or a sibling cargo profile directory.
pub fn find_runtime(
    explicit: Option<&Path>,
    embedded: Option<&'static [u8]>,
) -> Result<Runtime, RunError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(Runtime::File(p.to_path_buf()))
        } else {
            Err(RunError::NotRunnable(format!(
                "{}: the runtime archive does not exist",
                p.display()
            )))
        };
    }
    if let Some(p) = std::env::var_os("DNNC_RUNTIME") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(Runtime::File(p))
        } else {
            Err(RunError::NotRunnable(format!(
                "{} (from DNNC_RUNTIME): the runtime archive does not exist",
                p.display()
            )))
        };
    }
    if let Some(bytes) = embedded {
        return Ok(Runtime::Embedded(bytes));
    }
    let exe = std::env::current_exe().map_err(|e| RunError::NotRunnable(e.to_string()))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    // The LTO-built archive of the `capi` profile first, then whatever cargo built.
    let mut candidates = Vec::new();
    if let Some(target) = dir.parent() {
        candidates.push(target.join("capi").join("libdnnc_capi.a"));
    }
    candidates.push(dir.join("libdnnc_capi.a"));
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            candidates.push(target.join(profile).join("libdnnc_capi.a"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .map(Runtime::File)
        .ok_or_else(|| {
            RunError::NotRunnable("this dnnc was built without its runtime archive (DNNC_EMBED_RUNTIME=0) and libdnnc_capi.a is not next to it; build it with `cargo build --profile capi -p dnnc-capi`, or pass `--runtime PATH` (or set DNNC_RUNTIME)".to_string())
        })
}

/// Writes `objects` bundled with the runtime archive as the static library `out`, using
/// `ar` (GNU binutils, which comes with any C compiler on Linux).
pub fn write_archive(objects: &[Vec<u8>], runtime: &Runtime, out: &Path) -> Result<(), RunError> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| RunError::write(dir, e))?;
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| RunError::write(out, "the library path has no file name"))?;
    let objs: Vec<PathBuf> = (0..objects.len())
        .map(|i| dir.join(format!(".{stem}.model{i}.o")))
        .collect();
    // `ar` reads an embedded runtime from a file beside the objects, removed with them.
    let mut scratch = objs.clone();
    let runtime = match runtime {
        Runtime::File(p) => p.clone(),
        Runtime::Embedded(bytes) => {
            let p = dir.join(format!(".{stem}.runtime.a"));
            scratch.push(p.clone());
            std::fs::write(&p, bytes).map_err(|e| RunError::write(&p, e))?;
            p
        }
    };
    for (path, bytes) in objs.iter().zip(objects) {
        if let Err(e) = std::fs::write(path, bytes) {
            remove_all(&scratch);
            return Err(RunError::write(path, e));
        }
    }
    let tmp = dir.join(format!(".{stem}.tmp.a"));
    let _ = std::fs::remove_file(&tmp);
    let mut script = format!("CREATE {}\nADDLIB {}\n", tmp.display(), runtime.display());
    for o in &objs {
        script.push_str(&format!("ADDMOD {}\n", o.display()));
    }
    script.push_str("SAVE\nEND\n");
    let run = Command::new("ar")
        .arg("-M")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(script.as_bytes())?;
            child.wait_with_output()
        });
    remove_all(&scratch);
    match run {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(RunError::write(
                out,
                format!(
                    "`ar -M` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            ));
        }
        Err(e) => {
            return Err(RunError::write(
                out,
                format!("could not run `ar` (GNU binutils): {e}"),
            ))
        }
    }
    std::fs::rename(&tmp, out).map_err(|e| RunError::write(out, e))
}

/// Removes scratch files, ignoring those already gone.
fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// The pkg-config file of library `name` in `dir`.
pub fn pkg_config(name: &str, dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!(
        "prefix={}\n\nName: {name}\nDescription: the {name} model, compiled by dnnc\nVersion: {}\nLibs: -L${{prefix}} -l{name} -lm -lpthread -ldl\nCflags: -I${{prefix}}\n",
        dir.display(),
        env!("CARGO_PKG_VERSION")
    )
}
