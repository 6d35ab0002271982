//! What a static library built by `dnnc compile` holds besides machine code: its
//! programs and what the C API needs to know about them, as JSON embedded in the
//! object file.

use dnnc_ir::DType;
use serde::{Deserialize, Serialize};

use crate::program::Program;

/// One compiled graph of the library and where its loops start in the library's loop
/// table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub batch: usize,
    pub program: Program,
    pub first_loop: usize,
}

/// A named input or output with its per-sample shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub dtype: DType,
    /// The shape of one sample (without the batch axis).
    pub sample: Vec<usize>,
}

impl Field {
    /// Elements per sample.
    pub fn size(&self) -> usize {
        self.sample.iter().product()
    }
}

/// A parameter (what `save_weights` writes and `load_weights` reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Everything a library's runtime builds its models from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryDesc {
    /// The C name prefix.
    pub name: String,
    /// The largest batch `forward` and `train_step` take.
    pub max_batch: usize,
    /// Inference graphs (input `input`, output `output`), by batch size.
    pub forward: Vec<Entry>,
    /// Training steps, by batch size.
    pub train: Vec<Entry>,
    pub input: Field,
    pub output: Field,
    /// The train block's data fields, in order (the arguments of `train_step`).
    pub fields: Vec<Field>,
    pub params: Vec<Param>,
    /// The train block's seed (dropout keys are derived from it and the step).
    pub seed: u64,
    /// How many loop functions the library's table has.
    pub loop_count: usize,
}
