//! Storage: 64-byte-aligned blocks of zeroed memory, typed views of them, and the
//! borrowed slices kernels read and write.
//!
//! Every value a compiled graph computes lives at a fixed address for the graph's
//! lifetime (ports in their own blocks, temporaries at planned offsets of one arena),
//! so steps can hold raw views made at compile time and run without allocating.

use dnnc_tensor::memory::MemoryError;
use std::alloc::{alloc_zeroed, dealloc, Layout};

use dnnc_ir::DType;
use dnnc_tensor::{bf16, f16, Data};

/// A kernel's borrowed operand: elements of one type, in their real width.
pub type In<'a> = dnnc_tensor::Slice<'a>;

/// A kernel's borrowed result.
pub type Out<'a> = dnnc_tensor::SliceMut<'a>;

/// An owned, zeroed, 64-byte-aligned allocation.
pub struct Block {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: a `Block` is plain memory owned by one `Compiled`.
unsafe impl Send for Block {}

impl Block {
    /// A zeroed block of `bytes`, or `Err` with the size when the memory cannot be had.
    pub fn new(bytes: usize) -> Result<Block, MemoryError> {
        let too_large = || MemoryError::AllocationFailed {
            bytes: bytes as u128,
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

/// A typed view of `len` elements of `dtype` at a fixed address.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub dtype: DType,
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: views point into blocks owned by the same `Compiled`; the schedule decides
// who reads and writes them and when.
unsafe impl Send for View {}
unsafe impl Sync for View {}

impl View {
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_bytes()
    }

    /// # Safety
    /// Nothing may write the view's memory while the slice lives.
    pub unsafe fn input<'a>(self) -> In<'a> {
        use std::slice::from_raw_parts as view;
        let (p, n) = (self.ptr, self.len);
        match self.dtype {
            DType::F32 => In::F32(view(p as *const f32, n)),
            DType::F64 => In::F64(view(p as *const f64, n)),
            DType::F16 => In::F16(view(p as *const f16, n)),
            DType::BF16 => In::BF16(view(p as *const bf16, n)),
            DType::I8 => In::I8(view(p as *const i8, n)),
            DType::U8 => In::U8(view(p as *const u8, n)),
            DType::I16 => In::I16(view(p as *const i16, n)),
            DType::I32 => In::I32(view(p as *const i32, n)),
            DType::I64 => In::I64(view(p as *const i64, n)),
            DType::Bool => In::Bool(view(p as *const bool, n)),
        }
    }

    /// # Safety
    /// Nothing else may read or write the view's memory while the slice lives.
    pub unsafe fn output<'a>(self) -> Out<'a> {
        use std::slice::from_raw_parts_mut as view;
        let (p, n) = (self.ptr, self.len);
        match self.dtype {
            DType::F32 => Out::F32(view(p as *mut f32, n)),
            DType::F64 => Out::F64(view(p as *mut f64, n)),
            DType::F16 => Out::F16(view(p as *mut f16, n)),
            DType::BF16 => Out::BF16(view(p as *mut bf16, n)),
            DType::I8 => Out::I8(view(p as *mut i8, n)),
            DType::U8 => Out::U8(view(p, n)),
            DType::I16 => Out::I16(view(p as *mut i16, n)),
            DType::I32 => Out::I32(view(p as *mut i32, n)),
            DType::I64 => Out::I64(view(p as *mut i64, n)),
            DType::Bool => Out::Bool(view(p as *mut bool, n)),
        }
    }

    /// Overwrites the view with `data` (same type and length, checked by the caller).
    ///
    /// # Safety
    /// As for [`View::output`].
    pub unsafe fn write(self, data: &Data) {
        dnnc_tensor::with_same!(self.output(), data.as_slice(), SliceMut, Slice, o, d => {
            o.copy_from_slice(d)
        }, else unreachable!("types were checked"))
    }

    /// A copy of the view's elements.
    ///
    /// # Safety
    /// As for [`View::input`].
    pub unsafe fn read(self) -> Data {
        self.input().to_data()
    }
}
