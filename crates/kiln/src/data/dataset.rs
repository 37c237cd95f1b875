//! The `Dataset` trait (PyTorch's map-style `Dataset`) and an in-memory `TensorDataset`.

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{Device, Tensor};

/// A map-style data set: `len` samples, each an input tensor and an integer class label.
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
