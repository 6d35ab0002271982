//! Reading IDX files (MNIST's format, gzip-compressed or not) from C, for examples and
//! tests: `dnnc_idx_dims`, `dnnc_idx_read_f32`, `dnnc_idx_read_i32`,
//! `dnnc_idx_last_error`.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::catch_unwind;
use std::path::PathBuf;

thread_local! {
    static ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn fail(msg: String) -> i32 {
    ERROR.with(|e| *e.borrow_mut() = CString::new(msg.replace('\0', " ")).unwrap_or_default());
    -1
}

unsafe fn path_of(path: *const c_char) -> Result<PathBuf, String> {
    if path.is_null() {
        return Err("the path is null".into());
    }
    Ok(PathBuf::from(
        CStr::from_ptr(path)
            .to_str()
            .map_err(|_| "the path is not valid UTF-8".to_string())?,
    ))
}

/// The elements of the IDX file at `path`, with its shape.
fn load(path: &std::path::Path) -> Result<dnnc_tensor::Tensor, String> {
    dnnc_data::idx::load(path).map_err(|e| e.to_string())
}

/// Stores up to `max_rank` dimensions of the IDX file at `path` in `dims` and returns
/// its rank, or -1.
///
/// # Safety
/// `path` is null or a C string; `dims` is null or has room for `max_rank` values.
#[no_mangle]
pub unsafe extern "C" fn dnnc_idx_dims(path: *const c_char, dims: *mut i64, max_rank: i32) -> i32 {
    guarded(|| {
        let p = path_of(path)?;
        if dims.is_null() || max_rank < 0 {
            return Err("the dims pointer is null".into());
        }
        let h = dnnc_data::idx::probe(&p).map_err(|e| e.to_string())?;
        for (i, &d) in h.shape.iter().take(max_rank as usize).enumerate() {
            *dims.add(i) = d as i64;
        }
        Ok(h.shape.len() as i32)
    })
}

/// Reads exactly `count` elements of the IDX file at `path`, times `scale`.
///
/// # Safety
/// `out` is null or has room for `count` floats.
#[no_mangle]
pub unsafe extern "C" fn dnnc_idx_read_f32(
    path: *const c_char,
    out: *mut f32,
    count: i64,
    scale: f32,
) -> i32 {
    guarded(|| {
        let p = path_of(path)?;
        if out.is_null() {
            return Err("the output pointer is null".into());
        }
        let t = load(&p)?;
        if t.data.len() as i64 != count {
            return Err(format!(
                "{} holds {} elements, not {count}",
                p.display(),
                t.data.len()
            ));
        }
        let out = std::slice::from_raw_parts_mut(out, count as usize);
        for (o, x) in out.iter_mut().zip(t.data.to_f32_vec()) {
            *o = x * scale;
        }
        Ok(0)
    })
}

/// Reads exactly `count` integer elements of the IDX file at `path`.
///
/// # Safety
/// `out` is null or has room for `count` integers.
#[no_mangle]
pub unsafe extern "C" fn dnnc_idx_read_i32(path: *const c_char, out: *mut i32, count: i64) -> i32 {
    guarded(|| {
        let p = path_of(path)?;
        if out.is_null() {
            return Err("the output pointer is null".into());
        }
        let t = load(&p)?;
        if !t.dtype.is_int() {
            return Err(format!("{} does not hold integers", p.display()));
        }
        let v = &t.data.to_i64_vec();
        if v.len() as i64 != count {
            return Err(format!(
                "{} holds {} elements, not {count}",
                p.display(),
                v.len()
            ));
        }
        let out = std::slice::from_raw_parts_mut(out, count as usize);
        for (o, &x) in out.iter_mut().zip(v) {
            *o =
                i32::try_from(x).map_err(|_| format!("{} holds {x}, beyond int32", p.display()))?;
        }
        Ok(0)
    })
}

/// Runs `f`, turning its error or panic into -1 with the message kept for
/// [`dnnc_idx_last_error`].
fn guarded(f: impl FnOnce() -> Result<i32, String> + std::panic::UnwindSafe) -> i32 {
    match catch_unwind(f) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => fail(e),
        Err(_) => fail("internal error while reading an IDX file".into()),
    }
}

/// The message of the last failed `dnnc_idx_*` call on this thread.
#[no_mangle]
pub extern "C" fn dnnc_idx_last_error() -> *const c_char {
    ERROR.with(|e| e.borrow().as_ptr())
}
