//! Storage: 64-byte-aligned blocks of zeroed memory, typed views of them, and the
//! borrowed slices kernels read and write.
//!
//! Every value a compiled graph computes lives at a fixed address for the graph's
//! lifetime (ports in their own blocks, temporaries at planned offsets of one arena),
//! so steps can hold raw views made at compile time and run without allocating.

use std::alloc::{alloc_zeroed, dealloc, Layout};

use dnnc_ir::DType;
use dnnc_tensor::Data;

/// How elements are stored: `f32`, `i64` (every integer dtype, as in [`Data`]) or
/// `bool` (one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    F32,
    I64,
    Bool,
}

impl Kind {
    pub fn of(dtype: DType) -> Kind {
        match dtype {
            DType::F32 => Kind::F32,
            DType::Bool => Kind::Bool,
            DType::I64 | DType::I32 | DType::U8 => Kind::I64,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Kind::F32 => 4,
            Kind::I64 => 8,
            Kind::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::F32 => "f32",
            Kind::I64 => "i64",
            Kind::Bool => "bool",
        }
    }
}

/// An owned, zeroed, 64-byte-aligned allocation.
pub struct Block {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: a `Block` is plain memory owned by one `Compiled`.
unsafe impl Send for Block {}

impl Block {
    /// A zeroed block of `bytes`, or `Err` with the size when the memory cannot be had.
    pub fn new(bytes: usize) -> Result<Block, String> {
        let too_large = || {
            format!(
                "cannot allocate {} for a compiled graph's storage",
                dnnc_tensor::memory::human_bytes(bytes as u128)
            )
        };
        let layout = Layout::from_size_align(bytes.max(64), 64).map_err(|_| too_large())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(too_large());
        }
        Ok(Block { ptr, layout })
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// A typed view of `len` elements at a fixed address.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub kind: Kind,
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: views point into blocks owned by the same `Compiled`; the schedule decides
// who reads and writes them and when.
unsafe impl Send for View {}
unsafe impl Sync for View {}

/// A kernel's borrowed operand.
#[derive(Clone, Copy)]
pub enum In<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    Bool(&'a [bool]),
}

/// A kernel's borrowed result.
pub enum Out<'a> {
    F32(&'a mut [f32]),
    I64(&'a mut [i64]),
    Bool(&'a mut [bool]),
}

impl View {
    pub fn bytes(&self) -> usize {
        self.len * self.kind.size()
    }

    /// # Safety
    /// Nothing may write the view's memory while the slice lives.
    pub unsafe fn input<'a>(self) -> In<'a> {
        match self.kind {
            Kind::F32 => In::F32(std::slice::from_raw_parts(self.ptr as *const f32, self.len)),
            Kind::I64 => In::I64(std::slice::from_raw_parts(self.ptr as *const i64, self.len)),
            Kind::Bool => In::Bool(std::slice::from_raw_parts(
                self.ptr as *const bool,
                self.len,
            )),
        }
    }

    /// # Safety
    /// Nothing else may read or write the view's memory while the slice lives.
    pub unsafe fn output<'a>(self) -> Out<'a> {
        match self.kind {
            Kind::F32 => Out::F32(std::slice::from_raw_parts_mut(
                self.ptr as *mut f32,
                self.len,
            )),
            Kind::I64 => Out::I64(std::slice::from_raw_parts_mut(
                self.ptr as *mut i64,
                self.len,
            )),
            Kind::Bool => Out::Bool(std::slice::from_raw_parts_mut(
                self.ptr as *mut bool,
                self.len,
            )),
        }
    }

    /// Overwrites the view with `data` (same kind and length, checked by the caller).
    ///
    /// # Safety
    /// As for [`View::output`].
    pub unsafe fn write(self, data: &Data) {
        match (self.output(), data) {
            (Out::F32(o), Data::F32(d)) => o.copy_from_slice(d),
            (Out::I64(o), Data::I64(d)) => o.copy_from_slice(d),
            (Out::Bool(o), Data::Bool(d)) => o.copy_from_slice(d),
            _ => unreachable!("kinds were checked"),
        }
    }

    /// A copy of the view's elements.
    ///
    /// # Safety
    /// As for [`View::input`].
    pub unsafe fn read(self) -> Data {
        match self.input() {
            In::F32(v) => Data::F32(v.to_vec()),
            In::I64(v) => Data::I64(v.to_vec()),
            In::Bool(v) => Data::Bool(v.to_vec()),
        }
    }
}

/// The kind of a host tensor's storage.
pub fn kind_of(data: &Data) -> Kind {
    match data {
        Data::F32(_) => Kind::F32,
        Data::I64(_) => Kind::I64,
        Data::Bool(_) => Kind::Bool,
    }
}
