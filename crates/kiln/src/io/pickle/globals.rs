//! The allow-list: the only globals a pickle may name, each mapped to a constructor kiln
//! implements itself. Nothing is ever looked up or executed by name.
//!
//! Mirrors the relevant part of PyTorch's `_weights_only_unpickler._get_allowed_globals`.

use crate::error::{Error, Result};
use crate::io::value::Dtype;

/// An allow-listed global.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict`
    OrderedDict,
    /// `collections.Counter` (read as a plain dict)
    Counter,
    /// `builtins.set`
    Set,
    /// `builtins.frozenset`
    FrozenSet,
    /// `builtins.bytearray`
    ByteArray,
    /// `builtins.bytes`
    BytesType,
    /// `_codecs.encode` (how protocol 2 writes `bytes`)
    Encode,
    /// `torch.Size`
    Size,
    /// `torch.device`
    Device,
    /// `torch.Tensor`
    TensorClass,
    /// `torch.nn.parameter.Parameter`
    Parameter,
    /// `torch._utils._rebuild_tensor`
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2`
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`
    RebuildFromTypeV2,
    /// A typed storage class (`torch.FloatStorage`).
    StorageType(Dtype),
    /// `torch.UntypedStorage` (bytes; the tensor carries the dtype).
    UntypedStorage,
    /// A dtype object (`torch.float32`).
    Dtype(Dtype),
    /// A legacy tensor class (`torch.FloatTensor`), rebuilt by `BUILD` with
    /// `(storage, offset, size, stride)` as pickles of PyTorch < 0.4 do.
    TensorType(Dtype),
    /// Any other class or function, recorded by the structural reader and never called.
    Class {
        /// `torch.nn.modules.linear`
        module: String,
        /// `Linear`
        name: String,
    },
}

/// The storage class PyTorch pickles for a dtype (`FloatStorage`), or `None` for dtypes that
/// use `UntypedStorage` and `_rebuild_tensor_v3`.
pub fn storage_class(d: Dtype) -> Option<&'static str> {
    Some(match d {
        Dtype::F64 => "DoubleStorage",
        Dtype::F32 => "FloatStorage",
        Dtype::F16 => "HalfStorage",
        Dtype::BF16 => "BFloat16Storage",
        Dtype::I64 => "LongStorage",
        Dtype::I32 => "IntStorage",
        Dtype::I16 => "ShortStorage",
        Dtype::I8 => "CharStorage",
        Dtype::U8 => "ByteStorage",
        Dtype::Bool => "BoolStorage",
        Dtype::C64 => "ComplexFloatStorage",
        Dtype::C128 => "ComplexDoubleStorage",
        Dtype::U16
        | Dtype::U32
        | Dtype::U64
        | Dtype::F8E4M3FN
        | Dtype::F8E5M2
        | Dtype::F8E4M3FNUZ
        | Dtype::F8E5M2FNUZ => return None,
    })
}

/// The attribute name of a dtype in the `torch` module (`float32`).
pub fn dtype_attr(d: Dtype) -> &'static str {
    d.torch_name().trim_start_matches("torch.")
}

fn dtype_by_attr(name: &str) -> Option<Dtype> {
    Some(match name {
        "float64" | "double" => Dtype::F64,
        "float32" | "float" => Dtype::F32,
        "float16" | "half" => Dtype::F16,
        "bfloat16" => Dtype::BF16,
        "int64" | "long" => Dtype::I64,
        "int32" | "int" => Dtype::I32,
        "int16" | "short" => Dtype::I16,
        "int8" => Dtype::I8,
        "uint8" => Dtype::U8,
        "bool" => Dtype::Bool,
        "uint16" => Dtype::U16,
        "uint32" => Dtype::U32,
        "uint64" => Dtype::U64,
        "float8_e4m3fn" => Dtype::F8E4M3FN,
        "float8_e5m2" => Dtype::F8E5M2,
        "float8_e4m3fnuz" => Dtype::F8E4M3FNUZ,
        "float8_e5m2fnuz" => Dtype::F8E5M2FNUZ,
        "complex64" | "cfloat" => Dtype::C64,
        "complex128" | "cdouble" => Dtype::C128,
        _ => return None,
    })
}

/// Globals PyTorch's weights-only unpickler allows but kiln does not rebuild.
const KNOWN_UNSUPPORTED: &[(&str, &str, &str)] = &[
    ("torch._utils", "_rebuild_sparse_tensor", "sparse tensors"),
    ("torch._utils", "_rebuild_qtensor", "quantized tensors"),
    (
        "torch._utils",
        "_rebuild_meta_tensor_no_storage",
        "meta tensors",
    ),
    (
        "torch._utils",
        "_rebuild_wrapper_subclass",
        "tensor subclasses",
    ),
    (
        "torch._utils",
        "_rebuild_device_tensor_from_numpy",
        "device tensors saved through numpy",
    ),
    (
        "torch._utils",
        "_rebuild_device_tensor_from_cpu_tensor",
        "device tensors saved from CPU copies",
    ),
    ("builtins", "complex", "complex numbers"),
    ("torch.serialization", "_get_layout", "sparse layouts"),
];

/// Resolves `module.name` against the allow-list.
///
/// # Errors
/// `K0504` for anything not on it (naming `module.name`); `K0005` for globals PyTorch allows
/// but kiln cannot rebuild (sparse, quantized, complex…).
pub fn resolve(module: &str, name: &str, path: &str) -> Result<Global> {
    // Python 2 names, as pickle's fix_imports maps them.
    let module = match module {
        "__builtin__" => "builtins",
        m => m,
    };
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("collections", "Counter") => Global::Counter,
        ("builtins", "set") => Global::Set,
        ("builtins", "frozenset") => Global::FrozenSet,
        ("builtins", "bytearray") => Global::ByteArray,
        ("builtins", "bytes") => Global::BytesType,
        ("_codecs", "encode") => Global::Encode,
        ("torch", "Size") => Global::Size,
        ("torch", "device") => Global::Device,
        ("torch", "Tensor") => Global::TensorClass,
        ("torch.nn.parameter", "Parameter") => Global::Parameter,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch" | "torch.storage", "UntypedStorage") => Global::UntypedStorage,
        ("torch" | "torch.cuda", n) if n.ends_with("Tensor") && n != "Tensor" => {
            let storage = format!("{}Storage", n.trim_end_matches("Tensor"));
            match Dtype::ALL
                .iter()
                .copied()
                .find(|d| storage_class(*d) == Some(storage.as_str()))
            {
                Some(d) => Global::TensorType(d),
                None => return Err(refused(module, name, path)),
            }
        }
        ("torch" | "torch.cuda", n) if n.ends_with("Storage") => {
            match Dtype::ALL
                .iter()
                .copied()
                .find(|d| storage_class(*d) == Some(n))
            {
                Some(d) => Global::StorageType(d),
                None if is_other_torch_dtype(n) => {
                    return Err(Error::Unsupported {
                        what: format!("storage class torch.{n} in '{path}'"),
                    });
                }
                None => return Err(refused(module, name, path)),
            }
        }
        ("torch", n) => match dtype_by_attr(n) {
            Some(d) => Global::Dtype(d),
            None if is_other_torch_dtype(n) => {
                return Err(Error::Unsupported {
                    what: format!(
                        "dtype torch.{n} in '{path}' (kiln reads f64, f32, f16, bf16, i64, i32, i16, i8, u8, bool, u16, u32, u64, the float8 e4m3fn/e5m2/fnuz types, complex64 and complex128)"
                    ),
                });
            }
            None => return Err(refused(module, name, path)),
        },
        _ => {
            if let Some((_, _, what)) = KNOWN_UNSUPPORTED
                .iter()
                .find(|(m, n, _)| *m == module && *n == name)
            {
                return Err(Error::Unsupported {
                    what: format!("{what} ({module}.{name}) in '{path}'"),
                });
            }
            return Err(refused(module, name, path));
        }
    };
    Ok(g)
}

/// Dtypes and storage classes PyTorch's weights-only unpickler allows but kiln has no type
/// for (complex, quantized, float8, sub-byte): refused as unsupported, not as unsafe.
fn is_other_torch_dtype(n: &str) -> bool {
    let n = n.trim_end_matches("Storage").to_ascii_lowercase();
    [
        "complex", "cfloat", "cdouble", "chalf", "qint", "quint", "float8", "float4", "bits",
    ]
    .iter()
    .any(|p| n.starts_with(p))
        || (n.starts_with("uint") || n.starts_with("int"))
            && n.get(n.len().saturating_sub(1)..)
                .is_some_and(|d| ("1"..="7").contains(&d))
            && n.len() <= 5
}

fn refused(module: &str, name: &str, path: &str) -> Error {
    Error::UnsafeGlobal {
        path: path.to_string(),
        global: format!("{module}.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        assert_eq!(
            resolve("torch", "FloatStorage", "f").unwrap(),
            Global::StorageType(Dtype::F32)
        );
        assert_eq!(
            resolve("torch", "bfloat16", "f").unwrap(),
            Global::Dtype(Dtype::BF16)
        );
        assert_eq!(resolve("__builtin__", "set", "f").unwrap(), Global::Set);
        assert_eq!(
            resolve("torch", "float8_e5m2fnuz", "f").unwrap(),
            Global::Dtype(Dtype::F8E5M2FNUZ)
        );
        assert_eq!(
            resolve("torch", "ComplexDoubleStorage", "f").unwrap(),
            Global::StorageType(Dtype::C128)
        );
        for other in [
            "float8_e8m0fnu",
            "complex32",
            "chalf",
            "ComplexHalfStorage",
            "QInt8Storage",
            "uint4",
            "int2",
            "bits8",
        ] {
            assert_eq!(
                resolve("torch", other, "f").unwrap_err().code(),
                "K0005",
                "{other}"
            );
        }
        assert_eq!(resolve("torch", "uint", "f").unwrap_err().code(), "K0504");
        let e = resolve("os", "system", "f.pt").unwrap_err();
        assert_eq!(e.code(), "K0504");
        assert!(e.to_string().contains("os.system"), "{e}");
        assert_eq!(resolve("torch", "load", "f").unwrap_err().code(), "K0504");
        assert_eq!(
            resolve("torch._utils", "_rebuild_qtensor", "f")
                .unwrap_err()
                .code(),
            "K0005"
        );
    }
}
