//! The `Dataset` trait (PyTorch's map-style `Dataset`) and an in-memory `TensorDataset`.
//!
//! # Targets: class labels and regression values
//! A sample is `(input, label)` with an `i64` class label, as it always was. A data set whose
//! targets are real numbers (regression: a CSV with a numeric target, a tensors file with
//! float `targets`) says so through the provided method [`Dataset::task`] and gives each
//! sample's target as a tensor through [`Dataset::target`]; its `get_batch` then returns an
//! `f32` targets tensor (`[B]` or `[B, k]`) in place of the `i64` labels. The `i64` of
//! [`Dataset::get`] is `0` for such a set. Every method added has a default that keeps the
//! old meaning (classification, the label as an `i64` scalar), so existing implementors and
//! callers compile unchanged.
//!
//! # Epochs
//! Random transforms draw from a generator keyed by `(seed, epoch, sample index)`. The epoch
//! is an argument ([`Dataset::get_at_epoch`], [`Dataset::get_batch_at_epoch`]), not state set
//! on the data set, so loader workers preparing batches of two epochs never race; the
//! defaults ignore it.

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{Device, Tensor};

/// What a data set's targets are.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Integer class labels (`i64`), the default.
    #[default]
    Classification,
    /// Real-valued targets (`f32`).
    Regression,
}

/// A map-style data set: `len` samples, each an input tensor and an integer class label
/// (or, for [`Task::Regression`], a real-valued target; see the module docs).
pub trait Dataset: Send + Sync {
    /// A short name used in messages (`"digits/train"`).
    fn name(&self) -> String;

    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i`: its input tensor and label.
    ///
    /// # Errors
    /// `K0003` when `i >= len()`.
    fn get(&self, i: usize) -> Result<(Tensor, i64)>;

    /// The label of sample `i` (cheaper than [`Dataset::get`] for filters and splits).
    ///
    /// # Errors
    /// `K0003` when `i >= len()`.
    fn label(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?.1)
    }

    /// The samples at `indices` stacked into `(inputs [B, ...], labels [B] i64)`.
    /// The default stacks [`Dataset::get`] with [`stack_samples`]; in-memory sets override it.
    ///
    /// # Errors
    /// `K0102` when the samples differ in shape; `K0003` for an index out of range.
    fn get_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let samples = indices
            .iter()
            .map(|&i| self.get(i))
            .collect::<Result<Vec<_>>>()?;
        stack_samples(&samples)
    }

    /// What the targets are; [`Task::Classification`] unless the data set says otherwise.
    fn task(&self) -> Task {
        Task::Classification
    }

    /// The target of sample `i` as a tensor: the label as an `i64` scalar by default; an
    /// `f32` scalar or vector for regression sets.
    ///
    /// # Errors
    /// `K0003` when `i >= len()`.
    fn target(&self, i: usize) -> Result<Tensor> {
        let l = self.label(i)?;
        Tensor::new(l, &Device::Cpu).ctx("target")
    }

    /// Sample `i` as epoch `epoch` sees it (random transforms depend on the epoch); the
    /// default ignores the epoch.
    ///
    /// # Errors
    /// As [`Dataset::get`].
    fn get_at_epoch(&self, i: usize, epoch: u64) -> Result<(Tensor, i64)> {
        let _ = epoch;
        self.get(i)
    }

    /// [`Dataset::get_batch`] as epoch `epoch` sees it; the default ignores the epoch.
    /// `DataLoader` calls this one.
    ///
    /// # Errors
    /// As [`Dataset::get_batch`].
    fn get_batch_at_epoch(&self, indices: &[usize], epoch: u64) -> Result<(Tensor, Tensor)> {
        let _ = epoch;
        self.get_batch(indices)
    }
}

/// Stacks per-sample target tensors (`f32` scalars or vectors) into `[B]` / `[B, k]`.
///
/// # Errors
/// `K0102` when targets differ in shape; `K0101` for an empty list.
pub fn stack_targets(targets: &[Tensor]) -> Result<Tensor> {
    let Some(first) = targets.first() else {
        return Err(Error::EmptyDataset {
            name: "batch".into(),
            len: 0,
            batch_size: 0,
            drop_last: false,
        });
    };
    for (index, t) in targets.iter().enumerate().skip(1) {
        if t.dims() != first.dims() {
            return Err(Error::RaggedBatch {
                first: shape_str(first.dims()),
                other: shape_str(t.dims()),
                index,
            });
        }
    }
    Tensor::stack(targets, 0).ctx("stack targets")
}

/// The batch of a regression data set: inputs stacked from `get_at_epoch`, targets from
/// [`Dataset::target`] stacked with [`stack_targets`] (what regression sets' `get_batch` use).
///
/// # Errors
/// As [`Dataset::get`] and [`stack_targets`].
pub fn regression_batch<D: Dataset + ?Sized>(
    ds: &D,
    indices: &[usize],
    epoch: u64,
) -> Result<(Tensor, Tensor)> {
    let mut samples = Vec::with_capacity(indices.len());
    let mut targets = Vec::with_capacity(indices.len());
    for &i in indices {
        samples.push(ds.get_at_epoch(i, epoch)?);
        targets.push(ds.target(i)?);
    }
    let (x, _) = stack_samples(&samples)?;
    Ok((x, stack_targets(&targets)?))
}

/// Stacks samples into a batch like PyTorch's `default_collate`.
///
/// # Errors
/// `K0102` naming the first sample's shape and the first entry whose shape differs;
/// `K0101` for an empty list.
pub fn stack_samples(samples: &[(Tensor, i64)]) -> Result<(Tensor, Tensor)> {
    let Some((first, _)) = samples.first() else {
        return Err(Error::EmptyDataset {
            name: "batch".into(),
            len: 0,
            batch_size: 0,
            drop_last: false,
        });
    };
    for (index, (t, _)) in samples.iter().enumerate().skip(1) {
        if t.dims() != first.dims() {
            return Err(Error::RaggedBatch {
                first: shape_str(first.dims()),
                other: shape_str(t.dims()),
                index,
            });
        }
    }
    let tensors: Vec<&Tensor> = samples.iter().map(|(t, _)| t).collect();
    let inputs = Tensor::stack(&tensors, 0).ctx("stack batch")?;
    let labels: Vec<i64> = samples.iter().map(|(_, l)| *l).collect();
    let n = labels.len();
    let labels = Tensor::from_vec(labels, n, first.device()).ctx("stack labels")?;
    Ok((inputs, labels))
}

/// Samples held in memory as one contiguous `f32` buffer (CPU), all of one shape.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    name: String,
    data: Vec<f32>,
    sample_shape: Vec<usize>,
    labels: Vec<i64>,
}

impl TensorDataset {
    /// A data set from a flat buffer of `labels.len()` samples of `sample_shape`.
    ///
    /// # Errors
    /// `K0103` when the buffer length is not `labels.len() · ∏ sample_shape`.
    pub fn from_vec(
        name: impl Into<String>,
        data: Vec<f32>,
        sample_shape: &[usize],
        labels: Vec<i64>,
    ) -> Result<Self> {
        let name = name.into();
        let per: usize = sample_shape.iter().product();
        let expected = per.checked_mul(labels.len());
        if expected != Some(data.len()) {
            return Err(Error::BadData {
                source_name: name,
                detail: format!(
                    "{} values for {} samples of shape {} (expected {})",
                    data.len(),
                    labels.len(),
                    shape_str(sample_shape),
                    expected.map_or("an overflowing count".into(), |e| e.to_string())
                ),
            });
        }
        Ok(TensorDataset {
            name,
            data,
            sample_shape: sample_shape.to_vec(),
            labels,
        })
    }

    /// A data set from `inputs [N, ...]` (any float dtype, any device) and `N` labels.
    ///
    /// # Errors
    /// `K0103` when the first dimension differs from the number of labels.
    pub fn new(name: impl Into<String>, inputs: &Tensor, labels: Vec<i64>) -> Result<Self> {
        let name = name.into();
        let dims = inputs.dims();
        if dims.first() != Some(&labels.len()) {
            return Err(Error::BadData {
                source_name: name,
                detail: format!(
                    "inputs of shape {} for {} labels: the first dimension must be the number of samples",
                    shape_str(dims),
                    labels.len()
                ),
            });
        }
        let data: Vec<f32> = inputs
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .ctx("TensorDataset::new")?;
        Self::from_vec(name, data, &dims[1..], labels)
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.labels.len() {
            return Err(Error::invalid(
                format!("index into data set '{}'", self.name),
                i,
                format!("an index below its length {}", self.labels.len()),
            ));
        }
        Ok(())
    }

    fn sample(&self, i: usize) -> &[f32] {
        let per: usize = self.sample_shape.iter().product();
        &self.data[i * per..(i + 1) * per]
    }
}

impl Dataset for TensorDataset {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        self.check_index(i)?;
        let t = Tensor::from_slice(self.sample(i), self.sample_shape.as_slice(), &Device::Cpu)
            .ctx("TensorDataset::get")?;
        Ok((t, self.labels[i]))
    }

    fn label(&self, i: usize) -> Result<i64> {
        self.check_index(i)?;
        Ok(self.labels[i])
    }

    fn get_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let per: usize = self.sample_shape.iter().product();
        let mut data = Vec::with_capacity(per * indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            self.check_index(i)?;
            data.extend_from_slice(self.sample(i));
            labels.push(self.labels[i]);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.sample_shape);
        let inputs = Tensor::from_vec(data, shape, &Device::Cpu).ctx("TensorDataset batch")?;
        let labels = Tensor::from_vec(labels, indices.len(), &Device::Cpu).ctx("labels")?;
        Ok((inputs, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize]) -> Tensor {
        Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn stacking_ragged_samples_names_both_shapes_and_the_index() {
        let e = stack_samples(&[(t(&[1, 8, 8]), 0), (t(&[1, 8, 8]), 1), (t(&[1, 7, 8]), 2)])
            .unwrap_err();
        assert_eq!(e.code(), "K0102");
        let s = e.to_string();
        assert!(s.contains("[1, 8, 8]") && s.contains("[1, 7, 8]") && s.contains("entry 2"));
    }

    #[test]
    fn default_get_batch_matches_the_fast_path() {
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let ds = TensorDataset::from_vec("x", data, &[2, 3], vec![0, 1, 2, 3]).unwrap();
        let (a, la) = ds.get_batch(&[3, 1]).unwrap();
        let samples = vec![ds.get(3).unwrap(), ds.get(1).unwrap()];
        let (b, lb) = stack_samples(&samples).unwrap();
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(la.to_vec1::<i64>().unwrap(), vec![3, 1]);
        assert_eq!(lb.to_vec1::<i64>().unwrap(), vec![3, 1]);
        assert_eq!(ds.get(4).unwrap_err().code(), "K0003");
    }

    #[test]
    fn wrong_buffer_length_is_bad_data() {
        let e = TensorDataset::from_vec("x", vec![0.0; 5], &[2], vec![0, 1]).unwrap_err();
        assert_eq!(e.code(), "K0103");
    }
}
