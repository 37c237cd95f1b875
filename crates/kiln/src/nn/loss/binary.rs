//! Binary cross-entropy, on probabilities and on logits (`weight`, `pos_weight`).

use super::*;

/// `F.binary_cross_entropy(input, target, weight, reduction)` on probabilities `input` in
/// `[0, 1]`: `−w · (t·log x + (1 − t)·log(1 − x))`, each log clamped at −100 as in PyTorch.
///
/// # Errors
/// `K0206` when input, target (and weight) shapes differ; `K0003` for `BatchMean`.
pub fn binary_cross_entropy(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    let loss = "binary_cross_entropy";
    let t = same_shape(loss, input, target)?;
    let logx = input.log().and_then(|l| l.maximum(-100.0)).ctx(loss)?;
    let log1mx = input
        .affine(-1.0, 1.0)
        .and_then(|v| v.log())
        .and_then(|l| l.maximum(-100.0))
        .ctx(loss)?;
    let one_minus_t = t.affine(-1.0, 1.0).ctx(loss)?;
    let mut v = ((&t * logx).ctx(loss)? + (one_minus_t * log1mx).ctx(loss)?)
        .and_then(|v| v.neg())
        .ctx(loss)?;
    if let Some(w) = weight {
        v = (v * weight_like(loss, w, input)?).ctx(loss)?;
    }
    reduction.apply(loss, v)
}

/// A weight broadcast to `input`'s shape and dtype.
fn weight_like(loss: &str, w: &Tensor, input: &Tensor) -> Result<Tensor> {
    w.to_dtype(input.dtype())
        .and_then(|w| w.broadcast_as(input.shape()))
        .map_err(|_| Error::TargetShape {
            loss: loss.into(),
            detail: format!(
                "weight of shape {} does not broadcast to the input",
                shape_str(w.dims())
            ),
            input: shape_str(input.dims()),
            target: shape_str(w.dims()),
        })
}

/// `F.binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction)`:
/// `w · ((1 − t)·x + (1 + (pw − 1)·t) · softplus(−x))`, stable for large `|x|`. `pos_weight`
/// broadcasts over the last dimension (one weight per class).
///
/// # Errors
/// As [`binary_cross_entropy`].
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    let loss = "binary_cross_entropy_with_logits";
    let t = same_shape(loss, input, target)?;
    let sp = crate::nn::functional::softplus(&input.neg().ctx(loss)?, 1.0, 20.0)?;
    let log_weight = match pos_weight {
        None => None,
        Some(pw) => {
            let pw = weight_like(loss, pw, input)?;
            Some(
                ((pw - 1.0).ctx(loss)? * &t)
                    .and_then(|v| v + 1.0)
                    .ctx(loss)?,
            )
        }
    };
    let sp = match log_weight {
        Some(lw) => (lw * sp).ctx(loss)?,
        None => sp,
    };
    let mut v = (t.affine(-1.0, 1.0).ctx(loss)? * input)
        .and_then(|a| a + sp)
        .ctx(loss)?;
    if let Some(w) = weight {
        v = (v * weight_like(loss, w, input)?).ctx(loss)?;
    }
    reduction.apply(loss, v)
}
