//! Shared plumbing of the kernels: the float trait, reading CPU storage without copies,
//! building result tensors.

use candle_core::{CpuStorage, Layout, Storage, Tensor, WithDType};
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The element types the kernels compute in (`f32`, `f64`).
pub(crate) trait Float:
    WithDType
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + PartialOrd
    + Send
    + Sync
    + 'static
{
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
impl_float!(f32);
impl_float!(f64);

/// The contiguous elements `layout` describes in `storage`.
///
/// # Errors
/// When the layout is not contiguous or the storage holds another dtype.
pub(crate) fn slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("kiln kernel: non-contiguous input".into()))?;
    T::cpu_storage_as_slice(storage)?
        .get(a..b)
        .ok_or_else(|| candle_core::Error::Msg("kiln kernel: layout outside its storage".into()))
}

/// Runs `f` on the contiguous CPU elements of `t` (no copy when `t` is already contiguous).
///
/// # Errors
/// When `t` is not a CPU tensor of dtype `T`.
pub(crate) fn with_slice<T: WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(slice::<T>(s, layout)?),
        _ => candle_core::bail!("kiln kernel: expected a CPU tensor"),
    }
}

/// A CPU tensor of `shape` owning `data` (no copy).
pub(crate) fn tensor<T: WithDType>(data: Vec<T>, shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// Gradients of up to three arguments (`None`: not needed).
pub(crate) type Grads3<G> = (Option<G>, Option<G>, Option<G>);

/// CPU storage owning `data`.
pub(crate) fn storage<T: WithDType>(data: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(data)
}

/// Whether backward must produce a gradient for `t`: it is a variable or was computed from
/// one. Data tensors and frozen parameters (plain tensors) need none.
pub(crate) fn needs_grad(t: &Tensor) -> bool {
    t.track_op()
}

/// Applies `$body` with `$t` bound to the element type of the [`CpuStorage`] `$s`
/// (`f32` or `f64`); other dtypes are an error naming `$name`.
macro_rules! dispatch {
    ($s:expr, $name:expr, |$t:ident| $body:expr) => {
        match $s {
            candle_core::CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            candle_core::CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            _ => candle_core::bail!("{}: kiln kernels take f32 or f64 tensors", $name),
        }
    };
}
pub(crate) use dispatch;

/// As [`dispatch!`] on a candle `DType`.
macro_rules! dispatch_dtype {
    ($d:expr, $name:expr, |$t:ident| $body:expr) => {
        match $d {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => candle_core::bail!("{}: no kernel for {:?}", $name, other),
        }
    };
}
pub(crate) use dispatch_dtype;
