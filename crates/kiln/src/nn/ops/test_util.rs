//! Helpers of the kernels' unit tests: seeded random tensors, closeness, gradients.

use candle_core::{DType, Device, Tensor};

/// A seeded tensor of values in about `[-1, 1)`.
pub(crate) fn rand_tensor(seed: u64, dims: &[usize], dtype: DType) -> Tensor {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Asserts `|a - b| <= tol * max(1, max|b|)` elementwise (same shape).
pub(crate) fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a: Vec<f64> = a
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f64> = b
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale || (x.is_nan() && y.is_nan()),
            "{what}: element {i}: {x} vs {y} (scale {scale})"
        );
    }
}

/// Gradients of `sum(y * probe)` with respect to `vars` (`None` where there is none).
pub(crate) fn grads_of(y: &Tensor, probe: &Tensor, vars: &[&Tensor]) -> Vec<Option<Tensor>> {
    let store = y.mul(probe).unwrap().sum_all().unwrap().backward().unwrap();
    vars.iter().map(|v| store.get(v).cloned()).collect()
}
