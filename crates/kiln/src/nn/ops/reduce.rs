//! Bias-gradient sums over contiguous axes, accumulated in `f64` (more accurate than
//! PyTorch's cascade sums, and in a fixed order).

use super::cpu::Float;

/// The sum of `data` in `f64`, in eight interleaved lanes (vectorizable, fixed order).
pub(crate) fn sum_f64<T: Float>(data: &[T]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = data.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v.to_f64();
        }
    }
    let mut s = lanes.iter().sum::<f64>();
    for &v in tail {
        s += v.to_f64();
    }
    s
}

/// Column sums of a row-major `rows × cols` matrix (`Linear`'s bias gradient: `gy.sum(0)`).
pub(crate) fn sum_over_rows<T: Float>(data: &[T], cols: usize) -> Vec<T> {
    let mut acc = vec![0f64; cols];
    if cols > 0 {
        for row in data.chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v.to_f64();
            }
        }
    }
    acc.into_iter().map(T::from_f64).collect()
}

/// Per-channel sums of an `[N, C, P]` array over `N` and `P` (a convolution's bias gradient:
/// `gy.sum((0, 2, 3))`).
pub(crate) fn sum_per_channel<T: Float>(data: &[T], c: usize, p: usize) -> Vec<T> {
    let mut acc = vec![0f64; c];
    if c > 0 && p > 0 {
        for image in data.chunks_exact(c * p) {
            for (a, plane) in acc.iter_mut().zip(image.chunks_exact(p)) {
                *a += sum_f64(plane);
            }
        }
    }
    acc.into_iter().map(T::from_f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_the_right_axes() {
        let d: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(sum_over_rows(&d, 3), vec![18., 22., 26.]);
        // [N=2, C=3, P=2]: channel 0 = 0+1+6+7
        assert_eq!(sum_per_channel(&d, 3, 2), vec![14., 22., 30.]);
        assert!(sum_over_rows::<f32>(&[], 0).is_empty());
    }
}
