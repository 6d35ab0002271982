//! The training runtime: everything around a compiled training step.
//!
//! The compiler produces one step function per batch size; this crate drives training
//! around it:
//!
//! | module | job |
//! |---|---|
//! | [`mod@batches`] | deterministic shuffling ([`epoch_order`]) and batching ([`batches()`]) of a [`Split`] |
//! | [`augment`] | data augmentation of training batches, in place ([`augment_batch`]) |
//! | [`rng`] | the SplitMix64 generator behind every random draw of the runtime |
//! | [`metrics`] | per-epoch means of per-batch metrics ([`MetricAccumulator`]) |
//! | [`early_stop`] | the `early_stop` rule ([`EarlyStopping`]) |
//! | [`checkpoint`] | safetensors checkpoints: [`checkpoint::save`], [`checkpoint::load`], [`checkpoint::load_into`] |
//! | [`log`] | a JSON Lines log ([`JsonlLog`]) |
//! | [`progress`] | a progress bar or plain epoch lines ([`Progress`]) |
//! | [`plot`] | training curves as an SVG picture ([`plot::write_curves`]) |
//!
//! A training loop around a step, in outline:
//!
//! ```
//! use dnnc_runtime::{batches, epoch_order, Decision, EarlyStopping, MetricAccumulator, Split, Tensor};
//!
//! let x = Tensor::f32(vec![5, 2], (0..10).map(|v| v as f32).collect()).unwrap();
//! let train = Split::new(vec![("x".to_string(), x)])?;
//! let mut stopper = EarlyStopping::new(2, false, 0.0);
//! for epoch in 0..10 {
//!     let order = epoch_order(train.len(), 42, epoch as u64, true);
//!     let mut metrics = MetricAccumulator::new();
//!     for batch in batches(&train, &order, 2)? {
//!         let rows = batch[0].shape[0];
//!         let loss = 1.0 / (epoch as f64 + 1.0); // the compiled step's loss
//!         metrics.add("train.loss", loss, rows);
//!     }
//!     let loss = metrics.value("train.loss").unwrap();
//!     if stopper.observe(epoch, loss) == Decision::Stop {
//!         break;
//!     }
//! }
//! # Ok::<(), dnnc_runtime::BatchError>(())
//! ```
//!
//! **Invariant:** bad input never panics. Files, tensors and settings that cannot be used
//! are reported as error values whose messages name the file, tensor or field at fault.
//!
//! **Invariant:** the runtime is deterministic: shuffling depends only on the seed and
//! the epoch, with the same result on every machine; augmentation depends only on the
//! seed, the epoch, the sample's index and the augmentation's position.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod augment;
pub mod batches;
pub mod checkpoint;
pub mod early_stop;
pub mod heatmap;
pub mod image;
pub mod log;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod rng;
#[cfg(test)]
mod testutil;

pub use augment::{augment_batch, AugmentError, Augmentation};
pub use batches::{batches, epoch_order, BatchError, Batches, Split};
pub use checkpoint::{CheckpointError, CheckpointErrorKind};
pub use dnnc_tensor::{DType, Data, Tensor};
pub use early_stop::{Decision, EarlyStopping};
pub use log::{JsonlLog, LogError};
pub use metrics::MetricAccumulator;
pub use progress::{epoch_line, Progress};
pub use rng::SplitMix64;
