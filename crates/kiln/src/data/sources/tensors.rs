//! A `.safetensors` or `.pt` file holding `inputs` `[N, ...]` and `labels` (integers:
//! classification) or `targets` (floats: regression; integers: classification), read with
//! `kiln::io::load`.

use super::memory::{MemoryDataset, Targets, Values};
use crate::data::dataset::Task;
use crate::error::{Context, Error, Result};
use crate::io::{LoadOptions, Value};
use candle_core::{DType, Device};
use std::path::Path;

fn fmt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::DataFormat {
        path: path.display().to_string(),
        format: "tensors".into(),
        detail: detail.into(),
    }
}

/// Reads the tensors file at `path`; `task` overrides what the targets' dtype says.
///
/// # Errors
/// The errors of `kiln::io::load`; `K0107` when `inputs` or `labels`/`targets` is missing or
/// their first dimensions differ.
pub fn read_tensors(path: &Path, task: Option<Task>) -> Result<(MemoryDataset, Task)> {
    let v = crate::io::load(path, &LoadOptions::new().map_location("cpu"))?;
    let tensor = |key: &str| match v.get(key) {
        Some(Value::Tensor(t)) => Some(t.to_tensor(&Device::Cpu)),
        _ => None,
    };
    let inputs = tensor("inputs").ok_or_else(|| fmt_err(path, "no tensor 'inputs'"))??;
    let (key, targets) = match (tensor("labels"), tensor("targets")) {
        (Some(t), _) => ("labels", t?),
        (None, Some(t)) => ("targets", t?),
        (None, None) => return Err(fmt_err(path, "no tensor 'labels' or 'targets'")),
    };
    let n = inputs.dims().first().copied().unwrap_or(0);
    if targets.dims().first() != Some(&n) {
        return Err(fmt_err(
            path,
            format!(
                "'inputs' has shape {:?} but '{key}' has {:?}",
                inputs.dims(),
                targets.dims()
            ),
        ));
    }
    let task = task.unwrap_or(if targets.dtype().is_float() {
        Task::Regression
    } else {
        Task::Classification
    });
    let x: Vec<f32> = inputs
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .ctx("tensors inputs")?;
    let targets = match task {
        Task::Classification => {
            if targets.rank() != 1 {
                return Err(fmt_err(
                    path,
                    format!("class labels '{key}' must be [N], got {:?}", targets.dims()),
                ));
            }
            Targets::Labels(
                targets
                    .to_dtype(DType::I64)
                    .and_then(|t| t.to_vec1())
                    .ctx("labels")?,
            )
        }
        Task::Regression => Targets::Values {
            data: targets
                .to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .ctx("targets")?,
            shape: targets.dims()[1..].to_vec(),
        },
    };
    let ds = MemoryDataset::new(
        path.display().to_string(),
        Values::F32(x),
        &inputs.dims()[1..],
        targets,
    )?;
    Ok((ds, task))
}
