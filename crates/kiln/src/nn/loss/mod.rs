//! Losses with PyTorch's semantics and `reduction` (none / mean / sum): cross-entropy
//! ([`cross_entropy`], and [`CrossEntropyLoss`] with weight, ignore_index, label smoothing and
//! probability targets), NLL, binary cross-entropy (on probabilities and on logits), MSE, L1,
//! smooth L1, Huber, KL divergence and the embedding/ranking losses (cosine embedding,
//! margin ranking, triplet margin); the classic target mistakes (labels out of range,
//! one-hot or `[N, 1]` targets) are reported clearly.
//!
//! One file per family: `cross_entropy.rs` (cross-entropy and NLL with their options),
//! `binary.rs` (binary cross-entropy), `regression.rs` (MSE, L1, smooth L1, Huber, KL) and
//! `ranking.rs` (cosine embedding, margin ranking, triplet margin).

mod binary;
mod cross_entropy;
mod ranking;
mod regression;

pub use binary::{binary_cross_entropy, binary_cross_entropy_with_logits};
pub use cross_entropy::{CrossEntropyLoss, NllLoss, nll_loss};
pub use ranking::{
    CosineEmbeddingLoss, MarginRankingLoss, TripletMarginLoss, cosine_embedding_loss,
    margin_ranking_loss, triplet_margin_loss,
};
pub use regression::{huber_loss, kl_div, l1_loss, mse_loss_with, smooth_l1_loss};

use crate::error::{Context, Error, Result, shape_str};
use crate::nn::layers::pointwise::{Pointwise, apply};
use candle_core::{D, DType, Tensor};

/// Mean cross-entropy of `logits [N, C]` against class indices `targets [N]`
/// (PyTorch's `F.cross_entropy` with `reduction="mean"`).
///
/// # Errors
/// `K0206` for targets that are not 1-D `[N]` (one-hot, `[N, 1]`) or whose length differs;
/// `K0205` for a label outside `[0, C)`, with a diagnosis (labels starting at 1,
/// non-contiguous label sets).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (_, labels) = checked_labels(logits, targets)?;
    if crate::nn::ops::supported(&[logits]) {
        // Labels are in 0..C (checked), so they fit in u32 whenever C does.
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        return crate::nn::ops::cross_entropy(logits, labels);
    }
    let targets_u32 = targets.to_dtype(DType::U32).ctx("cross_entropy targets")?;
    let max = logits.max_keepdim(D::Minus1).ctx("cross_entropy")?.detach();
    let shifted = logits.broadcast_sub(&max).ctx("cross_entropy")?;
    let lse = shifted
        .exp()
        .and_then(|e| e.sum_keepdim(D::Minus1))
        .and_then(|s| s.log())
        .ctx("cross_entropy")?;
    let logp = shifted.broadcast_sub(&lse).ctx("cross_entropy")?;
    let picked = logp
        .gather(&targets_u32.unsqueeze(1).ctx("cross_entropy")?, 1)
        .ctx("cross_entropy gather")?;
    picked
        .mean_all()
        .and_then(|m| m.neg())
        .ctx("cross_entropy mean")
}

/// Validates targets for cross-entropy; returns `(N, C)`.
///
/// # Errors
/// As [`cross_entropy`].
pub fn check_targets(logits: &Tensor, targets: &Tensor) -> Result<(usize, usize)> {
    checked_labels(logits, targets).map(|(shape, _)| shape)
}

/// Validates targets for cross-entropy; returns `(N, C)` and the labels.
fn checked_labels(logits: &Tensor, targets: &Tensor) -> Result<((usize, usize), Vec<i64>)> {
    let (n, c) = logits.dims2().map_err(|_| Error::TargetShape {
        loss: "cross_entropy".into(),
        detail: "input must be 2-D logits [N, C]".into(),
        input: shape_str(logits.dims()),
        target: shape_str(targets.dims()),
    })?;
    if targets.rank() != 1 {
        let detail = if targets.dims() == [n, c] {
            "multi-target not supported: the targets look one-hot [N, C]; cross-entropy takes class indices [N] (use argmax(1))"
        } else if targets.dims() == [n, 1] {
            "multi-target not supported: targets of shape [N, 1]; cross-entropy takes class indices [N] (use squeeze(1))"
        } else {
            "0D or 1D target tensor expected: cross-entropy takes class indices [N]"
        };
        return Err(Error::TargetShape {
            loss: "cross_entropy".into(),
            detail: detail.into(),
            input: shape_str(logits.dims()),
            target: shape_str(targets.dims()),
        });
    }
    if targets.dims()[0] != n {
        return Err(Error::TargetShape {
            loss: "cross_entropy".into(),
            detail: format!(
                "Expected input batch_size ({n}) to match target batch_size ({})",
                targets.dims()[0]
            ),
            input: shape_str(logits.dims()),
            target: shape_str(targets.dims()),
        });
    }
    if targets.dtype().is_float() {
        return Err(Error::TargetShape {
            loss: "cross_entropy".into(),
            detail: format!(
                "targets must be integer class indices, got {:?}",
                targets.dtype()
            ),
            input: shape_str(logits.dims()),
            target: shape_str(targets.dims()),
        });
    }
    let labels: Vec<i64> = targets
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1())
        .ctx("cross_entropy targets")?;
    check_label_range(&labels, c)?;
    Ok(((n, c), labels))
}

/// Checks that every label is in `[0, num_classes)` and explains the usual causes.
///
/// # Errors
/// `K0205` naming the first bad label, the observed range and a diagnosis.
pub fn check_label_range(labels: &[i64], num_classes: usize) -> Result<()> {
    let Some(bad) = labels
        .iter()
        .copied()
        .find(|&l| l < 0 || l >= num_classes as i64)
    else {
        return Ok(());
    };
    let min = labels.iter().copied().min().unwrap_or(0);
    let max = labels.iter().copied().max().unwrap_or(0);
    let mut uniq: Vec<i64> = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let diagnosis = if min == 1 && max == num_classes as i64 {
        "; the labels seem to start at 1: subtract 1 so they run 0..C-1".to_string()
    } else if uniq.len() <= num_classes && min >= 0 {
        let shown: Vec<String> = uniq.iter().take(8).map(|v| v.to_string()).collect();
        format!(
            "; the label set {{{}{}}} is not contiguous: map the sorted unique labels to 0..{}",
            shown.join(", "),
            if uniq.len() > 8 { ", …" } else { "" },
            uniq.len() - 1
        )
    } else if min < 0 {
        "; negative labels are not class indices".to_string()
    } else {
        format!(
            "; there are {} distinct labels: raise num_classes to at least {}",
            uniq.len(),
            max + 1
        )
    };
    Err(Error::TargetOutOfBounds {
        target: bad,
        num_classes,
        min,
        max,
        diagnosis,
    })
}

/// Mean squared error; `input` and `target` must have one shape.
///
/// # Errors
/// `K0206` when the shapes differ (PyTorch only warns and broadcasts, which is usually a bug).
pub fn mse_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    if input.dims() != target.dims() {
        return Err(Error::TargetShape {
            loss: "mse_loss".into(),
            detail: "input and target must have the same shape".into(),
            input: shape_str(input.dims()),
            target: shape_str(target.dims()),
        });
    }
    let target = target.to_dtype(input.dtype()).ctx("mse_loss")?;
    (input - target)
        .and_then(|d| d.sqr())
        .and_then(|d| d.mean_all())
        .ctx("mse_loss")
}

/// Number of correct argmax predictions of `logits [N, C]` for `targets [N]`.
pub fn correct(logits: &Tensor, targets: &Tensor) -> Result<usize> {
    let pred: Vec<u32> = logits
        .argmax(D::Minus1)
        .and_then(|p| p.to_vec1())
        .ctx("accuracy")?;
    let t: Vec<i64> = targets
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1())
        .ctx("accuracy")?;
    Ok(pred
        .iter()
        .zip(&t)
        .filter(|(p, t)| **p as i64 == **t)
        .count())
}

// ------------------------------------------------------------------------------ issue 14

/// How a loss combines its per-element values: PyTorch's `reduction=` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Per-element (per-sample) losses, unreduced.
    None,
    /// The mean (for class-index cross-entropy / NLL with `weight`: divided by the summed
    /// weights of the non-ignored targets, as in PyTorch).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// `kl_div` only: the sum divided by the batch size (`input.size(0)`).
    BatchMean,
}

impl Reduction {
    /// Parses PyTorch's spelling: `"none"`, `"mean"`, `"sum"`, `"batchmean"`.
    ///
    /// # Errors
    /// `K0003` for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "batchmean" => Ok(Reduction::BatchMean),
            other => Err(Error::invalid(
                "reduction",
                format!("'{other}'"),
                "'none', 'mean' or 'sum' ('batchmean' for kl_div)",
            )),
        }
    }

    fn apply(self, loss: &str, v: Tensor) -> Result<Tensor> {
        match self {
            Reduction::None => Ok(v),
            Reduction::Mean => v.mean_all().ctx(loss),
            Reduction::Sum => v.sum_all().ctx(loss),
            Reduction::BatchMean => Err(Error::invalid(
                format!("{loss} reduction"),
                "'batchmean'",
                "'none', 'mean' or 'sum' (batchmean is for kl_div only)",
            )),
        }
    }
}

fn same_shape(loss: &str, input: &Tensor, target: &Tensor) -> Result<Tensor> {
    if input.dims() != target.dims() {
        return Err(Error::TargetShape {
            loss: loss.into(),
            detail: "input and target must have the same shape".into(),
            input: shape_str(input.dims()),
            target: shape_str(target.dims()),
        });
    }
    if !input.dtype().is_float() {
        return Err(Error::TargetShape {
            loss: loss.into(),
            detail: format!("input must be floating point, got {:?}", input.dtype()),
            input: shape_str(input.dims()),
            target: shape_str(target.dims()),
        });
    }
    target.to_dtype(input.dtype()).ctx(loss)
}

fn f64s(t: &Tensor, what: &str) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .ctx(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_value() {
        let logits = Tensor::new(&[[1f32, 2., 3.], [1., 1., 1.]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[2i64, 0], &Device::Cpu).unwrap();
        let l: f32 = cross_entropy(&logits, &t).unwrap().to_scalar().unwrap();
        let a = -(3f32 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln());
        let b = -(1f32 - (3.0 * 1f32.exp()).ln());
        assert!((l - (a + b) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn labels_starting_at_one_are_diagnosed() {
        let e = check_label_range(&[1, 2, 3, 10], 10).unwrap_err();
        assert_eq!(e.code(), "K0205");
        assert!(e.to_string().contains("Target 10 is out of bounds"));
        assert!(e.to_string().contains("start at 1"));
        let e = check_label_range(&[0, 1, 128, 255], 4).unwrap_err();
        assert!(e.to_string().contains("not contiguous"), "{e}");
    }

    #[test]
    fn one_hot_targets_are_refused() {
        let logits = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::zeros((4, 3), DType::I64, &Device::Cpu).unwrap();
        let e = cross_entropy(&logits, &t).unwrap_err();
        assert_eq!(e.code(), "K0206");
        assert!(e.to_string().contains("multi-target not supported"));
        let t = Tensor::zeros((4, 1), DType::I64, &Device::Cpu).unwrap();
        assert!(
            cross_entropy(&logits, &t)
                .unwrap_err()
                .to_string()
                .contains("[N, 1]")
        );
    }
}
