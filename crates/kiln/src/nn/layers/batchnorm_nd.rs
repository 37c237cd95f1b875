//! `BatchNorm1d` and `BatchNorm2d` as named types (PyTorch's classes), each a thin wrapper
//! over [`BatchNorm`] so a user struct can say which one a field is.
//!
//! ```
//! use kiln::nn::{BatchNorm2d, BatchNormConfig, Module};
//! let bn = BatchNorm2d::new(3)?;
//! assert_eq!(bn.repr(), "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
//! let bn = BatchNorm2d::with(3, BatchNormConfig { momentum: None, ..Default::default() })?;
//! assert_eq!(bn.state_dict().len(), 5);
//! # Ok::<(), kiln::Error>(())
//! ```

use super::batchnorm::{self, BatchNorm, BatchNormKind};
use crate::error::Result;
use crate::nn::{Buffer, Module, ModuleSpec, Param};
use candle_core::Tensor;

/// The options of `BatchNorm1d` / `BatchNorm2d` besides `num_features`, with PyTorch's
/// defaults (`eps=1e-5`, `momentum=0.1`, `affine=True`, `track_running_stats=True`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the batch statistic in the running average; `None` is PyTorch's cumulative
    /// moving average (`1 / num_batches_tracked`).
    pub momentum: Option<f64>,
    /// Learnable `weight` (ones) and `bias` (zeros).
    pub affine: bool,
    /// Keep `running_mean`, `running_var` and `num_batches_tracked` (used in eval mode);
    /// without them batch statistics are used in both modes.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

macro_rules! batchnorm_type {
    ($name:ident, $kind:expr, $layout:literal) => {
        #[doc = concat!("PyTorch's `nn.", stringify!($name), "`: batch normalisation of ", $layout, " inputs over the")]
        /// channel dimension (dim 1), with running statistics updated in training mode
        /// (momentum, unbiased variance) and used in eval mode. State-dict keys: `weight`,
        /// `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
        ///
        /// It wraps a [`BatchNorm`] (reachable through `Deref`, [`Self::inner`]); as a
        /// `#[derive(Module)]` field it also takes a plain `BatchNorm` (whole-model files).
        pub struct $name(BatchNorm);

        impl $name {
            #[doc = concat!("`", stringify!($name), "(num_features)` with PyTorch's defaults.")]
            ///
            /// # Errors
            /// Backend errors only.
            pub fn new(num_features: usize) -> Result<Self> {
                Self::with(num_features, BatchNormConfig::default())
            }

            /// With explicit options.
            ///
            /// # Errors
            /// Backend errors only.
            pub fn with(num_features: usize, cfg: BatchNormConfig) -> Result<Self> {
                Ok($name(BatchNorm::new(
                    $kind,
                    num_features,
                    cfg.eps,
                    cfg.momentum,
                    cfg.affine,
                    cfg.track_running_stats,
                )?))
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a config entry of the wrong type or a missing `num_features`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Ok($name(batchnorm::from_spec(spec, $kind)?))
            }

            /// The wrapped [`BatchNorm`].
            pub fn inner(&self) -> &BatchNorm {
                &self.0
            }

            /// Unwraps into the [`BatchNorm`].
            pub fn into_inner(self) -> BatchNorm {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = BatchNorm;
            fn deref(&self) -> &BatchNorm {
                &self.0
            }
        }

        impl Module for $name {
            fn type_name(&self) -> &'static str {
                self.0.type_name()
            }
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.0.forward(x)
            }
            fn local_params(&self) -> Vec<(String, Param)> {
                self.0.local_params()
            }
            fn local_buffers(&self) -> Vec<(String, Buffer)> {
                self.0.local_buffers()
            }
            fn set_training(&self, training: bool) {
                self.0.set_training(training)
            }
            fn training_flag(&self) -> Option<bool> {
                self.0.training_flag()
            }
            fn spec(&self) -> ModuleSpec {
                self.0.spec()
            }
            fn version(&self) -> i64 {
                self.0.version()
            }
            fn extra_repr(&self) -> String {
                self.0.extra_repr()
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            /// Also takes a plain [`BatchNorm`] (what whole-model files rebuild for this name).
            fn from_boxed(b: Box<dyn Module>) -> std::result::Result<Self, Box<dyn Module>> {
                let b = if b.as_any().is::<BatchNorm>() {
                    match BatchNorm::from_boxed(b) {
                        Ok(bn) => return Ok($name(bn)),
                        Err(b) => b,
                    }
                } else {
                    b
                };
                if !b.as_any().is::<$name>() {
                    return Err(b);
                }
                let any: Box<dyn std::any::Any> = b;
                any.downcast::<$name>()
                    .map(|m| *m)
                    .map_err(|_| Box::new(crate::nn::Identity) as Box<dyn Module>)
            }
        }
    };
}

batchnorm_type!(BatchNorm1d, BatchNormKind::OneD, "`[N, C]` and `[N, C, L]`");
batchnorm_type!(BatchNorm2d, BatchNormKind::TwoD, "`[N, C, H, W]`");

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn named_types_keep_pytorch_names_and_errors() {
        assert_send_sync::<BatchNorm1d>();
        assert_send_sync::<BatchNorm2d>();
        let bn = BatchNorm1d::new(4).unwrap();
        assert_eq!(bn.type_name(), "BatchNorm1d");
        let x = Tensor::zeros((2, 4, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let e = bn.forward(&x).unwrap_err();
        assert_eq!(e.code(), "K0203");
        assert!(e.to_string().starts_with("BatchNorm1d(4, eps=1e-05"), "{e}");
        let bn2 = BatchNorm2d::from_spec(&BatchNorm2d::new(3).unwrap().spec()).unwrap();
        assert_eq!(bn2.type_name(), "BatchNorm2d");
        assert!(bn2.as_any().downcast_ref::<BatchNorm2d>().is_some());
    }
}
