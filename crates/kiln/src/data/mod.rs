//! Data: the embedded scikit-learn digits data set, datasets, subsets, a `DataLoader`
//! whose order is a pure function of `(seed, epoch)` (with optional worker threads),
//! data sources ([`sources::open`]: image folders, CSV, MNIST, CIFAR, tensors files) and
//! torchvision-style [`transforms`].
//!
//! ```
//! use kiln::data::{DataLoader, Dataset, digits};
//! let (train, test) = digits::train_test()?;
//! assert_eq!((train.len(), test.len()), (1438, 359));
//! let loader = DataLoader::new(std::sync::Arc::new(train), 64)?.shuffle(true).seed(0);
//! let first = loader.batch(0, 0)?;
//! assert_eq!(first.inputs.dims(), &[64, 1, 8, 8]);
//! # Ok::<(), kiln::Error>(())
//! ```

pub mod dataset;
pub mod digits;
pub mod fuzz;
pub mod loader;
mod prefetch;
pub mod sources;
pub mod subset;
pub mod transforms;

pub use dataset::{Dataset, Task, TensorDataset, regression_batch, stack_samples, stack_targets};
pub use loader::{Batch, DataLoader, EpochIter};
pub use subset::Subset;
