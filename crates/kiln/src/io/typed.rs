//! Tensor data read straight into candle tensors: the path of
//! [`crate::io::load_state_dict_file`].
//!
//! A plain read leaves a storage's bytes in a `Vec<u8>` and [`TensorValue::to_tensor`] then
//! copies them into a typed candle buffer: two copies of every byte, and page faults on two
//! fresh allocations. Inside [`typed`], the `.pt` and `.safetensors` readers instead read each
//! record into the spare capacity of a `Vec<f32>` (or the storage's element type), hand it to
//! candle without a copy, and keep the tensor as the storage's [`Bytes::Deferred`] data;
//! `to_tensor` of a contiguous view then narrows and reshapes that tensor (no copy at all).
//! The bytes are still there for anything that needs them (converted once, on first use).
//!
//! [`TensorValue::to_tensor`]: crate::io::TensorValue::to_tensor
//! [`Bytes::Deferred`]: crate::io::Bytes::Deferred

use super::value::{Bytes, DeferredBytes, Dtype};
use crate::error::{Context, Result};
use candle_core::{Device, Tensor};
use std::mem::MaybeUninit;
use std::sync::Arc;

thread_local! {
    static TYPED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the readers building typed candle tensors for the storages they read
/// (see the module docs).
pub(crate) fn typed<R>(f: impl FnOnce() -> R) -> R {
    let old = TYPED.with(|t| t.replace(true));
    let r = f();
    TYPED.with(|t| t.set(old));
    r
}

/// Whether the readers on this thread are inside [`typed`].
pub(crate) fn enabled() -> bool {
    TYPED.with(|t| t.get())
}

/// Storage bytes for `len` bytes of `dtype` filled by `fill` straight into a candle
/// tensor's buffer, or `None` (nothing read) when `dtype` has no candle twin, `len` is not a
/// whole number of elements, or the host is big-endian — the caller then reads as before.
/// `fill` must write every byte of the slice it gets (or fail).
///
/// # Errors
/// Those of `fill`; backend errors building the tensor.
pub(crate) fn read_storage(
    dtype: Dtype,
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<()>,
) -> Result<Option<Bytes>> {
    if cfg!(target_endian = "big") || dtype.size() == 0 || len % dtype.size() != 0 {
        return Ok(None);
    }
    let n = len / dtype.size();
    let t = match dtype {
        Dtype::F32 => filled::<f32>(n, fill)?,
        Dtype::F64 => filled::<f64>(n, fill)?,
        Dtype::F16 => filled::<half::f16>(n, fill)?,
        Dtype::BF16 => filled::<half::bf16>(n, fill)?,
        Dtype::I64 => filled::<i64>(n, fill)?,
        Dtype::I32 => filled::<i32>(n, fill)?,
        Dtype::I16 => filled::<i16>(n, fill)?,
        Dtype::U8 => filled::<u8>(n, fill)?,
        Dtype::U32 => filled::<u32>(n, fill)?,
        _ => return Ok(None),
    };
    Ok(Some(Bytes::Deferred(Arc::new(DeferredBytes::loaded(
        t, len,
    )))))
}

/// Plain numeric element types: every bit pattern is a valid value.
trait Plain: candle_core::WithDType {}
impl Plain for f32 {}
impl Plain for f64 {}
impl Plain for half::f16 {}
impl Plain for half::bf16 {}
impl Plain for i64 {}
impl Plain for i32 {}
impl Plain for i16 {}
impl Plain for u8 {}
impl Plain for u32 {}

fn filled<T: Plain>(
    n: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<()>,
) -> Result<Tensor> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let spare = v.spare_capacity_mut();
    let bytes = std::mem::size_of_val(spare);
    // SAFETY: the spare capacity is `n` elements of `T` = `bytes` bytes of writable memory;
    // viewing it as `MaybeUninit<u8>` asks nothing of its contents.
    let dst = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), bytes) };
    fill(dst)?;
    // SAFETY: `fill` succeeded, so all `n * size_of::<T>()` bytes are written, and any bit
    // pattern is a valid `T` (plain numeric types only, see `Plain`).
    unsafe { v.set_len(n) };
    Tensor::from_vec(v, n, &Device::Cpu).ctx("loading tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_storage_holds_the_little_endian_values() {
        let want = [1.5f32, -2.0, 3.25];
        let raw: Vec<u8> = want.iter().flat_map(|x| x.to_le_bytes()).collect();
        let b = read_storage(Dtype::F32, raw.len(), |dst| {
            for (d, s) in dst.iter_mut().zip(&raw) {
                d.write(*s);
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(b.as_slice(), raw.as_slice());
        let Bytes::Deferred(d) = &b else {
            panic!("not a tensor")
        };
        let t = d.loaded_tensor().unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), want);
    }

    #[test]
    fn odd_lengths_and_raw_dtypes_fall_back() {
        let none = |d, len| {
            read_storage(d, len, |_| panic!("must not read"))
                .unwrap()
                .is_none()
        };
        assert!(none(Dtype::F32, 6));
        assert!(none(Dtype::Bool, 4));
        assert!(typed(enabled));
        assert!(!enabled());
    }

    #[test]
    fn a_failed_fill_is_reported() {
        let e = read_storage(Dtype::F64, 16, |_| {
            Err(crate::Error::invalid("fill", 0, "a test failure"))
        });
        assert_eq!(e.unwrap_err().code(), "K0003");
    }
}

#[cfg(test)]
mod files {
    use crate::io::{Bytes, LoadOptions, Value, load, load_state_dict_file};
    use candle_core::{DType, Device, Tensor};

    fn sample() -> crate::StateDict {
        let cpu = Device::Cpu;
        let mut sd = crate::StateDict::new();
        let w = Tensor::arange(0f32, 24.0, &cpu)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        sd.insert("w", w.clone());
        sd.insert("h", w.to_dtype(DType::BF16).unwrap());
        sd.insert("d", w.to_dtype(DType::F64).unwrap());
        sd.insert("n", Tensor::new(&[7i64, -3], &cpu).unwrap());
        sd.insert("b", Tensor::new(&[1u8, 0, 1], &cpu).unwrap());
        sd
    }

    fn same(a: &crate::StateDict, b: &crate::StateDict) {
        // (safetensors keeps its own key order.)
        let keys = |s: &crate::StateDict| {
            let mut k: Vec<String> = s.keys().map(str::to_string).collect();
            k.sort();
            k
        };
        assert_eq!(keys(a), keys(b));
        for k in keys(a) {
            let (x, y) = (a.get(&k).unwrap(), b.get(&k).unwrap());
            assert_eq!((x.dtype(), x.dims()), (y.dtype(), y.dims()), "{k}");
            let f = |t: &Tensor| {
                t.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            };
            assert_eq!(f(x), f(y), "{k}");
        }
    }

    #[test]
    fn pt_and_safetensors_load_into_typed_tensors_with_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let sd = sample();
        let pt = dir.path().join("sd.pt");
        let st = dir.path().join("sd.safetensors");
        crate::io::save_state_dict(&sd, &pt).unwrap();
        crate::io::save_state_dict(&sd, &st).unwrap();
        for p in [&pt, &st] {
            // Inside `typed` the readers keep candle tensors as the storages' data …
            let v = super::typed(|| load(p, &LoadOptions::new())).unwrap();
            let mut loaded = 0;
            v.visit_tensors(&mut |_, t| {
                if let Bytes::Deferred(d) = &t.storage.data {
                    loaded += usize::from(d.loaded_tensor().is_some());
                }
            });
            assert_eq!(loaded, 5, "{}", p.display());
            // … whose bytes are still the file's, for anything that reads them.
            let plain = load(p, &LoadOptions::new()).unwrap();
            let bytes = |v: &Value| {
                let mut out = Vec::new();
                v.visit_tensors(&mut |_, t| out.push(t.storage.data.as_slice().to_vec()));
                out
            };
            assert_eq!(bytes(&v), bytes(&plain));
            same(&load_state_dict_file(p, &LoadOptions::new()).unwrap(), &sd);
        }
    }

    #[test]
    fn a_cast_and_a_corrupt_record_still_behave() {
        let dir = tempfile::tempdir().unwrap();
        let pt = dir.path().join("sd.pt");
        crate::io::save_state_dict(&sample(), &pt).unwrap();
        let opts = LoadOptions::new().dtype(crate::io::Dtype::F16);
        let h = load_state_dict_file(&pt, &opts).unwrap();
        assert_eq!(h.get("w").unwrap().dtype(), DType::F16);
        // Flip one byte of the first tensor's data: the typed read checks the CRC too.
        let mut raw = std::fs::read(&pt).unwrap();
        let needle = 5f32.to_le_bytes();
        let at = raw.windows(4).position(|w| w == needle).unwrap();
        raw[at] ^= 1;
        std::fs::write(&pt, &raw).unwrap();
        let e = load_state_dict_file(&pt, &LoadOptions::new()).unwrap_err();
        assert_eq!(e.code(), "K0502", "{e}");
    }
}
