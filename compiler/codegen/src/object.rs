//! Object files for static libraries: the same loops as the JIT, compiled
//! position-independent with `cranelift-object`, plus what the C API needs.
//!
//! The object defines, for a library named `NAME`:
//! - the loop functions of every program (local), and `NAME_loops`, a table of their
//!   addresses;
//! - `NAME_desc` (the [`LibraryDesc`] as JSON) and `NAME_weights` (safetensors);
//! - the C API, `NAME_create`, `NAME_load_weights`, `NAME_save_weights`,
//!   `NAME_forward`, `NAME_train_step`, `NAME_last_error` and `NAME_destroy`: small
//!   functions that pass these symbols (or their arguments) to the runtime's
//!   `dnnc_capi_*` functions, which come from the `dnnc-capi` archive the library is
//!   bundled with.
//!
//! [`header`] writes the matching C header.

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, Type, UserFuncName, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{default_libcall_names, DataDescription, DataId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use dnnc_exec::library::{Entry, Field, LibraryDesc, ModelDesc, Param};
use dnnc_ir::{DType, Graph};

use crate::error::CodegenError;
use crate::jit::{err, isa, Loops};

/// Which compiler makes the loops of a library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopCompiler {
    Cranelift,
    /// LLVM, for the compiling machine's CPU (feature `llvm`): a second object file.
    #[cfg(feature = "llvm")]
    Llvm,
}

/// What goes into a library.
pub struct LibraryInput<'a> {
    pub loops: LoopCompiler,
    /// The C name prefix (an identifier).
    pub name: String,
    /// Inference graphs: (model, batch size, graph).
    pub forward: Vec<(usize, usize, &'a Graph)>,
    /// Training steps: (step of the plan, batch size, graph).
    pub train: Vec<(usize, usize, &'a Graph)>,
    /// The models whose inference is exported, in the order of `forward`'s indices.
    pub models: Vec<ModelDesc>,
    /// The plan's steps, in order.
    pub steps: Vec<String>,
    pub fields: Vec<Field>,
    pub params: Vec<Param>,
    pub seed: u64,
    pub max_batch: usize,
    /// The initial parameters, as a safetensors file.
    pub weights: Vec<u8>,
}

/// The object files of a library (the C API, data and loop table first; with LLVM,
/// then the loops) and the description it embeds.
pub struct Library {
    pub objects: Vec<Vec<u8>>,
    pub desc: LibraryDesc,
}

/// How many data pointers `train_step` passes on (one per field of the train block).
pub const MAX_FIELDS: usize = 4;

/// Compiles `input` into an object file.
pub fn library(input: LibraryInput<'_>) -> Result<Library, CodegenError> {
    if input.fields.len() > MAX_FIELDS {
        return Err(CodegenError::Object(format!(
            "the train block reads {} data fields; static libraries take at most {MAX_FIELDS}",
            input.fields.len()
        )));
    }
    // Every program's loops, numbered across the library: compiled here by Cranelift,
    // or (LLVM) declared here and defined in a second object.
    let mut all_groups: Vec<(&Graph, crate::fuse::Group)> = Vec::new();
    let forward = entries(&input.forward, &mut all_groups, |e, m| e.model = m)?;
    let train = entries(&input.train, &mut all_groups, |e, s| e.step = s)?;
    emit(input, forward, train, &all_groups).map_err(CodegenError::Object)
}

/// The object files of a library whose programs are `forward` and `train` and whose
/// loops are `all_groups`.
fn emit(
    input: LibraryInput<'_>,
    forward: Vec<Entry>,
    train: Vec<Entry>,
    all_groups: &[(&Graph, crate::fuse::Group)],
) -> Result<Library, String> {
    let builder = ObjectBuilder::new(
        isa(true)?,
        format!("{}.o", input.name),
        default_libcall_names(),
    )
    .map_err(|e| err("object", e))?;
    let module = ObjectModule::new(builder);
    let mut loops = Loops::with_module(module, &format!("{}_", input.name), Linkage::Local)?;

    let mut objects = Vec::new();
    let fns: Vec<cranelift_module::FuncId> = match input.loops {
        LoopCompiler::Cranelift => {
            for (g, group) in all_groups {
                loops.declare(g, group)?;
            }
            loops.fns.clone()
        }
        #[cfg(feature = "llvm")]
        LoopCompiler::Llvm => {
            let names: Vec<String> = (0..all_groups.len())
                .map(|k| format!("{}_loop{k}", input.name))
                .collect();
            let pairs: Vec<(&Graph, &crate::fuse::Group)> =
                all_groups.iter().map(|(g, gr)| (*g, gr)).collect();
            objects.push(crate::llvm::object(&pairs, &names)?);
            let m = &mut loops.module;
            let ptr = m.target_config().pointer_type();
            let mut sig = m.make_signature();
            sig.params.push(AbiParam::new(ptr));
            sig.params.push(AbiParam::new(types::I64));
            sig.params.push(AbiParam::new(types::I64));
            names
                .iter()
                .map(|n| {
                    m.declare_function(n, Linkage::Import, &sig)
                        .map_err(|e| err("declare", e))
                })
                .collect::<Result<_, _>>()?
        }
    };
    let desc = LibraryDesc {
        name: input.name.clone(),
        max_batch: input.max_batch,
        forward,
        train,
        models: input.models.clone(),
        steps: input.steps.clone(),
        fields: input.fields.clone(),
        params: input.params.clone(),
        seed: input.seed,
        loop_count: fns.len(),
    };
    let json = serde_json_bytes(&desc)?;

    let name = input.name.clone();
    let module = &mut loops.module;
    let data = |module: &mut ObjectModule, sym: &str, bytes: Vec<u8>| -> Result<DataId, String> {
        let id = module
            .declare_data(sym, Linkage::Local, false, false)
            .map_err(|e| err("data", e))?;
        let mut d = DataDescription::new();
        d.define(bytes.into_boxed_slice());
        d.set_align(16);
        module.define_data(id, &d).map_err(|e| err("data", e))?;
        Ok(id)
    };
    let desc_len = json.len();
    let weights_len = input.weights.len();
    let desc_id = data(module, &format!("{name}_desc"), json)?;
    let weights_id = data(module, &format!("{name}_weights"), input.weights)?;
    // Writable, with explicit contents: relocations in a zero-initialised or read-only
    // section would not be applied in a position-independent executable.
    let table_id = module
        .declare_data(&format!("{name}_loops"), Linkage::Local, true, false)
        .map_err(|e| err("data", e))?;
    let mut table = DataDescription::new();
    table.define(vec![0u8; 8 * fns.len().max(1)].into_boxed_slice());
    table.set_align(8);
    for (i, &f) in fns.iter().enumerate() {
        let fref = module.declare_func_in_data(f, &mut table);
        table.write_function_addr((8 * i) as u32, fref);
    }
    module
        .define_data(table_id, &table)
        .map_err(|e| err("data", e))?;

    let ptr = module.target_config().pointer_type();
    let mut w = Wrappers {
        module,
        fctx: FunctionBuilderContext::new(),
    };
    // NAME_create() -> model
    w.emit(
        &format!("{name}_create"),
        &[],
        Some(ptr),
        "dnnc_capi_create",
        &[ptr, types::I64, ptr, types::I64, ptr, types::I64],
        &|b, m, _| {
            let at = |b: &mut FunctionBuilder<'_>, m: &mut ObjectModule, id: DataId| {
                let gv = m.declare_data_in_func(id, b.func);
                b.ins().symbol_value(ptr, gv)
            };
            let d = at(b, m, desc_id);
            let dl = b.ins().iconst(types::I64, desc_len as i64);
            let wts = at(b, m, weights_id);
            let wl = b.ins().iconst(types::I64, weights_len as i64);
            let t = at(b, m, table_id);
            let tl = b.ins().iconst(types::I64, fns.len() as i64);
            vec![d, dl, wts, wl, t, tl]
        },
    )?;
    for (suffix, callee) in [
        ("load_weights", "dnnc_capi_load_weights"),
        ("save_weights", "dnnc_capi_save_weights"),
    ] {
        w.emit(
            &format!("{name}_{suffix}"),
            &[ptr, ptr],
            Some(types::I32),
            callee,
            &[ptr, ptr],
            &|_, _, args| args.to_vec(),
        )?;
    }
    // NAME_forward (NAME_G_forward for model G) -> dnnc_capi_forward_model(m, k, ...)
    for (k, model) in input.models.iter().enumerate() {
        w.emit(
            &forward_symbol(&name, model),
            &[ptr, ptr, types::I64, ptr],
            Some(types::I32),
            "dnnc_capi_forward_model",
            &[ptr, types::I64, ptr, types::I64, ptr],
            &|b, _, args| {
                let k = b.ins().iconst(types::I64, k as i64);
                vec![args[0], k, args[1], args[2], args[3]]
            },
        )?;
    }
    // NAME_train_step(m, field..., batch, loss) -> dnnc_capi_train_step(m, batch,
    // loss, nfields, f0, f1, f2, f3)
    let k = input.fields.len();
    let mut params = vec![ptr];
    params.extend(std::iter::repeat_n(ptr, k));
    params.extend([types::I64, ptr]);
    let mut callee = vec![ptr, types::I64, ptr, types::I64];
    callee.extend(std::iter::repeat_n(ptr, MAX_FIELDS));
    w.emit(
        &format!("{name}_train_step"),
        &params,
        Some(types::I32),
        "dnnc_capi_train_step",
        &callee,
        &|b, _, args| {
            let mut v = vec![args[0], args[k + 1], args[k + 2]];
            v.push(b.ins().iconst(types::I64, k as i64));
            v.extend(&args[1..=k]);
            for _ in k..MAX_FIELDS {
                v.push(b.ins().iconst(ptr, 0));
            }
            v
        },
    )?;
    w.emit(
        &format!("{name}_last_error"),
        &[ptr],
        Some(ptr),
        "dnnc_capi_last_error",
        &[ptr],
        &|_, _, args| args.to_vec(),
    )?;
    w.emit(
        &format!("{name}_destroy"),
        &[ptr],
        None,
        "dnnc_capi_destroy",
        &[ptr],
        &|_, _, args| args.to_vec(),
    )?;
    let product = loops.module.finish();
    let object = product.emit().map_err(|e| err("emitting the object", e))?;
    objects.insert(0, object);
    Ok(Library { objects, desc })
}

/// The exported inference function of `model` in library `name`: `NAME_forward`, or
/// `NAME_G_forward` for model `G` of a multi-model block.
pub fn forward_symbol(name: &str, model: &ModelDesc) -> String {
    if model.name.is_empty() {
        format!("{name}_forward")
    } else {
        format!("{name}_{}_forward", model.name)
    }
}

/// The programs of `graphs` (`(index, batch, graph)`; `tag` records the index in the
/// entry), their loops' groups appended to `all` (numbered across the library).
fn entries<'a>(
    graphs: &[(usize, usize, &'a Graph)],
    all: &mut Vec<(&'a Graph, crate::fuse::Group)>,
    tag: fn(&mut Entry, usize),
) -> Result<Vec<Entry>, CodegenError> {
    let mut out = Vec::new();
    for &(index, batch, g) in graphs {
        let (program, groups) = crate::build_program(g)?;
        let mut e = Entry {
            batch,
            program,
            first_loop: all.len(),
            model: 0,
            step: 0,
        };
        tag(&mut e, index);
        out.push(e);
        all.extend(groups.into_iter().map(|gr| (g, gr)));
    }
    Ok(out)
}

fn serde_json_bytes(desc: &LibraryDesc) -> Result<Vec<u8>, String> {
    serde_json::to_vec(desc).map_err(|e| format!("serialising the library description: {e}"))
}

/// Emits exported forwarding functions.
struct Wrappers<'m> {
    module: &'m mut ObjectModule,
    fctx: FunctionBuilderContext,
}

type ArgFn<'f> = dyn Fn(&mut FunctionBuilder<'_>, &mut ObjectModule, &[Value]) -> Vec<Value> + 'f;

impl Wrappers<'_> {
    /// `export(params) -> ret { return callee(args(params)) }`.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        export: &str,
        params: &[Type],
        ret: Option<Type>,
        callee: &str,
        callee_params: &[Type],
        args: &ArgFn<'_>,
    ) -> Result<(), String> {
        let m = &mut *self.module;
        let mut sig = m.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(ret.map(AbiParam::new));
        let mut csig = m.make_signature();
        csig.params
            .extend(callee_params.iter().map(|&t| AbiParam::new(t)));
        csig.returns.extend(ret.map(AbiParam::new));
        let id = m
            .declare_function(export, Linkage::Export, &sig)
            .map_err(|e| err("declare", e))?;
        let cid = m
            .declare_function(callee, Linkage::Import, &csig)
            .map_err(|e| err("declare", e))?;
        let mut ctx = m.make_context();
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let ps = b.block_params(entry).to_vec();
            let fref = m.declare_func_in_func(cid, b.func);
            let a = args(&mut b, m, &ps);
            let call = b.ins().call(fref, &a);
            let results = b.inst_results(call).to_vec();
            b.ins().return_(&results);
            b.seal_all_blocks();
            b.finalize(m.target_config());
        }
        m.define_function(id, &mut ctx)
            .map_err(|e| err(&format!("compiling {export}"), e))?;
        Ok(())
    }
}

/// The C type of one element of `dtype` as `train_step` takes it.
fn c_type(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float",
        _ => "int32_t",
    }
}

/// The C header of a library.
pub fn header(desc: &LibraryDesc) -> String {
    let n = &desc.name;
    let upper = n.to_uppercase();
    let fields: Vec<String> = desc
        .fields
        .iter()
        .map(|f| format!("const {} *{}", c_type(f.dtype), f.name))
        .collect();
    let field_docs: Vec<String> = desc
        .fields
        .iter()
        .map(|f| {
            format!(
                " *   {:<10} {} per sample ({} elements, shape [{}]){}",
                f.name,
                c_type(f.dtype),
                f.size(),
                f.sample
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if f.dtype == DType::F32 {
                    String::new()
                } else {
                    format!("; values must fit {}", f.dtype)
                }
            )
        })
        .collect();
    let mut train_batches: Vec<String> = desc.train.iter().map(|e| e.batch.to_string()).collect();
    train_batches.dedup();
    let models: Vec<String> = desc
        .models
        .iter()
        .map(|m| model_api(n, m, desc.max_batch))
        .collect();
    let loss_doc = if desc.steps.len() > 1 {
        format!(
            "runs the plan's steps in order ({}); loss must hold {} floats and\n * receives each step's mean loss, in that order.\n *",
            desc.steps.join(", "),
            desc.steps.len()
        )
    } else {
        "the mean loss of the batch goes to *loss.\n *".to_string()
    };
    let train_api = if desc.train.is_empty() {
        "/* For inference only: compiled from weights quantized to int8 (`dnnc quantize`),\n * this library has no training step. */\n".to_string()
    } else {
        format!(
            "/* One optimizer step on `batch` samples (one of the compiled training batch sizes):\n * {loss_doc} One pointer per field of the train block's data, in order:\n{}\n */\nint {n}_train_step({n}_t *m, {}, int64_t batch, float *loss);\n",
            field_docs.join("\n"),
            fields.join(", ")
        )
    };
    format!(
        r#"/* {n}.h: the C API of the `{n}` model, generated by `dnnc compile`.
 *
 * Link with:  cc main.c lib{n}.a -lm -lpthread -ldl
 *
 * Every function returning int returns 0 on success and non-zero on failure; then
 * {n}_last_error(m) says why (a null model, a null pointer, a batch out of range,
 * a missing, corrupt or mismatched weights file). Nothing aborts the program.
 * Separate instances share nothing and may be used from separate threads at once;
 * one instance must not be used by two threads at the same time.
 */
#ifndef {upper}_H
#define {upper}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

/* The largest batch forward and train_step take. */
#define {upper}_MAX_BATCH {max}
/* The batch sizes train_step was compiled for: {train_batches}. */

typedef struct {n} {n}_t;

/* A new instance: the weights embedded by `dnnc compile --weights`, else freshly
 * initialised from the train block's seed. NULL if it cannot be made (see
 * {n}_last_error(NULL)). */
{n}_t *{n}_create(void);

/* Replace the parameters with those of a safetensors file (as `dnnc train` writes). */
int {n}_load_weights({n}_t *m, const char *safetensors_path);

/* Write the parameters as a safetensors file (written whole, then renamed). */
int {n}_save_weights(const {n}_t *m, const char *safetensors_path);

{models}
{train_api}

/* Why the last call on `m` failed (or why {n}_create failed, for NULL). Valid until
 * the next call on `m`. */
const char *{n}_last_error(const {n}_t *m);

/* Free the instance (NULL is allowed). */
void {n}_destroy({n}_t *m);

/* Reading IDX files (such as MNIST's, gzip-compressed or not), for examples and
 * tests. dnnc_idx_dims stores up to max_rank dimensions and returns the rank;
 * dnnc_idx_read_f32 reads `count` elements multiplied by `scale`;
 * dnnc_idx_read_i32 reads `count` integers. On failure they return -1 and
 * dnnc_idx_last_error() says why. */
int dnnc_idx_dims(const char *path, int64_t *dims, int max_rank);
int dnnc_idx_read_f32(const char *path, float *out, int64_t count, float scale);
int dnnc_idx_read_i32(const char *path, int32_t *out, int64_t count);
const char *dnnc_idx_last_error(void);

#ifdef __cplusplus
}}
#endif

#endif /* {upper}_H */
"#,
        max = desc.max_batch,
        models = models.join("\n"),
        train_batches = train_batches.join(", "),
    )
}

/// The header's declarations of `model`'s inference: its sizes and function.
fn model_api(n: &str, model: &ModelDesc, max: usize) -> String {
    let upper = if model.name.is_empty() {
        n.to_uppercase()
    } else {
        format!("{}_{}", n.to_uppercase(), model.name.to_uppercase())
    };
    let which = if model.name.is_empty() {
        "the model".to_string()
    } else {
        format!("model `{}`", model.name)
    };
    format!(
        r#"/* Elements of one input sample and of one output row of {which}. */
#define {upper}_INPUT_SIZE {input}
#define {upper}_OUTPUT_SIZE {output}

/* Run {which} on `batch` samples (1 .. {max}): `input` holds batch * {upper}_INPUT_SIZE
 * {elements}, `output` receives batch * {upper}_OUTPUT_SIZE floats. */
int {f}({n}_t *m, const {c} *input, int64_t batch, float *output);
"#,
        c = c_type(model.input.dtype),
        elements = if model.input.dtype == DType::F32 {
            "floats"
        } else {
            "int32_t values"
        },
        input = model.input.size(),
        output = model.output.size(),
        f = forward_symbol(n, model),
    )
}
