//! Loading a dataset's splits: each split's graph runs once over its data files; and
//! the augmentations its `augment` item declares for training batches.

use crate::error::RunError;
use std::collections::HashMap;

use dnnc_lower::lower_split;
use dnnc_runtime::{Augmentation, Split};
use dnnc_sema::db::Loader;
use dnnc_sema::items::ItemId;
use dnnc_sema::Db;
use dnnc_tensor::Tensor;

/// Loads split `name` of `dataset`.
pub fn load_split(db: &dyn Db, dataset: ItemId<'_>, name: &str) -> Result<Split, RunError> {
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
            Loader::Text(o) => dnnc_data::text::load(&l.path, &o).map(|(t, _)| t),
        }?;
        if let Some((i, v)) = dnnc_data::non_finite(&t) {
            let row: usize = t.shape.iter().skip(1).product();
            return Err(RunError::Dataset(format!(
                "{}: element {i} (sample {}) is {v}; training data must be finite",
                l.path.display(),
                i / row.max(1)
            )));
        }
        inputs.insert(l.input.clone(), t);
    }
    let out = dnnc_interp::run(&lowered.graph, &inputs, &HashMap::new())
        .map_err(|e| RunError::Dataset(format!("split `{name}`: {e}")))?;
    let mut fields = Vec::new();
    for f in &lowered.fields {
        let t = out
            .outputs
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| RunError::Internal(format!("field `{f}` was not computed")))?;
        if let Some(i) = t
            .as_f32()
            .and_then(|v| v.iter().position(|x| !x.is_finite()))
        {
            let row: usize = t.shape.iter().skip(1).product();
            return Err(RunError::Dataset(format!(
                "split `{name}`: field `{f}` holds {} at sample {} (computed from finite data: check the field's expression, e.g. a `log` of 0)",
                t.as_f32().map_or(f32::NAN, |v| v[i]),
                i / row.max(1)
            )));
        }
        fields.push((f.clone(), t));
    }
    Split::new(fields).map_err(|e| RunError::Dataset(format!("split `{name}`: {}", e.message)))
}

/// The vocabulary of the dataset's text (the first `text` loader of its training
/// split), as the characters in id order; `None` for data without text.
pub fn vocabulary(db: &dyn Db, dataset: ItemId<'_>) -> Result<Option<String>, RunError> {
    let lowered = lower_split(db, dataset, "train")?;
    for l in &lowered.loaders {
        if let Loader::Text(o) = l.loader {
            let vocab = dnnc_data::text::file_vocabulary(&l.path, o.bytes)?;
            return Ok(Some(vocab.into_iter().collect()));
        }
    }
    Ok(None)
}

/// Checks that the integer fields the model indexes with (class labels, embedding
/// rows: the training graph's index limits) lie in range in every sample of
/// `split`, naming the data file and the first bad sample otherwise.
pub fn check_index_limits(
    db: &dyn Db,
    dataset: ItemId<'_>,
    name: &str,
    split: &Split,
    limits: &[(String, usize)],
) -> Result<(), RunError> {
    for (field, limit) in limits {
        let Some(values) = split
            .field(field)
            .filter(|t| t.dtype.is_int())
            .map(|t| t.to_i64_vec())
        else {
            continue;
        };
        let Some(i) = values
            .iter()
            .position(|&v| v < 0 || v as u64 >= *limit as u64)
        else {
            continue;
        };
        let t = split.field(field).expect("checked");
        let row: usize = t.shape.iter().skip(1).product();
        // Name the file the field comes from when it is one file's contents.
        let source = lower_split(db, dataset, name).ok().and_then(|l| {
            let out = l.graph.output(field)?;
            let input = l.graph.input_behind(out)?.to_string();
            l.loaders
                .iter()
                .find(|u| u.input == input)
                .map(|u| format!("{}: ", u.path.display()))
        });
        return Err(RunError::OutOfRange(format!(
            "{}sample {} of field `{field}` (split `{name}`) is {}, but the model takes values from 0 to {} ({limit} classes or rows)",
            source.unwrap_or_default(),
            i / row.max(1),
            values[i],
            limit.saturating_sub(1)
        )));
    }
    Ok(())
}

/// The augmentations of `dataset`, as the index of each augmented field in `split`
/// (the training split) with its list, in declaration order.
pub fn augmentations(
    db: &dyn Db,
    dataset: ItemId<'_>,
    split: &Split,
) -> Result<Vec<(usize, Vec<Augmentation>)>, RunError> {
    let sig = dnnc_sema::data::dataset_sig(db, dataset);
    let mut out = Vec::new();
    for fa in &sig.augment {
        if fa.list.is_empty() {
            continue;
        }
        let at = split
            .fields
            .iter()
            .position(|(n, _)| *n == *fa.field)
            .ok_or_else(|| {
                RunError::Internal(format!("the augmented field `{}` was not loaded", fa.field))
            })?;
        out.push((at, fa.list.clone()));
    }
    Ok(out)
}
