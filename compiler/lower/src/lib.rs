//! Lowering: checked `.dnn` declarations become graph IR, instantiated for concrete
//! shapes (one graph per batch size). Layers and functions are inlined; parameters
//! become `state` nodes named by their binding path (`fc1.W`); dataset fields become
//! `input` nodes; `training` is a constant of each graph.
//!
//! The checker has already proven the program well-typed, so failures here are either
//! limits of this release (reported as errors) or compiler bugs.

pub mod attack;
pub mod attribute;
pub mod builtins;
pub mod calls;
pub mod conv;
pub mod dataset;
pub mod emit;
pub mod error;
pub mod eval;
pub mod lowerer;
pub mod model;
pub mod scan;
pub mod summary;
pub mod value;

pub use attack::{Attack, AttackKind};
pub use attribute::{lower_attribution, Attributed, Attribution, AttributionError, Method, Target};
pub use dataset::{lower_split, LoweredSplit};
pub use error::LowerError;
pub use lowerer::{LayerCall, ParamInfo};
pub use model::{lower, lower_attacked, model_has_method, Lowered, Mode};
