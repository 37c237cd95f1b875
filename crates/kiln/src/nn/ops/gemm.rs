//! A bounds-checked, strided wrapper around the `gemm` crate (the GEMM candle itself uses).

use super::cpu::Float;
use super::threads::gemm_parallelism;

/// A read-only strided matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` view.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// The largest offset a strided `rows × cols` view touches, if it fits in `len` elements.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)));
    last.is_some_and(|l| l < len) && rs <= isize::MAX as usize && cs <= isize::MAX as usize
}

/// `dst = a × b` (or `dst += a × b` with `accumulate`), `dst` row-major `m × n` with row
/// stride `dst_rs`.
///
/// # Errors
/// When the shapes disagree or a view reaches outside its slice.
pub(crate) fn gemm<T: Float>(
    dst: &mut [T],
    dst_rs: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    accumulate: bool,
) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k
        || !fits(dst.len(), m, n, dst_rs, 1)
        || !fits(a.data.len(), m, k, a.rs, a.cs)
        || !fits(b.data.len(), k, n, b.rs, b.cs)
    {
        candle_core::bail!(
            "kiln gemm: bad operands ({m}x{k} by {}x{n} into {} elements)",
            b.rows,
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::zero());
            }
        }
        return Ok(());
    }
    // SAFETY: `fits` checked above that every element the three strided views address lies
    // inside its slice (and that strides fit in `isize`); `dst` is a unique borrow, so it
    // aliases neither input. `T` is `f32` or `f64` (the only `Float` types), which the gemm
    // crate supports; it writes only `dst`'s `m × n` elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            gemm_parallelism(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_plain_transposed_and_accumulating() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|v| (v as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|v| (v as f64 * 0.91).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        gemm(&mut c, n, Mat::rows(&a, m, k), Mat::rows(&b, k, n), false).unwrap();
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
        // bᵀ stored row-major, viewed transposed
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1.0; m * n];
        gemm(
            &mut c2,
            n,
            Mat::rows(&a, m, k),
            Mat::rows(&bt, n, k).t(),
            true,
        )
        .unwrap();
        for (x, y) in c2.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn out_of_bounds_views_are_errors() {
        let a = vec![0f32; 6];
        let mut c = vec![0f32; 4];
        assert!(gemm(&mut c, 2, Mat::rows(&a, 2, 4), Mat::rows(&a, 4, 2), false).is_err());
        assert!(gemm(&mut c, 2, Mat::rows(&a, 2, 3), Mat::rows(&a, 2, 2), false).is_err());
    }
}
