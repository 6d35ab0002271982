//! Loading a dataset's splits: each split's graph runs once over its data files.

use std::collections::HashMap;

use dnnc_lower::lower_split;
use dnnc_runtime::{from_data, Split};
use dnnc_sema::db::Loader;
use dnnc_sema::items::ItemId;
use dnnc_sema::Db;
use dnnc_tensor::Tensor;

/// Loads split `name` of `dataset`.
pub fn load_split(db: &dyn Db, dataset: ItemId<'_>, name: &str) -> Result<Split, String> {
    let lowered = lower_split(db, dataset, name)?;
    let mut inputs: HashMap<String, Tensor> = HashMap::new();
    for l in &lowered.loaders {
        let t = match l.loader {
            Loader::Idx => dnnc_data::idx::load(&l.path),
            Loader::Npy => dnnc_data::npy::load(&l.path),
            Loader::Csv { header } => dnnc_data::csv::load(
                &l.path,
                &dnnc_data::csv::CsvOptions {
                    has_header: header,
                    ..Default::default()
                },
            ),
        }
        .map_err(|e| e.to_string())?;
        inputs.insert(l.input.clone(), from_data(&t));
    }
    let out = dnnc_interp::run(&lowered.graph, &inputs, &HashMap::new())
        .map_err(|e| format!("split `{name}`: {e}"))?;
    let mut fields = Vec::new();
    for f in &lowered.fields {
        let t = out
            .outputs
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("field `{f}` was not computed"))?;
        fields.push((f.clone(), t));
    }
    Split::new(fields).map_err(|e| format!("split `{name}`: {}", e.message))
}
