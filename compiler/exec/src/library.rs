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
    /// For an inference graph: the model it runs (an index into `models`).
    #[serde(default)]
    pub model: usize,
    /// For a training graph: the step of the plan it is (an index into `steps`).
    #[serde(default)]
    pub step: usize,
}

/// A model whose inference the library exports (`NAME_forward`, or `NAME_G_forward`
/// for model `G` of a multi-model block).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDesc {
    /// The binding name; empty for the one model of the single-model form.
    pub name: String,
    pub input: Field,
    pub output: Field,
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
    /// Inference graphs (input `input`, output `output`), by model and batch size.
    pub forward: Vec<Entry>,
    /// Training steps, by step and batch size.
    pub train: Vec<Entry>,
    /// The models whose inference is exported.
    pub models: Vec<ModelDesc>,
    /// The names of the plan's steps (`train_step` runs them in order).
    pub steps: Vec<String>,
    /// The train block's data fields, in order (the arguments of `train_step`).
    pub fields: Vec<Field>,
    pub params: Vec<Param>,
    /// The train block's seed (dropout keys are derived from it and the step).
    pub seed: u64,
    /// How many loop functions the library's table has.
    pub loop_count: usize,
}
