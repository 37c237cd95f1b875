//! `scaled_dot_product_attention`: PyTorch's `F.scaled_dot_product_attention`, and the
//! softmax variants attention needs.
//!
//! `softmax(q kᵀ · scale + bias) v`, where `bias` comes from `attn_mask` (a boolean mask keeps
//! the positions where it is true, a float mask is added) and from `is_causal` (position `i`
//! attends to `j ≤ i`). Like PyTorch's kernels, a row whose every position is masked gives
//! zeros (and zero gradients) instead of NaN; `MultiheadAttention` with `need_weights=true`
//! uses the plain softmax instead, which gives NaN there, as PyTorch does.

use crate::error::{Context, Error, Result, shape_str};
use crate::nn::Module;
use crate::nn::layers::Dropout;
use candle_core::{D, DType, Device, Tensor};

const OP: &str = "scaled_dot_product_attention";

/// `F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)`.
///
/// Shapes: `query [..., L, E]`, `key [..., S, E]`, `value [..., S, Ev]` → `[..., L, Ev]`; the
/// leading dimensions broadcast. `attn_mask` broadcasts to `[..., L, S]`: an integer tensor
/// (kiln's stand-in for a `bool` tensor: `u8`, `u32` or `i64`) keeps the positions where it is
/// non-zero (PyTorch: `True` = take part in attention); a float tensor is added to the scores
/// (`-inf` masks). `scale` defaults to `1/√E`. `dropout_p > 0` drops attention weights with
/// kiln's seeded generator (always, as PyTorch does: pass `0.0` for evaluation).
///
/// A fully masked row gives zeros, as PyTorch's CPU and CUDA kernels do.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use kiln::nn::functional::scaled_dot_product_attention;
/// let q = Tensor::ones((2, 3, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let y = scaled_dot_product_attention(&q, &q, &q, None, 0.0, true, None)?;
/// assert_eq!(y.dims(), &[2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// `K0220` for shapes that do not fit together (naming them); `K0003` for `is_causal`
/// together with `attn_mask` (PyTorch: "Explicit attn_mask should not be set when
/// is_causal=True"), a `dropout_p` outside `[0, 1]` or a non-positive `scale`; `K0302` for
/// inputs of different dtypes.
pub fn scaled_dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    attn_mask: Option<&Tensor>,
    dropout_p: f64,
    is_causal: bool,
    scale: Option<f64>,
) -> Result<Tensor> {
    check_qkv(query, key, value)?;
    if is_causal && attn_mask.is_some() {
        return Err(Error::invalid(
            "scaled_dot_product_attention is_causal",
            "true with an attn_mask",
            "Explicit attn_mask should not be set when is_causal=True: pass one or the other",
        ));
    }
    if !(0.0..=1.0).contains(&dropout_p) {
        return Err(Error::invalid(
            "scaled_dot_product_attention dropout_p",
            dropout_p,
            "a probability between 0 and 1",
        ));
    }
    let e = query.dim(D::Minus1).ctx(OP)?;
    let scale = scale.unwrap_or(1.0 / (e.max(1) as f64).sqrt());
    if scale.is_nan() || scale <= 0.0 {
        return Err(Error::invalid(
            "scaled_dot_product_attention scale",
            scale,
            "a positive number (default 1/sqrt(E))",
        ));
    }
    let (l, s) = (query.dim(D::Minus2).ctx(OP)?, key.dim(D::Minus2).ctx(OP)?);
    let bias = match attn_mask {
        Some(m) => Some(additive_mask(OP, m, query.dtype(), true)?),
        None if is_causal => Some(causal_bias(l, s, query.dtype(), query.device())?),
        None => None,
    };
    if let Some(b) = &bias {
        check_broadcast(b, &query.dims()[..query.rank() - 2], l, s)?;
    }
    // PyTorch's math kernel splits the scale between q and k for stability.
    let root = scale.sqrt();
    let qs = (query * root).ctx(OP)?;
    let ks = (key * root).ctx(OP)?;
    let kt = ks.transpose(D::Minus2, D::Minus1).ctx(OP)?;
    let mut scores = qs.broadcast_matmul(&kt).ctx(OP)?;
    if let Some(b) = &bias {
        scores = scores.broadcast_add(b).ctx(OP)?;
    }
    let mut w = safe_softmax_last(&scores)?;
    if dropout_p > 0.0 {
        w = Dropout::new(dropout_p)?.forward(&w)?;
    }
    w.broadcast_matmul(value).ctx(OP)
}

fn check_qkv(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
    let bad = |what: &str, got: &Tensor, expected: String| Error::SequenceShape {
        module: OP.to_string(),
        what: what.to_string(),
        got: shape_str(got.dims()),
        expected,
    };
    if q.rank() < 2 {
        return Err(bad("query", q, "[..., L, E]".into()));
    }
    let e = q.dims()[q.rank() - 1];
    if k.rank() < 2 || k.dims()[k.rank() - 1] != e {
        return Err(bad("key", k, format!("[..., S, {e}] (E of the query)")));
    }
    let s = k.dims()[k.rank() - 2];
    if v.rank() < 2 || v.dims()[v.rank() - 2] != s {
        return Err(bad("value", v, format!("[..., {s}, Ev] (S of the key)")));
    }
    for t in [k, v] {
        if t.dtype() != q.dtype() || !q.dtype().is_float() {
            return Err(Error::DtypeMismatch {
                module: OP.to_string(),
                weights: format!("{:?} (the query's dtype, a float)", q.dtype()),
                input: format!("{:?}", t.dtype()),
            });
        }
    }
    Ok(())
}

/// The mask must broadcast to `[batch..., L, S]`.
fn check_broadcast(mask: &Tensor, batch: &[usize], l: usize, s: usize) -> Result<()> {
    let mut target = batch.to_vec();
    target.extend([l, s]);
    let m = mask.dims();
    let fits = m.len() <= target.len()
        && m.iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(a, b)| a == b || *a == 1);
    if fits {
        return Ok(());
    }
    Err(Error::SequenceShape {
        module: OP.to_string(),
        what: "attn_mask".into(),
        got: shape_str(m),
        expected: format!("a shape that broadcasts to {}", shape_str(&target)),
    })
}

/// An `(L, S)` bias that is 0 where `j ≤ i` and `-inf` above the diagonal (PyTorch's
/// `ones(L, S).tril()` causal mask, also for `L ≠ S`).
pub(crate) fn causal_bias(l: usize, s: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let n = crate::error::alloc::numel(&[l, s], 4)?;
    let mut v = crate::error::alloc::try_vec::<f32>(n)?;
    for i in 0..l {
        v.extend((0..s).map(|j| if j <= i { 0.0 } else { f32::NEG_INFINITY }));
    }
    Tensor::from_vec(v, (l, s), &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_device(dev))
        .ctx("causal mask")
}

/// A mask as an additive float bias of `dtype`: integer ("bool") masks become `0` / `-inf`
/// (`keep_true`: non-zero keeps the position, SDPA's convention; otherwise non-zero masks it,
/// `MultiheadAttention`'s), float masks are cast.
pub(crate) fn additive_mask(
    owner: &str,
    mask: &Tensor,
    dtype: DType,
    keep_true: bool,
) -> Result<Tensor> {
    if mask.dtype().is_float() {
        return mask.to_dtype(dtype).ctx(owner);
    }
    let nonzero = mask.ne(0f64).ctx(owner)?;
    let zeros = Tensor::zeros(mask.dims(), dtype, mask.device()).ctx(owner)?;
    let ninf = Tensor::full(f32::NEG_INFINITY, mask.dims(), mask.device())
        .and_then(|t| t.to_dtype(dtype))
        .ctx(owner)?;
    if keep_true {
        nonzero.where_cond(&zeros, &ninf).ctx(owner)
    } else {
        nonzero.where_cond(&ninf, &zeros).ctx(owner)
    }
}

/// Softmax over the last dimension that returns 0 (not NaN) for rows that are all `-inf`
/// (PyTorch's `_safe_softmax`, used by its attention kernels).
pub(crate) fn safe_softmax_last(x: &Tensor) -> Result<Tensor> {
    let op = "attention softmax";
    let max = x.max_keepdim(D::Minus1).ctx(op)?.detach();
    let all_masked = max.eq(f64::NEG_INFINITY).ctx(op)?;
    let max = all_masked
        .where_cond(&max.zeros_like().ctx(op)?, &max)
        .ctx(op)?;
    let e = x.broadcast_sub(&max).and_then(|t| t.exp()).ctx(op)?;
    let sum = e.sum_keepdim(D::Minus1).ctx(op)?;
    // Only an all-masked row sums to 0 (otherwise its maximum contributes e^0 = 1).
    let empty = sum.eq(0f64).and_then(|m| m.to_dtype(sum.dtype())).ctx(op)?;
    let sum = (sum + empty).ctx(op)?;
    e.broadcast_div(&sum).ctx(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_slice(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn fully_masked_rows_are_zero_not_nan() {
        let q = t(&[1., 0., 0., 1.], &[2, 2]);
        let mask = Tensor::from_slice(&[1u8, 1, 0, 0], (2, 2), &Device::Cpu).unwrap();
        let y = scaled_dot_product_attention(&q, &q, &q, Some(&mask), 0.0, false, None).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v[2] == 0.0 && v[3] == 0.0, "{v:?}");
        assert!(v[0].is_finite() && v[1].is_finite());
    }

    #[test]
    fn causal_first_row_attends_only_to_itself() {
        let q = t(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
        let y = scaled_dot_product_attention(&q, &q, &q, None, 0.0, true, None).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&v[..2], &[1., 2.]);
    }

    #[test]
    fn shape_errors_are_coded() {
        let q = t(&[0.; 6], &[3, 2]);
        let k = t(&[0.; 9], &[3, 3]);
        let e = scaled_dot_product_attention(&q, &k, &k, None, 0.0, false, None).unwrap_err();
        assert_eq!(e.code(), "K0220");
        let m = t(&[0.; 4], &[2, 2]);
        let e = scaled_dot_product_attention(&q, &q, &q, Some(&m), 0.0, false, None).unwrap_err();
        assert_eq!(e.code(), "K0220", "{e}");
        let e = scaled_dot_product_attention(&q, &q, &q, Some(&m), 0.0, true, None).unwrap_err();
        assert_eq!(e.code(), "K0003");
    }
}
