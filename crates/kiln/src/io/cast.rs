//! The dtype cast applied at load: floating-point storages (or all, on request) are
//! converted element by element, with PyTorch's rounding (float64 → float16/bfloat16 goes
//! through float32, as `c10::Half(double)` does; float → int truncates toward zero).
//! Storages shared by several tensors are converted once and stay shared.

use super::value::{Bytes, Dtype, Storage, Value};
use crate::error::Result;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Copy, Clone)]
enum Elem {
    F(f64),
    I(i128),
}

fn get(d: Dtype, c: &[u8]) -> Elem {
    let mut a = [0u8; 8];
    if let Some(dst) = a.get_mut(..c.len()) {
        dst.copy_from_slice(c);
    }
    let b2 = [a[0], a[1]];
    let b4 = [a[0], a[1], a[2], a[3]];
    match d {
        Dtype::F64 => Elem::F(f64::from_le_bytes(a)),
        Dtype::F32 => Elem::F(f32::from_le_bytes(b4).into()),
        Dtype::F16 => Elem::F(half::f16::from_le_bytes(b2).to_f64()),
        Dtype::BF16 => Elem::F(half::bf16::from_le_bytes(b2).to_f64()),
        Dtype::I64 => Elem::I(i64::from_le_bytes(a).into()),
        Dtype::I32 => Elem::I(i32::from_le_bytes(b4).into()),
        Dtype::I16 => Elem::I(i16::from_le_bytes(b2).into()),
        Dtype::I8 => Elem::I((a[0] as i8).into()),
        Dtype::U8 => Elem::I(a[0].into()),
        Dtype::Bool => Elem::I(i128::from(a[0] != 0)),
        Dtype::U16 => Elem::I(u16::from_le_bytes(b2).into()),
        Dtype::U32 => Elem::I(u32::from_le_bytes(b4).into()),
        Dtype::U64 => Elem::I(u64::from_le_bytes(a).into()),
        // Never reached: raw dtypes are not cast (see `cast_value`).
        Dtype::F8E4M3FN
        | Dtype::F8E5M2
        | Dtype::F8E4M3FNUZ
        | Dtype::F8E5M2FNUZ
        | Dtype::C64
        | Dtype::C128 => Elem::I(0),
    }
}

fn as_f32(e: Elem) -> f32 {
    match e {
        Elem::F(f) => f as f32,
        Elem::I(i) => i as f32,
    }
}

fn as_int(e: Elem) -> i128 {
    match e {
        Elem::F(f) => f as i128,
        Elem::I(i) => i,
    }
}

fn put(d: Dtype, e: Elem, out: &mut Vec<u8>) {
    match d {
        Dtype::F64 => out.extend_from_slice(
            &match e {
                Elem::F(f) => f,
                Elem::I(i) => i as f64,
            }
            .to_le_bytes(),
        ),
        Dtype::F32 => out.extend_from_slice(&as_f32(e).to_le_bytes()),
        Dtype::F16 => out.extend_from_slice(&half::f16::from_f32(as_f32(e)).to_le_bytes()),
        Dtype::BF16 => out.extend_from_slice(&half::bf16::from_f32(as_f32(e)).to_le_bytes()),
        Dtype::I64 => out.extend_from_slice(&(as_int(e) as i64).to_le_bytes()),
        Dtype::I32 => out.extend_from_slice(&(as_int(e) as i32).to_le_bytes()),
        Dtype::I16 => out.extend_from_slice(&(as_int(e) as i16).to_le_bytes()),
        Dtype::I8 => out.push(as_int(e) as i8 as u8),
        Dtype::U8 => out.push(as_int(e) as u8),
        Dtype::Bool => out.push(u8::from(match e {
            Elem::F(f) => f != 0.0,
            Elem::I(i) => i != 0,
        })),
        Dtype::U16 => out.extend_from_slice(&(as_int(e) as u16).to_le_bytes()),
        Dtype::U32 => out.extend_from_slice(&(as_int(e) as u32).to_le_bytes()),
        Dtype::U64 => out.extend_from_slice(&(as_int(e) as u64).to_le_bytes()),
        // Never reached: nothing is cast to a raw dtype (see `cast_value`).
        raw => out.extend(std::iter::repeat_n(0u8, raw.size())),
    }
}

/// A copy of `s` converted to `to`.
pub fn cast_storage(s: &Storage, to: Dtype) -> Storage {
    let from = s.dtype;
    let src = s.data.as_slice();
    let mut out = Vec::with_capacity(s.numel() * to.size());
    for c in src.chunks_exact(from.size()) {
        put(to, get(from, c), &mut out);
    }
    Storage {
        dtype: to,
        location: s.location.clone(),
        data: Bytes::Owned(Arc::new(out)),
    }
}

/// Casts the tensors of `v` in place: floating-point ones, or all with `all`.
pub fn cast_value(v: &mut Value, to: Dtype, all: bool) -> Result<()> {
    if to.is_raw() {
        return Err(crate::error::Error::Unsupported {
            what: format!(
                "casting tensors to {} (kiln keeps float8/complex bytes but does not convert to them)",
                to.torch_name()
            ),
        });
    }
    let mut done: HashMap<usize, Arc<Storage>> = HashMap::new();
    walk(v, to, all, &mut done);
    Ok(())
}

fn walk(v: &mut Value, to: Dtype, all: bool, done: &mut HashMap<usize, Arc<Storage>>) {
    match v {
        Value::Tensor(t) => {
            let d = t.storage.dtype;
            if d != to && !d.is_raw() && (all || d.is_float()) {
                let key = Arc::as_ptr(&t.storage) as usize;
                let s = done
                    .entry(key)
                    .or_insert_with(|| Arc::new(cast_storage(&t.storage, to)))
                    .clone();
                t.storage = s;
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            for x in items {
                walk(x, to, all, done);
            }
        }
        Value::Dict(d) => {
            for (_, x) in &mut d.entries {
                walk(x, to, all, done);
            }
        }
        _ => {}
    }
}

/// The view's elements as `f64` (exact for every dtype but 64-bit integers beyond 2^53).
///
/// # Errors
/// `K0507` for a view outside its storage.
pub fn to_f64_vec(t: &super::value::TensorValue) -> Result<Vec<f64>> {
    let b = t.contiguous_bytes()?;
    let d = t.dtype();
    Ok(b.chunks_exact(d.size())
        .map(|c| match get(d, c) {
            Elem::F(f) => f,
            Elem::I(i) => i as f64,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::TensorValue;

    #[test]
    fn float_cast_keeps_ints_and_sharing() {
        let f: Vec<u8> = [1.5f64, -2.25, 1e300]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t = TensorValue::from_bytes(Dtype::F64, vec![3], f, "cpu").unwrap();
        let view = TensorValue {
            offset: 1,
            shape: vec![1],
            stride: vec![1],
            ..t.clone()
        };
        let i = TensorValue::from_bytes(Dtype::I64, vec![1], 7i64.to_le_bytes().to_vec(), "cpu")
            .unwrap();
        let mut v = Value::dict([
            ("t", Value::Tensor(t)),
            ("v", Value::Tensor(view)),
            ("i", Value::Tensor(i)),
        ]);
        cast_value(&mut v, Dtype::F16, false).unwrap();
        let t = v.get("t").and_then(Value::as_tensor).unwrap();
        let w = v.get("v").and_then(Value::as_tensor).unwrap();
        assert_eq!(t.dtype(), Dtype::F16);
        assert!(Arc::ptr_eq(&t.storage, &w.storage));
        let b = t.contiguous_bytes().unwrap();
        assert_eq!(half::f16::from_le_bytes([b[0], b[1]]).to_f32(), 1.5);
        assert!(
            half::f16::from_le_bytes([b[4], b[5]])
                .to_f32()
                .is_infinite()
        );
        assert_eq!(
            v.get("i").and_then(Value::as_tensor).unwrap().dtype(),
            Dtype::I64
        );
        cast_value(&mut v, Dtype::F32, true).unwrap();
        assert_eq!(
            v.get("i").and_then(Value::as_tensor).unwrap().dtype(),
            Dtype::F32
        );
    }
}
