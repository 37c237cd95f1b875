//! Convolution geometry, im2col (unfold the whole batch into one matrix) and col2im (fold
//! the gradient back).
//!
//! The column matrix is `[C·kh·kw, N·OH·OW]` row-major: row `(c, i, j)`, column
//! `(n, oy, ox)`, holding `x[n, c, oy·s + i·d − p, ox·s + j·d − p]` (0 in the padding). One
//! GEMM per group then convolves the whole batch, and the rows of a group are contiguous.

use super::cpu::Float;
use super::threads::parallel_for;
use rayon::prelude::*;

/// Shapes and hyper-parameters of one 2-D convolution (square stride/padding/dilation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Groups.
    pub groups: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Dilation.
    pub dil: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Geom {
    /// Output pixels per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Columns of the column matrix (`N·OH·OW`).
    pub fn np(&self) -> usize {
        self.n * self.p()
    }

    /// Rows of the column matrix per group (`C/groups·kh·kw`).
    pub fn kg(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }

    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.o / self.groups
    }

    /// The outputs `lo..hi` along one axis whose input `out·s + off − p` is inside `0..size`.
    fn valid(&self, outs: usize, size: usize, off: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = if self.pad > off {
            (self.pad - off).div_ceil(s)
        } else {
            0
        };
        let hi = if size + self.pad > off {
            (size + self.pad - off).div_ceil(s).min(outs)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// `(channel, i, j)` of column-matrix row `r`.
    fn row(&self, r: usize) -> (usize, usize, usize) {
        (
            r / (self.kh * self.kw),
            (r / self.kw) % self.kh,
            r % self.kw,
        )
    }
}

/// Unfolds `x` (`[N, C, H, W]`) into `col` (`[C·kh·kw, N·OH·OW]`).
pub(crate) fn im2col<T: Float>(g: &Geom, x: &[T], col: &mut [T]) {
    let np = g.np();
    if np == 0 {
        return;
    }
    let fill_row = |r: usize, row: &mut [T]| {
        let (ci, i, j) = g.row(r);
        let (ylo, yhi) = g.valid(g.oh, g.h, i * g.dil);
        let (xlo, xhi) = g.valid(g.ow, g.w, j * g.dil);
        let hw = g.h * g.w;
        for (n, dst) in row.chunks_exact_mut(g.p()).enumerate() {
            let plane = &x[(n * g.c + ci) * hw..][..hw];
            dst[..ylo * g.ow].fill(T::zero());
            dst[yhi * g.ow..].fill(T::zero());
            for oy in ylo..yhi {
                let iy = oy * g.stride + i * g.dil - g.pad;
                let drow = &mut dst[oy * g.ow..][..g.ow];
                drow[..xlo].fill(T::zero());
                drow[xhi..].fill(T::zero());
                if xlo == xhi {
                    continue;
                }
                let ix0 = xlo * g.stride + j * g.dil - g.pad;
                let src = &plane[iy * g.w..][..g.w];
                if g.stride == 1 {
                    drow[xlo..xhi].copy_from_slice(&src[ix0..ix0 + (xhi - xlo)]);
                } else {
                    for (d, s) in drow[xlo..xhi]
                        .iter_mut()
                        .zip(src[ix0..].iter().step_by(g.stride))
                    {
                        *d = *s;
                    }
                }
            }
        }
    };
    if parallel_for(col.len()) {
        col.par_chunks_exact_mut(np)
            .enumerate()
            .for_each(|(r, row)| fill_row(r, row));
    } else {
        for (r, row) in col.chunks_exact_mut(np).enumerate() {
            fill_row(r, row);
        }
    }
}

/// Folds `col` (`[C·kh·kw, N·OH·OW]`) back into `gx` (`[N, C, H, W]`, overwritten): each
/// input element receives the sum of the column entries that read it, in row order.
pub(crate) fn col2im<T: Float>(g: &Geom, col: &[T], gx: &mut [T]) {
    let (chw, hw, np, p) = (g.c * g.h * g.w, g.h * g.w, g.np(), g.p());
    if chw == 0 {
        return;
    }
    let image = |n: usize, gimg: &mut [T]| {
        gimg.fill(T::zero());
        for r in 0..g.c * g.kh * g.kw {
            let (ci, i, j) = g.row(r);
            let (ylo, yhi) = g.valid(g.oh, g.h, i * g.dil);
            let (xlo, xhi) = g.valid(g.ow, g.w, j * g.dil);
            if xlo == xhi {
                continue;
            }
            let src = &col[r * np + n * p..][..p];
            let plane = &mut gimg[ci * hw..][..hw];
            for oy in ylo..yhi {
                let iy = oy * g.stride + i * g.dil - g.pad;
                let ix0 = xlo * g.stride + j * g.dil - g.pad;
                let srow = &src[oy * g.ow + xlo..oy * g.ow + xhi];
                let drow = &mut plane[iy * g.w..][..g.w];
                if g.stride == 1 {
                    for (d, &s) in drow[ix0..ix0 + srow.len()].iter_mut().zip(srow) {
                        *d += s;
                    }
                } else {
                    for (d, &s) in drow[ix0..].iter_mut().step_by(g.stride).zip(srow) {
                        *d += s;
                    }
                }
            }
        }
    };
    if parallel_for(gx.len() * g.kh * g.kw) {
        gx.par_chunks_exact_mut(chw)
            .enumerate()
            .for_each(|(n, gimg)| image(n, gimg));
    } else {
        for (n, gimg) in gx.chunks_exact_mut(chw).enumerate() {
            image(n, gimg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(h: usize, w: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Geom {
        let span = dil * (k - 1) + 1;
        Geom {
            n: 2,
            c: 3,
            h,
            w,
            o: 4,
            groups: 1,
            kh: k,
            kw: k,
            stride,
            pad,
            dil,
            oh: (h + 2 * pad - span) / stride + 1,
            ow: (w + 2 * pad - span) / stride + 1,
        }
    }

    /// The definition, element by element.
    fn naive(g: &Geom, x: &[f64]) -> Vec<f64> {
        let mut col = vec![0.0; g.c * g.kh * g.kw * g.np()];
        for r in 0..g.c * g.kh * g.kw {
            let (ci, i, j) = g.row(r);
            for n in 0..g.n {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let iy = (oy * g.stride + i * g.dil) as isize - g.pad as isize;
                        let ix = (ox * g.stride + j * g.dil) as isize - g.pad as isize;
                        let inside =
                            iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w;
                        col[r * g.np() + n * g.p() + oy * g.ow + ox] = if inside {
                            x[((n * g.c + ci) * g.h + iy as usize) * g.w + ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
        for (h, w, k, s, p, d) in [
            (5, 5, 3, 1, 1, 1),
            (6, 7, 3, 2, 1, 1),
            (8, 8, 3, 1, 2, 2),
            (7, 6, 1, 2, 0, 1),
            (4, 4, 5, 3, 2, 1),
            (9, 5, 2, 3, 0, 2),
        ] {
            let g = geom(h, w, k, s, p, d);
            let x: Vec<f64> = (0..g.n * g.c * h * w).map(|v| v as f64 + 1.0).collect();
            let mut col = vec![f64::NAN; g.c * k * k * g.np()];
            im2col(&g, &x, &mut col);
            assert_eq!(col, naive(&g, &x), "{g:?}");
            // <im2col(x), y> == <x, col2im(y)> for every x, y (col2im is the transpose)
            let y: Vec<f64> = (0..col.len()).map(|v| (v % 7) as f64 - 3.0).collect();
            let mut gx = vec![f64::NAN; x.len()];
            col2im(&g, &y, &mut gx);
            let lhs: f64 = col.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&gx).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }
}
