//! Running what a `train` block declares: loading its dataset, initialising its
//! parameters, building and compiling the training step, evaluation and inference
//! graphs for each batch size, and the loop over epochs with metrics, early stopping,
//! logs and checkpoints. `dnnc train`, `dnnc eval` and `dnnc predict` call into here.

pub mod attribute;
pub mod backend;
pub mod bench;
pub mod data;
pub mod error;
pub mod generate;
pub mod init;
pub mod library;
pub mod onnx;
mod parallel;
mod plateau;
pub mod prune;
pub mod quantize;
pub mod run;
pub mod steps;
pub mod store;
pub mod torch;
pub mod trainer;

use dnnc_sema::train::train_sig;
use dnnc_sema::{Db, SourceFile};
use dnnc_syntax::ast::ItemKind;

pub use backend::BackendKind;
pub use dnnc_passes::pipeline::PASS_NAMES;
pub use error::RunError;
pub use run::{
    eval, eval_attacked, eval_first, predict, sample, AttackSpec, Job, Summary, TrainOptions,
};
pub use steps::PassOptions;
pub use trainer::train;

/// The first `train` block of `file`, ready to run.
pub fn job(db: &dyn Db, file: SourceFile) -> Result<Job<'_>, RunError> {
    let items = &dnnc_sema::scope::parse(db, file).module.items;
    let index = items
        .iter()
        .position(|i| matches!(i.kind, ItemKind::Train(_)))
        .ok_or_else(|| {
            RunError::NotRunnable(format!("{}: there is no `train` block", file.name(db)))
        })? as u32;
    let id = dnnc_sema::items::ItemId::new(db, file, index);
    let not_runnable = |why: &str| RunError::NotRunnable(why.to_string());
    let sig = train_sig(db, id)
        .as_ref()
        .ok_or_else(|| not_runnable("not a train block"))?;
    let cfg = sig.training().ok_or_else(|| {
        not_runnable(
            "train blocks with several models or `step` blocks cannot run yet (they are checked only)",
        )
    })?;
    let dataset = dnnc_lower::model::dataset_item(db, file, sig)?;
    Ok(Job {
        db,
        file,
        item: index,
        cfg,
        dataset,
    })
}
