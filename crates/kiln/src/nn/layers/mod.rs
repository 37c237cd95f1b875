//! The layers kiln ships, with PyTorch's names, defaults and state-dict keys.

mod activation;
mod attention;
pub(crate) mod batchnorm;
mod batchnorm_nd;
pub(crate) mod conv;
pub(crate) mod conv1d;
pub(crate) mod conv_transpose;
mod dropout;
mod embedding;
mod gelu;
mod group_norm;
mod instance_norm;
mod layernorm;
mod layernorm2d;
mod linear;
mod module_dict;
mod module_list;
pub(crate) mod pointwise;
pub(crate) mod pool;
mod pool1d;
mod rms_norm;
pub(crate) mod rnn;
mod rnn_cell;
pub(crate) mod sdpa;
pub(crate) mod sequential;
mod simple;
mod stochastic_depth;
pub(crate) mod transformer;
mod upsample;

pub use crate::nn::functional::GeluApproximate;
pub use activation::{
    Elu, Hardsigmoid, Hardswish, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Sigmoid, Softmax,
    Softplus, Tanh,
};
pub use attention::{AttentionArgs, MultiheadAttention, MultiheadAttentionConfig, OutProj};
pub use batchnorm::{BatchNorm, BatchNormKind};
pub use batchnorm_nd::{BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use conv::{Conv2d, Conv2dConfig};
pub use conv_transpose::{ConvTranspose1d, ConvTranspose2d, ConvTransposeConfig};
pub use conv1d::{Conv1d, Conv1dConfig};
pub use dropout::{Dropout, Dropout1d, Dropout2d};
pub use embedding::Embedding;
pub use gelu::Gelu;
pub use group_norm::GroupNorm;
pub use instance_norm::{InstanceNorm2d, InstanceNormConfig};
pub use layernorm::{LayerNorm, LayerNormConfig};
pub use layernorm2d::LayerNorm2d;
pub use linear::Linear;
pub use module_dict::ModuleDict;
pub use module_list::ModuleList;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use pool1d::{AdaptiveAvgPool1d, AdaptiveMaxPool2d, AvgPool1d, MaxPool1d};
pub use rms_norm::RMSNorm;
pub use rnn::{GRU, LSTM, RnnConfig};
pub use rnn_cell::{GRUCell, LSTMCell};
pub use sequential::Sequential;
pub use simple::{Flatten, Identity, ReLU, Unflatten};
pub use stochastic_depth::{StochasticDepth, StochasticDepthMode, stochastic_depth};
pub use transformer::{
    DecoderArgs, EncoderArgs, TransformerActivation, TransformerDecoder, TransformerDecoderLayer,
    TransformerEncoder, TransformerEncoderLayer, TransformerLayerConfig,
    generate_square_subsequent_mask,
};
pub use upsample::{Upsample, UpsampleMode, UpsampleTarget};

use crate::error::{Error, Result};
use candle_core::{DType, DeviceLocation, Tensor};

/// Checks that an input sits on the weights' device and has their dtype.
pub(crate) fn check_input(module: &str, x: &Tensor, weight: &Tensor) -> Result<()> {
    check_placement(
        module,
        (&weight.device().location(), weight.dtype()),
        (&x.device().location(), x.dtype()),
    )
}

/// The comparison every layer makes before computing ([`check_input`]), on device locations
/// and dtypes: `K0301` when the devices differ, `K0302` when the dtypes do. Public so the
/// check can be exercised (and reused) without a GPU.
///
/// # Errors
/// `K0301` / `K0302` naming the module, both devices or dtypes, and the fix.
pub fn check_placement(
    module: &str,
    weights: (&DeviceLocation, DType),
    input: (&DeviceLocation, DType),
) -> Result<()> {
    let name = |l: &DeviceLocation| match l {
        DeviceLocation::Cpu => "cpu".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("mps:{gpu_id}"),
    };
    if weights.0 != input.0 {
        return Err(Error::DeviceMismatch {
            module: module.to_string(),
            weights: name(weights.0),
            input: name(input.0),
        });
    }
    if weights.1 != input.1 {
        let word = crate::device::torch_dtype_word;
        return Err(Error::DtypeMismatch {
            module: module.to_string(),
            weights: format!(
                "{} ({})",
                word(weights.1),
                crate::device::dtype_name(weights.1)
            ),
            input: format!("{} ({})", word(input.1), crate::device::dtype_name(input.1)),
        });
    }
    Ok(())
}

/// A float the way Python's `repr` prints it (`1.0`, `0.01`, `1e-05`), for `extra_repr`.
pub(crate) fn py_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let exp = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    if (-4..16).contains(&exp) {
        let s = v.to_string();
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// Python's `True` / `False`.
pub(crate) fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Checks that an activation's input is a float tensor (PyTorch: "not implemented for
/// 'Long'").
pub(crate) fn check_float(module: &dyn crate::nn::Module, x: &Tensor) -> Result<()> {
    if x.dtype().is_float() {
        return Ok(());
    }
    Err(Error::invalid(
        format!("{} input dtype", module.repr()),
        format!(
            "{} ({})",
            crate::device::torch_dtype_word(x.dtype()),
            crate::device::dtype_name(x.dtype())
        ),
        "a floating-point tensor (convert with x.to_dtype(DType::F32))",
    ))
}

/// Fails with `K0004` (out of memory) (instead of aborting) when a `dims` tensor of `dtype`
/// cannot be allocated: layers whose output size comes from their configuration (Upsample,
/// ConvTranspose) check it before computing.
pub(crate) fn check_alloc(dims: &[usize], dtype: DType) -> Result<()> {
    let n = crate::error::alloc::numel(dims, dtype.size_in_bytes())?;
    drop(crate::error::alloc::try_vec::<u8>(
        n * dtype.size_in_bytes(),
    )?);
    Ok(())
}

/// `as_any` for a concrete module type.
macro_rules! impl_as_any {
    () => {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use impl_as_any;

/// A training-mode flag with interior mutability (modules are shared immutably).
#[derive(Debug)]
pub(crate) struct ModeFlag(std::sync::atomic::AtomicBool);

impl Default for ModeFlag {
    fn default() -> Self {
        ModeFlag(std::sync::atomic::AtomicBool::new(true))
    }
}

impl ModeFlag {
    pub(crate) fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub(crate) fn set(&self, v: bool) {
        self.0.store(v, std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.01), "0.01");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
        assert_eq!(py_float(20.0), "20.0");
        assert_eq!(py_float(-0.2), "-0.2");
        assert_eq!(py_float(1e16), "1e+16");
    }

    #[test]
    fn device_mismatch_names_both_devices() {
        let e = check_placement(
            "fc: Linear(in_features=4, out_features=2, bias=True)",
            (&DeviceLocation::Cuda { gpu_id: 0 }, DType::F32),
            (&DeviceLocation::Cpu, DType::F32),
        )
        .unwrap_err();
        assert_eq!(e.code(), "K0301");
        let m = e.to_string();
        assert!(
            m.contains("cuda:0") && m.contains("cpu") && m.starts_with("fc: Linear"),
            "{m}"
        );
        assert!(e.hint().contains("to_device(cuda:0)"), "{}", e.hint());
    }

    #[test]
    fn dtype_mismatch_reads_like_pytorch() {
        let e = check_placement(
            "Linear",
            (&DeviceLocation::Cpu, DType::F32),
            (&DeviceLocation::Cpu, DType::F64),
        )
        .unwrap_err();
        assert_eq!(e.code(), "K0302");
        assert!(
            e.to_string()
                .contains("Found dtype Double (f64) but expected Float (f32)"),
            "{e}"
        );
    }
}
