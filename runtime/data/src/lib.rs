//! Readers for training-data files: IDX (the MNIST format), NumPy `.npy`, numeric CSV and
//! plain text (windows of character ids).
//!
//! Each format module offers two entry points:
//!
//! * `probe` reads only what it needs to learn a file's element type and shape (for IDX and
//!   NPY just the header, plus the file size for uncompressed files). The compiler's checker
//!   calls it at compile time.
//! * `load` reads and validates the whole file into a [`Tensor`]. The runtime calls it.
//!
//! Element types and tensors are the workspace's own, from `dnnc-tensor` ([`DType`],
//! [`Data`], [`Tensor`], re-exported here). Loaded elements keep their real width: a `u8`
//! IDX file becomes [`Data::U8`], an `i16` one [`Data::I16`], an `f64` `.npy` file
//! [`Data::F64`]; CSV files are read as `f32`. Nothing is widened on the way in.
//!
//! Bad input never panics: every failure is a [`DataError`] whose message names the file and
//! says what is wrong with it. Headers are validated before anything is allocated from them,
//! and payload buffers grow only with the bytes actually read.
//!
//! ```
//! use dnnc_data::{npy, DType, Data};
//!
//! let path = std::env::temp_dir().join(format!("dnnc-data-doc-{}.npy", std::process::id()));
//! npy::save_f32(&path, &[2, 2], &[1.0, 2.0, 3.0, 4.0])?;
//! let header = npy::probe(&path)?;
//! assert_eq!((header.elem, header.shape), (DType::F32, vec![2, 2]));
//! let t = npy::load(&path)?;
//! assert_eq!((t.dtype, t.shape), (DType::F32, vec![2, 2]));
//! assert_eq!(t.data, Data::F32(vec![1.0, 2.0, 3.0, 4.0]));
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), dnnc_data::DataError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csv;
mod error;
mod fileio;
pub mod files;
pub mod idx;
pub mod npy;
mod pylit;
mod tensor;
#[cfg(test)]
mod testutil;
pub mod text;
pub mod weights;

pub use dnnc_tensor::{DType, Data, Tensor};
pub use error::DataError;
pub use tensor::{header_of, non_finite, Header, MAX_ELEMENTS};
