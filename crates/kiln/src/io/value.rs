//! `Value`: what a model file holds — nested dicts, lists and tuples of tensors and scalars,
//! like the Python object `torch.save` pickles.
//!
//! Tensors are kept as PyTorch stores them: a shared, typed [`Storage`] (with its device
//! tag, e.g. `cuda:0`) plus offset, shape and strides. That keeps views and shared storages
//! intact through a load → save round trip and covers dtypes candle lacks (`i8`, `bool`,
//! `u16`…). [`TensorValue::to_tensor`] makes a candle tensor when one is needed.
//!
//! ```
//! use kiln::io::Value;
//! let v = Value::dict([("epoch", Value::Int(3)), ("loss", Value::Float(0.25))]);
//! assert_eq!(v.get("epoch").and_then(Value::as_i64), Some(3));
//! ```

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Element types a file can hold (PyTorch's storage dtypes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// float64
    F64,
    /// float32
    F32,
    /// float16
    F16,
    /// bfloat16
    BF16,
    /// int64
    I64,
    /// int32
    I32,
    /// int16
    I16,
    /// int8
    I8,
    /// uint8
    U8,
    /// bool (one byte per element)
    Bool,
    /// uint16
    U16,
    /// uint32
    U32,
    /// uint64
    U64,
    /// float8_e4m3fn (candle's `F8E4M3`)
    F8E4M3FN,
    /// float8_e5m2 (bytes kept as they are; candle has no such type)
    F8E5M2,
    /// float8_e4m3fnuz (bytes kept as they are)
    F8E4M3FNUZ,
    /// float8_e5m2fnuz (bytes kept as they are)
    F8E5M2FNUZ,
    /// complex64 (interleaved f32 real/imaginary parts; bytes kept as they are)
    C64,
    /// complex128 (interleaved f64 parts; bytes kept as they are)
    C128,
}

impl Dtype {
    /// Every dtype, in a stable order.
    pub const ALL: [Dtype; 19] = [
        Dtype::F64,
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I64,
        Dtype::I32,
        Dtype::I16,
        Dtype::I8,
        Dtype::U8,
        Dtype::Bool,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::F8E4M3FN,
        Dtype::F8E5M2,
        Dtype::F8E4M3FNUZ,
        Dtype::F8E5M2FNUZ,
        Dtype::C64,
        Dtype::C128,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::C128 => 16,
            Dtype::F64 | Dtype::I64 | Dtype::U64 | Dtype::C64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 | Dtype::U16 => 2,
            Dtype::I8
            | Dtype::U8
            | Dtype::Bool
            | Dtype::F8E4M3FN
            | Dtype::F8E5M2
            | Dtype::F8E4M3FNUZ
            | Dtype::F8E5M2FNUZ => 1,
        }
    }

    /// Whether it is a floating-point type that casts convert (float8 and complex are not:
    /// their bytes are kept as they are).
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }

    /// Whether kiln only carries its bytes (float8, complex): read and written bit-exactly,
    /// never cast element by element.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            Dtype::F8E4M3FN
                | Dtype::F8E5M2
                | Dtype::F8E4M3FNUZ
                | Dtype::F8E5M2FNUZ
                | Dtype::C64
                | Dtype::C128
        )
    }

    /// kiln's short name (`f32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            Dtype::I64 => "i64",
            Dtype::I32 => "i32",
            Dtype::I16 => "i16",
            Dtype::I8 => "i8",
            Dtype::U8 => "u8",
            Dtype::Bool => "bool",
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
            Dtype::U64 => "u64",
            Dtype::F8E4M3FN => "f8_e4m3fn",
            Dtype::F8E5M2 => "f8_e5m2",
            Dtype::F8E4M3FNUZ => "f8_e4m3fnuz",
            Dtype::F8E5M2FNUZ => "f8_e5m2fnuz",
            Dtype::C64 => "c64",
            Dtype::C128 => "c128",
        }
    }

    /// PyTorch's name (`torch.float32`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Dtype::F64 => "torch.float64",
            Dtype::F32 => "torch.float32",
            Dtype::F16 => "torch.float16",
            Dtype::BF16 => "torch.bfloat16",
            Dtype::I64 => "torch.int64",
            Dtype::I32 => "torch.int32",
            Dtype::I16 => "torch.int16",
            Dtype::I8 => "torch.int8",
            Dtype::U8 => "torch.uint8",
            Dtype::Bool => "torch.bool",
            Dtype::U16 => "torch.uint16",
            Dtype::U32 => "torch.uint32",
            Dtype::U64 => "torch.uint64",
            Dtype::F8E4M3FN => "torch.float8_e4m3fn",
            Dtype::F8E5M2 => "torch.float8_e5m2",
            Dtype::F8E4M3FNUZ => "torch.float8_e4m3fnuz",
            Dtype::F8E5M2FNUZ => "torch.float8_e5m2fnuz",
            Dtype::C64 => "torch.complex64",
            Dtype::C128 => "torch.complex128",
        }
    }

    /// Parses kiln or PyTorch spellings (`f32`, `float32`, `torch.float32`, `bool`, `int8`).
    ///
    /// # Errors
    /// `K0305`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.trim_start_matches("torch.");
        Dtype::ALL
            .iter()
            .copied()
            .find(|d| d.name() == t || d.torch_name().trim_start_matches("torch.") == t)
            .or(match t {
                "float" => Some(Dtype::F32),
                "double" => Some(Dtype::F64),
                "half" => Some(Dtype::F16),
                "long" => Some(Dtype::I64),
                "int" => Some(Dtype::I32),
                "short" => Some(Dtype::I16),
                "char" => Some(Dtype::I8),
                "byte" => Some(Dtype::U8),
                "cfloat" => Some(Dtype::C64),
                "cdouble" => Some(Dtype::C128),
                _ => None,
            })
            .ok_or_else(|| Error::Parse {
                what: "dtype",
                text: text.to_string(),
                expected: Dtype::ALL
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The candle dtype holding these values, if candle has one.
    pub fn to_candle(self) -> Option<DType> {
        Some(match self {
            Dtype::F64 => DType::F64,
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::I16 => DType::I16,
            Dtype::U8 | Dtype::Bool => DType::U8,
            Dtype::U32 => DType::U32,
            Dtype::F8E4M3FN => DType::F8E4M3,
            Dtype::I8
            | Dtype::U16
            | Dtype::U64
            | Dtype::F8E5M2
            | Dtype::F8E4M3FNUZ
            | Dtype::F8E5M2FNUZ
            | Dtype::C64
            | Dtype::C128 => return None,
        })
    }

    /// The file dtype of a candle dtype.
    ///
    /// # Errors
    /// `K0005` for candle's exotic float8/float4 types.
    pub fn from_candle(d: DType) -> Result<Self> {
        Ok(match d {
            DType::F64 => Dtype::F64,
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            DType::I64 => Dtype::I64,
            DType::I32 => Dtype::I32,
            DType::I16 => Dtype::I16,
            DType::U8 => Dtype::U8,
            DType::U32 => Dtype::U32,
            DType::F8E4M3 => Dtype::F8E4M3FN,
            other => {
                return Err(Error::Unsupported {
                    what: format!("saving tensors of dtype {other:?}"),
                });
            }
        })
    }
}

/// The bytes of a storage: owned, or a window of a memory-mapped file (lazy loading).
#[derive(Clone)]
pub enum Bytes {
    /// Bytes in memory.
    Owned(Arc<Vec<u8>>),
    /// A candle tensor whose bytes are produced on first use (see [`deferred`]): lets a
    /// checkpoint be snapshotted without copying and serialised in a background thread.
    Deferred(Arc<DeferredBytes>),
    /// A range of a memory-mapped file.
    Mapped {
        /// The mapping (kept alive while any tensor uses it).
        map: Arc<memmap2::Mmap>,
        /// Start offset in the mapping.
        start: usize,
        /// Length in bytes.
        len: usize,
    },
}

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v.as_slice(),
            Bytes::Deferred(d) => d.bytes(),
            Bytes::Mapped { map, start, len } => map.get(*start..*start + *len).unwrap_or(&[]),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Bytes::Owned(v) => v.len(),
            Bytes::Deferred(d) => d.len,
            Bytes::Mapped { len, .. } => *len,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
            Bytes::Deferred(d) => write!(f, "Deferred({} bytes)", d.len),
            Bytes::Mapped { len, .. } => write!(f, "Mapped({len} bytes)"),
        }
    }
}

/// A tensor kept as is until its bytes are needed, then converted once (little-endian,
/// contiguous, on the CPU). Conversion errors (a device that cannot be read back) yield an
/// empty slice, which the writers' length checks report.
pub struct DeferredBytes {
    tensor: Tensor,
    len: usize,
    bytes: std::sync::OnceLock<Vec<u8>>,
    /// Whether `tensor` is a 1-D CPU tensor read from a file (see [`crate::io::typed`]):
    /// then no one else holds it and views of the storage may share it.
    loaded: bool,
}

impl DeferredBytes {
    /// A storage read from a file straight into `tensor` (1-D, CPU, `len` bytes).
    pub(crate) fn loaded(tensor: Tensor, len: usize) -> Self {
        DeferredBytes {
            tensor,
            len,
            bytes: std::sync::OnceLock::new(),
            loaded: true,
        }
    }

    /// The tensor of a storage read by [`crate::io::typed`], if this is one.
    pub(crate) fn loaded_tensor(&self) -> Option<&Tensor> {
        self.loaded.then_some(&self.tensor)
    }

    fn bytes(&self) -> &[u8] {
        self.bytes
            .get_or_init(|| {
                self.tensor
                    .to_device(&Device::Cpu)
                    .ok()
                    .and_then(|t| tensor_bytes(&t).ok())
                    .unwrap_or_default()
            })
            .as_slice()
    }
}

thread_local! {
    static DEFER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`Value::from_tensor`] / [`TensorValue::from_tensor`] deferring the copy of
/// tensor data: the value keeps the (immutable) candle tensor and converts it when a writer
/// first reads it. kiln uses this to snapshot checkpoints for asynchronous writing.
///
/// Safe only for tensors nobody overwrites in place before they are written: optimizer state
/// tensors are always new tensors in kiln, and parameters must be marked with
/// [`crate::nn::Param::mark_shared`] first (their next in-place update then copies instead).
pub fn deferred<R>(f: impl FnOnce() -> R) -> R {
    let old = DEFER.with(|d| d.replace(true));
    let r = f();
    DEFER.with(|d| d.set(old));
    r
}

/// A typed storage with PyTorch's location tag (`cpu`, `cuda:0`). Tensors that share a
/// storage (views, tied weights) hold the same `Arc<Storage>`.
#[derive(Debug)]
pub struct Storage {
    /// Element type.
    pub dtype: Dtype,
    /// Location tag as saved (`cpu`, `cuda:1`); `map_location` rewrites it on load.
    pub location: String,
    /// Little-endian element bytes; `len() == numel * dtype.size()`.
    pub data: Bytes,
}

impl Storage {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size().max(1)
    }
}

/// A tensor as stored in a file: a view (offset, shape, strides in elements) of a storage.
#[derive(Clone, Debug)]
pub struct TensorValue {
    /// The (possibly shared) storage.
    pub storage: Arc<Storage>,
    /// Offset of the first element, in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
    /// `requires_grad` as saved.
    pub requires_grad: bool,
    /// Whether it was saved as an `nn.Parameter`.
    pub is_parameter: bool,
}

/// Row-major strides of a shape.
pub fn contiguous_stride(shape: &[usize]) -> Vec<usize> {
    let mut stride = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1].max(1);
    }
    stride
}

impl TensorValue {
    /// A contiguous tensor owning `data` (little-endian bytes of `dtype`).
    ///
    /// # Errors
    /// `K0003` when the byte length does not equal `numel × size`.
    pub fn from_bytes(
        dtype: Dtype,
        shape: Vec<usize>,
        data: Vec<u8>,
        location: &str,
    ) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if numel.checked_mul(dtype.size()) != Some(data.len()) {
            return Err(Error::invalid(
                "tensor bytes",
                data.len(),
                format!(
                    "{numel} × {} bytes for shape {}",
                    dtype.size(),
                    shape_str(&shape)
                ),
            ));
        }
        Ok(TensorValue {
            stride: contiguous_stride(&shape),
            shape,
            offset: 0,
            requires_grad: false,
            is_parameter: false,
            storage: Arc::new(Storage {
                dtype,
                location: location.to_string(),
                data: Bytes::Owned(Arc::new(data)),
            }),
        })
    }

    /// Copies a candle tensor (from any device) into a CPU-side value tagged with the tensor's
    /// device (`cpu`, `cuda:N`).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let dtype = Dtype::from_candle(t.dtype())?;
        let location = crate::device::device_name(t.device());
        if DEFER.with(|d| d.get()) {
            let shape = t.dims().to_vec();
            let len = t.elem_count() * dtype.size();
            return Ok(TensorValue {
                stride: contiguous_stride(&shape),
                shape,
                offset: 0,
                requires_grad: false,
                is_parameter: false,
                storage: Arc::new(Storage {
                    dtype,
                    location,
                    data: Bytes::Deferred(Arc::new(DeferredBytes {
                        tensor: t.detach(),
                        len,
                        bytes: std::sync::OnceLock::new(),
                        loaded: false,
                    })),
                }),
            });
        }
        let cpu = t
            .to_device(&Device::Cpu)
            .and_then(|t| t.contiguous())
            .and_then(|t| t.flatten_all())
            .ctx("saving tensor")?;
        let data = tensor_bytes(&cpu)?;
        TensorValue::from_bytes(dtype, t.dims().to_vec(), data, &location)
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.storage.dtype
    }

    /// Number of elements of the view.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the view is the whole storage, contiguous, from offset 0.
    pub fn is_compact(&self) -> bool {
        self.offset == 0
            && self.stride == contiguous_stride(&self.shape)
            && self.numel() == self.storage.numel()
    }

    /// Checks that every element the view addresses lies inside the storage.
    ///
    /// # Errors
    /// `K0507` naming the shape, strides, offset and storage size.
    pub fn check_bounds(&self) -> Result<()> {
        let bad = || Error::Schema {
            path: String::new(),
            detail: format!(
                "tensor view (offset {}, shape {}, stride {:?}) reaches outside its storage of {} elements",
                self.offset,
                shape_str(&self.shape),
                self.stride,
                self.storage.numel()
            ),
        };
        if self.shape.len() != self.stride.len() {
            return Err(bad());
        }
        if self.numel() == 0 {
            return Ok(());
        }
        let mut last = self.offset;
        for (d, s) in self.shape.iter().zip(&self.stride) {
            last = (d - 1)
                .checked_mul(*s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(bad)?;
        }
        if last >= self.storage.numel() {
            return Err(bad());
        }
        Ok(())
    }

    /// The view's elements as contiguous little-endian bytes (a copy unless compact).
    pub fn contiguous_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        self.check_bounds()?;
        let es = self.dtype().size();
        let data = self.storage.data.as_slice();
        let numel = self.numel();
        if numel == 0 {
            // Regression: an empty view may have any offset (even past its storage).
            return Ok(std::borrow::Cow::Borrowed(&[]));
        }
        if self.stride == contiguous_stride(&self.shape) {
            let start = self.offset * es;
            return data
                .get(start..start + numel * es)
                .map(std::borrow::Cow::Borrowed)
                .ok_or_else(|| Error::Schema {
                    path: String::new(),
                    detail: "tensor data outside its storage".into(),
                });
        }
        let mut out = Vec::with_capacity(numel * es);
        let rank = self.shape.len();
        let mut idx = vec![0usize; rank];
        for _ in 0..numel {
            let pos = self.offset
                + idx
                    .iter()
                    .zip(&self.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.extend_from_slice(data.get(pos * es..pos * es + es).unwrap_or(&[]));
            for d in (0..rank).rev() {
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(std::borrow::Cow::Owned(out))
    }

    /// A contiguous view of a storage read by [`crate::io::typed`] as a tensor sharing its
    /// buffer (no copy); `None` for any other storage or layout.
    fn view_of_loaded(&self) -> Result<Option<Tensor>> {
        let Bytes::Deferred(d) = &self.storage.data else {
            return Ok(None);
        };
        let Some(t) = d.loaded_tensor() else {
            return Ok(None);
        };
        let numel = self.numel();
        if Some(t.dtype()) != self.dtype().to_candle()
            || numel == 0
            || self.stride != contiguous_stride(&self.shape)
        {
            return Ok(None);
        }
        self.check_bounds()?;
        let v = t
            .narrow(0, self.offset, numel)
            .and_then(|v| v.reshape(self.shape.as_slice()))
            .ctx("loading tensor")?;
        Ok(Some(v))
    }

    /// A candle tensor on `device` with the view's values. `bool` becomes `u8`; `i8`, `u16`
    /// and `u64` are widened losslessly to `i16`, `i32` and `i64` (with a check on u64).
    ///
    /// # Errors
    /// `K0507` for a view outside its storage; `K0005` for u64 values above `i64::MAX`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        if let Some(t) = self.view_of_loaded()? {
            return if device.is_cpu() {
                Ok(t)
            } else {
                t.to_device(device).ctx("moving loaded tensor")
            };
        }
        let bytes = self.contiguous_bytes()?;
        let shape = self.shape.as_slice();
        let cpu = Device::Cpu;
        let t = match self.dtype().to_candle() {
            Some(d) => Tensor::from_raw_buffer(&bytes, d, shape, &cpu).ctx("loading tensor")?,
            None => match self.dtype() {
                Dtype::I8 => {
                    let v: Vec<i16> = bytes.iter().map(|&b| b as i8 as i16).collect();
                    Tensor::from_vec(v, shape, &cpu).ctx("loading tensor")?
                }
                d if d.is_raw() => {
                    return Err(Error::Unsupported {
                        what: format!(
                            "computing with {} tensors (kiln reads, converts and saves their bytes exactly, but candle has no such type)",
                            d.torch_name()
                        ),
                    });
                }
                Dtype::U16 => {
                    let v: Vec<i32> = bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]) as i32)
                        .collect();
                    Tensor::from_vec(v, shape, &cpu).ctx("loading tensor")?
                }
                _ => {
                    let mut v = Vec::with_capacity(bytes.len() / 8);
                    for c in bytes.chunks_exact(8) {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        let x = u64::from_le_bytes(a);
                        v.push(i64::try_from(x).map_err(|_| Error::Unsupported {
                            what: format!("uint64 value {x} above i64::MAX"),
                        })?);
                    }
                    Tensor::from_vec(v, shape, &cpu).ctx("loading tensor")?
                }
            },
        };
        if device.is_cpu() {
            Ok(t)
        } else {
            t.to_device(device).ctx("moving loaded tensor")
        }
    }
}

/// The little-endian bytes of a CPU tensor (any layout).
///
/// Contiguous tensors are copied with one `memcpy` from candle's storage (on little-endian
/// targets); others go element by element.
pub fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    if let Some(bytes) = fast_bytes(t) {
        return Ok(bytes);
    }
    fn le<T: Copy, const N: usize>(v: Vec<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len() * N);
        for x in v {
            out.extend_from_slice(&f(x));
        }
        out
    }
    let t = t.flatten_all().ctx("tensor bytes")?;
    Ok(match t.dtype() {
        DType::F64 => le(t.to_vec1::<f64>().ctx("tensor bytes")?, f64::to_le_bytes),
        DType::F32 => le(t.to_vec1::<f32>().ctx("tensor bytes")?, f32::to_le_bytes),
        DType::F16 => le(
            t.to_vec1::<half::f16>().ctx("tensor bytes")?,
            half::f16::to_le_bytes,
        ),
        DType::BF16 => le(
            t.to_vec1::<half::bf16>().ctx("tensor bytes")?,
            half::bf16::to_le_bytes,
        ),
        DType::I64 => le(t.to_vec1::<i64>().ctx("tensor bytes")?, i64::to_le_bytes),
        DType::I32 => le(t.to_vec1::<i32>().ctx("tensor bytes")?, i32::to_le_bytes),
        DType::I16 => le(t.to_vec1::<i16>().ctx("tensor bytes")?, i16::to_le_bytes),
        DType::U32 => le(t.to_vec1::<u32>().ctx("tensor bytes")?, u32::to_le_bytes),
        DType::U8 => t.to_vec1::<u8>().ctx("tensor bytes")?,
        DType::F8E4M3 => fast_bytes(&t.contiguous().ctx("tensor bytes")?).unwrap_or_default(),
        other => {
            return Err(Error::Unsupported {
                what: format!("tensor dtype {other:?}"),
            });
        }
    })
}

/// One `memcpy` of a contiguous CPU tensor's elements, on little-endian targets.
fn fast_bytes(t: &Tensor) -> Option<Vec<u8>> {
    use candle_core::{CpuStorage, Storage};
    fn raw<T: Copy>(v: &[T], start: usize, end: usize) -> Option<Vec<u8>> {
        let part = v.get(start..end)?;
        let len = std::mem::size_of_val(part);
        // SAFETY: `part` is a live, initialised slice of plain numeric values (no padding, any
        // bit pattern valid as bytes); we read exactly its `len` bytes, and the byte order is
        // the file's (little-endian, checked by the cfg below).
        let bytes = unsafe { std::slice::from_raw_parts(part.as_ptr().cast::<u8>(), len) };
        Some(bytes.to_vec())
    }
    if !cfg!(target_endian = "little") {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => match cpu {
            CpuStorage::F32(v) => raw(v, start, end),
            CpuStorage::F64(v) => raw(v, start, end),
            CpuStorage::F16(v) => raw(v, start, end),
            CpuStorage::BF16(v) => raw(v, start, end),
            CpuStorage::I64(v) => raw(v, start, end),
            CpuStorage::I32(v) => raw(v, start, end),
            CpuStorage::I16(v) => raw(v, start, end),
            CpuStorage::U32(v) => raw(v, start, end),
            CpuStorage::U8(v) => raw(v, start, end),
            CpuStorage::F8E4M3(v) => raw(v, start, end),
            _ => None,
        },
        _ => None,
    }
}

/// An ordered dictionary; `ordered` marks a Python `collections.OrderedDict`, whose
/// `_metadata` attribute (as `state_dict()` carries) is kept in `metadata`.
#[derive(Clone, Debug, Default)]
pub struct Dict {
    /// Entries in order; keys are usually `Str` or `Int`.
    pub entries: Vec<(Value, Value)>,
    /// Whether it is an `OrderedDict` (else a plain `dict`).
    pub ordered: bool,
    /// The `_metadata` attribute of a state-dict `OrderedDict`.
    pub metadata: Option<Box<Value>>,
}

impl Dict {
    /// The value under a string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value under an integer key.
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_i64() == Some(key) && !matches!(k, Value::Bool(_)))
            .map(|(_, v)| v)
    }

    /// Inserts or replaces (keeping the position) a string-keyed value.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self
            .entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
        {
            Some(slot) => slot.1 = value,
            None => self.entries.push((Value::Str(key.to_string()), value)),
        }
    }
}

/// A value in a model file.
#[derive(Clone, Debug)]
pub enum Value {
    /// Python `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (64-bit).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `list`.
    List(Vec<Value>),
    /// `tuple` (also `torch.Size`).
    Tuple(Vec<Value>),
    /// `dict` / `OrderedDict`.
    Dict(Dict),
    /// A tensor or parameter.
    Tensor(TensorValue),
    /// A `torch.dtype` object (e.g. saved in optimizer or scheduler state).
    DtypeObj(Dtype),
    /// A `torch.device` object.
    DeviceObj(String),
    /// An inert record of a class instance or function reference, made only by the
    /// structural unpickler (never constructed; see [`crate::io::object`]).
    Object(Box<crate::io::object::PyObject>),
}

impl Value {
    /// A plain `dict` with string keys.
    pub fn dict<K: Into<String>>(items: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Dict(Dict {
            entries: items
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
            ordered: false,
            metadata: None,
        })
    }

    /// Looks up a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key),
            _ => None,
        }
    }

    /// The dict, if this is one.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer (bools count, as in Python).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The number as `f64` (ints and floats).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&TensorValue> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A tensor value from a candle tensor.
    pub fn from_tensor(t: &Tensor) -> Result<Value> {
        Ok(Value::Tensor(TensorValue::from_tensor(t)?))
    }

    /// A short type name for messages (`dict`, `Tensor`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(d) if d.ordered => "OrderedDict",
            Value::Dict(_) => "dict",
            Value::Tensor(_) => "Tensor",
            Value::DtypeObj(_) => "torch.dtype",
            Value::DeviceObj(_) => "torch.device",
            Value::Object(_) => "object",
        }
    }

    /// Visits every tensor with its dotted path (dict keys, list indices).
    pub fn visit_tensors<'a>(&'a self, f: &mut dyn FnMut(&str, &'a TensorValue)) {
        fn walk<'a>(v: &'a Value, path: &str, f: &mut dyn FnMut(&str, &'a TensorValue)) {
            let join = |k: String| {
                if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                }
            };
            match v {
                Value::Tensor(t) => f(path, t),
                Value::List(items) | Value::Tuple(items) => {
                    for (i, x) in items.iter().enumerate() {
                        walk(x, &join(i.to_string()), f);
                    }
                }
                Value::Dict(d) => {
                    for (k, x) in &d.entries {
                        walk(x, &join(key_string(k)), f);
                    }
                }
                _ => {}
            }
        }
        walk(self, "", f);
    }
}

/// A dict key as text (`"fc.weight"`, `3`).
pub fn key_string(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Float(f) => f.to_string(),
        Value::None => "None".to_string(),
        other => format!("<{}>", other.type_name()),
    }
}

impl PartialEq for Value {
    /// Structural equality; tensors compare by dtype, shape and element bytes.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::None, Value::None) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::Dict(a), Value::Dict(b)) => {
                a.ordered == b.ordered && a.entries == b.entries && a.metadata == b.metadata
            }
            (Value::Tensor(a), Value::Tensor(b)) => {
                a.dtype() == b.dtype()
                    && a.shape == b.shape
                    && a.requires_grad == b.requires_grad
                    && a.is_parameter == b.is_parameter
                    && match (a.contiguous_bytes(), b.contiguous_bytes()) {
                        (Ok(x), Ok(y)) => x == y,
                        _ => false,
                    }
            }
            (Value::DtypeObj(a), Value::DtypeObj(b)) => a == b,
            (Value::DeviceObj(a), Value::DeviceObj(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

/// Converts a state dict to the `OrderedDict` value `torch.save(model.state_dict())` writes
/// (with `_metadata` when the state dict has it).
pub fn state_dict_to_value(sd: &crate::StateDict) -> Result<Value> {
    let mut entries = Vec::with_capacity(sd.len());
    for (k, t) in sd.iter() {
        entries.push((Value::Str(k.to_string()), Value::from_tensor(t)?));
    }
    let metadata = sd.metadata.as_ref().map(|m| {
        Box::new(Value::Dict(Dict {
            entries: m
                .iter()
                .map(|(k, v)| {
                    (
                        Value::Str(k.clone()),
                        Value::dict([("version", Value::Int(*v))]),
                    )
                })
                .collect(),
            ordered: true,
            metadata: None,
        }))
    });
    Ok(Value::Dict(Dict {
        entries,
        ordered: true,
        metadata,
    }))
}

/// Reads a state dict out of a value: a dict whose values are all tensors (string keys).
/// Tensors are created on `device`.
///
/// # Errors
/// `K0507` when the value is not a flat dict of tensors, naming the first offending key and
/// listing the top-level keys (so a checkpoint dict is recognised as such).
pub fn value_to_state_dict(v: &Value, device: &Device) -> Result<crate::StateDict> {
    let d = v.as_dict().ok_or_else(|| Error::Schema {
        path: String::new(),
        detail: format!(
            "expected a state dict (a dict of tensors), found a {}",
            v.type_name()
        ),
    })?;
    let mut sd = crate::StateDict::new();
    // Validate keys and values first (in order, so the first bad key is reported), then
    // build the candle tensors on all cores.
    let mut items = Vec::with_capacity(d.entries.len());
    for (k, x) in &d.entries {
        let key = k.as_str().ok_or_else(|| Error::Schema {
            path: String::new(),
            detail: format!("state dict key {} is not a string", key_string(k)),
        })?;
        let t = x.as_tensor().ok_or_else(|| {
            let keys: Vec<String> = d.entries.iter().map(|(k, _)| key_string(k)).take(12).collect();
            Error::Schema {
                path: String::new(),
                detail: format!(
                    "'{key}' holds a {}, not a tensor: this is not a plain state dict (top-level keys: {}); pick the state dict inside it (e.g. 'model_state_dict')",
                    x.type_name(),
                    keys.join(", ")
                ),
            }
        })?;
        items.push((key, t));
    }
    use rayon::prelude::*;
    let tensors: Vec<Tensor> = items
        .par_iter()
        .map(|(_, t)| t.to_tensor(device))
        .collect::<Result<_>>()?;
    for ((key, _), t) in items.iter().zip(tensors) {
        sd.insert(*key, t);
    }
    if let Some(meta) = d.metadata.as_deref().and_then(Value::as_dict) {
        let mut m = indexmap::IndexMap::new();
        for (k, v) in &meta.entries {
            if let (Some(k), Some(ver)) = (k.as_str(), v.get("version").and_then(Value::as_i64)) {
                m.insert(k.to_string(), ver);
            }
        }
        sd.metadata = Some(m);
    }
    Ok(sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_view_bytes() {
        // storage 0..6 as f32, view [[0,2,4],[1,3,5]] (transpose of 3x2)
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let base = TensorValue::from_bytes(Dtype::F32, vec![3, 2], data, "cpu").unwrap();
        let view = TensorValue {
            shape: vec![2, 3],
            stride: vec![1, 2],
            ..base.clone()
        };
        let t = view.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![0., 2., 4.], vec![1., 3., 5.]]
        );
        let oob = TensorValue { offset: 1, ..base };
        assert!(oob.check_bounds().is_err());
    }

    #[test]
    fn state_dict_value_round_trip() {
        let mut sd = crate::StateDict::new();
        sd.insert("a", Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap());
        sd.insert("n", Tensor::new(3i64, &Device::Cpu).unwrap());
        let v = state_dict_to_value(&sd).unwrap();
        let back = value_to_state_dict(&v, &Device::Cpu).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "n"]);
        assert_eq!(back.get("n").unwrap().to_scalar::<i64>().unwrap(), 3);
    }

    #[test]
    fn narrow_types_widen() {
        let t = TensorValue::from_bytes(Dtype::I8, vec![2], vec![0xff, 0x05], "cpu").unwrap();
        assert_eq!(
            t.to_tensor(&Device::Cpu).unwrap().to_vec1::<i16>().unwrap(),
            vec![-1, 5]
        );
    }
}
