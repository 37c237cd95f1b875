//! `MemoryDataset`: samples held in memory (`f32`, or `u8` pixels scaled by 1/255 on
//! access) with class labels or real-valued targets. MNIST, CIFAR, CSV and tensors files
//! load into it.

use crate::data::dataset::{Dataset, Task};
use crate::error::{Context, Error, Result, shape_str};
use candle_core::{Device, Tensor};

/// Sample values.
#[derive(Clone, Debug)]
pub enum Values {
    /// `f32` values as they are.
    F32(Vec<f32>),
    /// `u8` pixels; a sample reads as `v / 255` (torchvision's `ToTensor`).
    U8(Vec<u8>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::U8(v) => v.len(),
        }
    }
}

/// Targets of a [`MemoryDataset`].
#[derive(Clone, Debug)]
pub enum Targets {
    /// Class labels.
    Labels(Vec<i64>),
    /// Real-valued targets, `per` values a sample (shape `[]` when `per` is 1 and the file
    /// had one value a sample, `[per]` otherwise).
    Values {
        /// All values.
        data: Vec<f32>,
        /// Shape of one sample's target.
        shape: Vec<usize>,
    },
}

/// An in-memory data set (see the module docs).
#[derive(Clone, Debug)]
pub struct MemoryDataset {
    name: String,
    values: Values,
    sample_shape: Vec<usize>,
    targets: Targets,
    len: usize,
}

impl MemoryDataset {
    /// A data set of `values` split into samples of `sample_shape`, one target each.
    ///
    /// # Errors
    /// `K0103` when the lengths disagree.
    pub fn new(
        name: impl Into<String>,
        values: Values,
        sample_shape: &[usize],
        targets: Targets,
    ) -> Result<Self> {
        let name = name.into();
        let len = match &targets {
            Targets::Labels(l) => l.len(),
            Targets::Values { data, shape } => {
                let per: usize = shape.iter().product();
                if per == 0 || data.len() % per != 0 {
                    return Err(Error::BadData {
                        source_name: name,
                        detail: format!(
                            "{} target values do not split into targets of shape {}",
                            data.len(),
                            shape_str(shape)
                        ),
                    });
                }
                data.len() / per
            }
        };
        let per: usize = sample_shape.iter().product();
        if per.checked_mul(len) != Some(values.len()) {
            return Err(Error::BadData {
                source_name: name,
                detail: format!(
                    "{} values for {len} samples of shape {}",
                    values.len(),
                    shape_str(sample_shape)
                ),
            });
        }
        Ok(MemoryDataset {
            name,
            values,
            sample_shape: sample_shape.to_vec(),
            targets,
            len,
        })
    }

    /// The shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    fn check(&self, i: usize) -> Result<()> {
        if i >= self.len {
            return Err(Error::invalid(
                format!("index into data set '{}'", self.name),
                i,
                format!("an index below its length {}", self.len),
            ));
        }
        Ok(())
    }

    fn push_sample(&self, i: usize, out: &mut Vec<f32>) {
        let per: usize = self.sample_shape.iter().product();
        match &self.values {
            Values::F32(v) => out.extend_from_slice(&v[i * per..(i + 1) * per]),
            Values::U8(v) => {
                out.extend(v[i * per..(i + 1) * per].iter().map(|&b| b as f32 / 255.0))
            }
        }
    }
}

impl Dataset for MemoryDataset {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        self.check(i)?;
        let mut data = Vec::new();
        self.push_sample(i, &mut data);
        let t = Tensor::from_vec(data, self.sample_shape.as_slice(), &Device::Cpu)
            .ctx("MemoryDataset::get")?;
        let label = match &self.targets {
            Targets::Labels(l) => l[i],
            Targets::Values { .. } => 0,
        };
        Ok((t, label))
    }

    fn label(&self, i: usize) -> Result<i64> {
        self.check(i)?;
        Ok(match &self.targets {
            Targets::Labels(l) => l[i],
            Targets::Values { .. } => 0,
        })
    }

    fn task(&self) -> Task {
        match self.targets {
            Targets::Labels(_) => Task::Classification,
            Targets::Values { .. } => Task::Regression,
        }
    }

    fn target(&self, i: usize) -> Result<Tensor> {
        self.check(i)?;
        match &self.targets {
            Targets::Labels(l) => Tensor::new(l[i], &Device::Cpu).ctx("target"),
            Targets::Values { data, shape } => {
                let per: usize = shape.iter().product();
                Tensor::from_slice(
                    &data[i * per..(i + 1) * per],
                    shape.as_slice(),
                    &Device::Cpu,
                )
                .ctx("target")
            }
        }
    }

    fn get_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let per: usize = self.sample_shape.iter().product();
        let mut data = Vec::with_capacity(per * indices.len());
        for &i in indices {
            self.check(i)?;
            self.push_sample(i, &mut data);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.sample_shape);
        let x = Tensor::from_vec(data, shape, &Device::Cpu).ctx("MemoryDataset batch")?;
        let y = match &self.targets {
            Targets::Labels(l) => {
                let v: Vec<i64> = indices.iter().map(|&i| l[i]).collect();
                Tensor::from_vec(v, indices.len(), &Device::Cpu)
            }
            Targets::Values { data, shape } => {
                let tp: usize = shape.iter().product();
                let mut v = Vec::with_capacity(tp * indices.len());
                for &i in indices {
                    v.extend_from_slice(&data[i * tp..(i + 1) * tp]);
                }
                let mut s = vec![indices.len()];
                s.extend_from_slice(shape);
                Tensor::from_vec(v, s, &Device::Cpu)
            }
        }
        .ctx("MemoryDataset targets")?;
        Ok((x, y))
    }
}
