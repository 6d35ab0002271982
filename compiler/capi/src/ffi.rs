//! The exported C functions behind a library's `NAME_*` API.
//!
//! Conventions: `0` is success; `-1` a bad argument (null pointer, batch out of
//! range); `-2` a failure with a message (missing or corrupt file, mismatched weights);
//! `-3` an internal error (a panic caught at the boundary). The message of the last
//! failure on a model is kept in the model; failures without a model (a null `m`, or
//! `create` failing) are kept per thread and returned by `last_error(NULL)`.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use dnnc_exec::library::LibraryDesc;
use dnnc_exec::LoopFn;
use dnnc_tensor::DType;

use crate::model::{FieldData, Model};

/// A model with its last error message.
pub struct Handle {
    model: Model,
    error: CString,
}

thread_local! {
    static ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn c_string(msg: &str) -> CString {
    CString::new(msg.replace('\0', " ")).unwrap_or_default()
}

fn set_thread_error(msg: &str) {
    ERROR.with(|e| *e.borrow_mut() = c_string(msg));
}

/// Runs `f` on the model behind `m`, turning errors and panics into codes and
/// messages.
fn with_model(m: *mut Handle, f: impl FnOnce(&mut Model) -> Result<(), (i32, String)>) -> i32 {
    if m.is_null() {
        set_thread_error("the model pointer is null");
        return -1;
    }
    // SAFETY: a non-null handle comes from `dnnc_capi_create` (the C API's contract).
    let h = unsafe { &mut *m };
    let r = catch_unwind(AssertUnwindSafe(|| f(&mut h.model)));
    let (code, msg) = match r {
        Ok(Ok(())) => {
            // A success clears the message of an earlier failure.
            h.error = CString::default();
            return 0;
        }
        Ok(Err(e)) => e,
        Err(_) => (
            -3,
            "internal error in the dnnc runtime (a bug; please report it)".to_string(),
        ),
    };
    h.error = c_string(&msg);
    code
}

fn path_arg(path: *const c_char) -> Result<PathBuf, (i32, String)> {
    if path.is_null() {
        return Err((-1, "the path is null".into()));
    }
    // SAFETY: a non-null C string (the C API's contract).
    let s = unsafe { CStr::from_ptr(path) };
    let s = s
        .to_str()
        .map_err(|_| (-1, "the path is not valid UTF-8".to_string()))?;
    if s.is_empty() {
        return Err((-1, "the path is empty".into()));
    }
    Ok(PathBuf::from(s))
}

fn batch_arg(batch: i64, max: usize) -> Result<usize, (i32, String)> {
    match usize::try_from(batch) {
        Ok(b) if b >= 1 && b <= max => Ok(b),
        _ => Err((
            -1,
            format!("batch {batch} is out of range: it must be 1 to {max}"),
        )),
    }
}

/// Makes a model from a library's description, weights and loop table.
///
/// # Safety
/// The pointers must address `desc_len` and `weights_len` readable bytes and
/// `loops_len` function pointers, alive for the program's lifetime (the library's
/// static data).
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_create(
    desc: *const u8,
    desc_len: i64,
    weights: *const u8,
    weights_len: i64,
    loops: *const LoopFn,
    loops_len: i64,
) -> *mut Handle {
    let r = catch_unwind(|| -> Result<Model, String> {
        if desc.is_null() || weights.is_null() || (loops.is_null() && loops_len > 0) {
            return Err("the library's embedded data is missing".into());
        }
        let desc = std::slice::from_raw_parts(desc, desc_len.max(0) as usize);
        let weights = std::slice::from_raw_parts(weights, weights_len.max(0) as usize);
        let loops: &[LoopFn] = if loops_len > 0 {
            std::slice::from_raw_parts(loops, loops_len as usize)
        } else {
            &[]
        };
        let desc: LibraryDesc = serde_json::from_slice(desc)
            .map_err(|e| format!("the library's description is corrupt: {e}"))?;
        Model::new(desc, weights, loops)
    });
    match r {
        Ok(Ok(model)) => Box::into_raw(Box::new(Handle {
            model,
            error: CString::default(),
        })),
        Ok(Err(e)) => {
            set_thread_error(&e);
            std::ptr::null_mut()
        }
        Err(_) => {
            set_thread_error("internal error in the dnnc runtime while creating a model");
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `m` is null or from `dnnc_capi_create`; `path` is null or a C string.
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_load_weights(m: *mut Handle, path: *const c_char) -> i32 {
    with_model(m, |model| {
        let p = path_arg(path)?;
        model.load_weights(&p).map_err(|e| (-2, e))
    })
}

/// # Safety
/// As for [`dnnc_capi_load_weights`].
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_save_weights(m: *mut Handle, path: *const c_char) -> i32 {
    with_model(m, |model| {
        let p = path_arg(path)?;
        model.save_weights(&p).map_err(|e| (-2, e))
    })
}

/// # Safety
/// `input` and `output` are null or address `batch` samples' worth of the model's
/// input (floats, or `int32_t` for an integer input) and of floats.
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_forward(
    m: *mut Handle,
    input: *const u8,
    batch: i64,
    output: *mut f32,
) -> i32 {
    dnnc_capi_forward_model(m, 0, input, batch, output)
}

/// `forward` of model `index` of the library (`NAME_G_forward`).
///
/// # Safety
/// `input` and `output` are null or address `batch` samples' worth of that model's
/// input (floats, or `int32_t` for an integer input) and of floats.
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_forward_model(
    m: *mut Handle,
    index: i64,
    input: *const u8,
    batch: i64,
    output: *mut f32,
) -> i32 {
    with_model(m, |model| {
        if input.is_null() || output.is_null() {
            return Err((-1, "the input or output pointer is null".into()));
        }
        let k = usize::try_from(index)
            .ok()
            .filter(|&k| k < model.desc.models.len())
            .ok_or_else(|| (-1, format!("the library has no model {index}")))?;
        let b = batch_arg(batch, model.desc.max_batch)?;
        let (isz, osz) = (
            model.desc.models[k].input.size(),
            model.desc.models[k].output.size(),
        );
        let input = if model.desc.models[k].input.dtype == DType::F32 {
            FieldData::F32(std::slice::from_raw_parts(input as *const f32, b * isz))
        } else {
            FieldData::I32(std::slice::from_raw_parts(input as *const i32, b * isz))
        };
        let output = std::slice::from_raw_parts_mut(output, b * osz);
        model.forward(k, input, b, output)
    })
}

/// # Safety
/// `loss` is null or writable for one float per step of the plan; the first `nfields`
/// field pointers are null or address `batch` samples of their field (floats, or
/// `int32_t` for integer fields).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn dnnc_capi_train_step(
    m: *mut Handle,
    batch: i64,
    loss: *mut f32,
    nfields: i64,
    f0: *const u8,
    f1: *const u8,
    f2: *const u8,
    f3: *const u8,
) -> i32 {
    with_model(m, |model| {
        if loss.is_null() {
            return Err((-1, "the loss pointer is null".into()));
        }
        let b = batch_arg(batch, model.desc.max_batch)?;
        let ptrs = [f0, f1, f2, f3];
        if nfields < 0 || nfields as usize != model.desc.fields.len() {
            return Err((-1, "the number of data fields does not match".into()));
        }
        let mut fields = Vec::with_capacity(model.desc.fields.len());
        for (f, &p) in model.desc.fields.iter().zip(&ptrs) {
            if p.is_null() {
                return Err((-1, format!("the pointer for field `{}` is null", f.name)));
            }
            let n = b * f.size();
            fields.push(if f.dtype == DType::F32 {
                FieldData::F32(std::slice::from_raw_parts(p as *const f32, n))
            } else {
                FieldData::I32(std::slice::from_raw_parts(p as *const i32, n))
            });
        }
        let losses = model.train_step(&fields, b)?;
        std::slice::from_raw_parts_mut(loss, losses.len()).copy_from_slice(&losses);
        Ok(())
    })
}

/// # Safety
/// `m` is null or from `dnnc_capi_create`.
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_last_error(m: *const Handle) -> *const c_char {
    if m.is_null() {
        return ERROR.with(|e| e.borrow().as_ptr());
    }
    (*m).error.as_ptr()
}

/// # Safety
/// `m` is null or from `dnnc_capi_create`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dnnc_capi_destroy(m: *mut Handle) {
    if !m.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(m))));
    }
}

// The scalar helpers object files' loops call (see `dnnc_exec::helpers`).
#[no_mangle]
pub extern "C" fn dnnc_sin(x: f32) -> f32 {
    dnnc_exec::helpers::sin(x)
}
#[no_mangle]
pub extern "C" fn dnnc_cos(x: f32) -> f32 {
    dnnc_exec::helpers::cos(x)
}
#[no_mangle]
pub extern "C" fn dnnc_pow(x: f32, y: f32) -> f32 {
    dnnc_exec::helpers::pow(x, y)
}
