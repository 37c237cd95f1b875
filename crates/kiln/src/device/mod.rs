//! Devices and dtypes: names (`cpu`, `cuda:N`, `f32`, `bf16`), CUDA queries mirroring
//! `torch.cuda`, and `CUDA_VISIBLE_DEVICES`.

pub mod cuda;
pub mod spec;
pub mod visible;

pub use spec::{DeviceSpec, parse_device};
pub use visible::Visible;

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// The name PyTorch prints for a device: `cpu`, `cuda:0`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("mps:{gpu_id}"),
    }
}

/// The short name of a dtype: `f32`, `bf16`, `i64`, `bool`… (kiln's spelling).
pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// The name PyTorch prints for a dtype (`Float`, `Double`, `Long`), as in its messages.
pub fn torch_dtype_word(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "Double",
        DType::F32 => "Float",
        DType::F16 => "Half",
        DType::BF16 => "BFloat16",
        DType::I64 => "Long",
        DType::I32 => "Int",
        DType::I16 => "Short",
        DType::U8 => "Byte",
        DType::U32 => "UInt32",
        _ => "Other",
    }
}

/// Parses a dtype name (`f32`, `float32`, `float`, `bf16`, `half`, `i64`, `long`…).
///
/// # Errors
/// `K0305` listing the accepted names.
pub fn parse_dtype(text: &str) -> Result<DType> {
    let d = match text
        .trim()
        .to_ascii_lowercase()
        .trim_start_matches("torch.")
    {
        "f64" | "float64" | "double" => DType::F64,
        "f32" | "float32" | "float" => DType::F32,
        "f16" | "float16" | "half" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        "i64" | "int64" | "long" => DType::I64,
        "i32" | "int32" | "int" => DType::I32,
        "i16" | "int16" | "short" => DType::I16,
        "u8" | "uint8" | "byte" => DType::U8,
        "u32" | "uint32" => DType::U32,
        _ => {
            return Err(Error::Parse {
                what: "dtype",
                text: text.to_string(),
                expected: "f64, f32, f16, bf16, i64, i32, i16, u8, u32".into(),
            });
        }
    };
    Ok(d)
}
