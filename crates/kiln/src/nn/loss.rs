//! Losses with PyTorch's semantics and `reduction` (none / mean / sum): cross-entropy
//! ([`cross_entropy`], and [`CrossEntropyLoss`] with weight, ignore_index, label smoothing and
//! probability targets), NLL, binary cross-entropy (on probabilities and on logits), MSE, L1,
//! smooth L1, Huber and KL divergence; the classic target mistakes (labels out of range,
//! one-hot or `[N, 1]` targets) are reported clearly.

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

/// Options of PyTorch's `nn.CrossEntropyLoss` / `F.cross_entropy`: class `weight` `[C]`,
/// `ignore_index` (default −100), `reduction` (default mean) and `label_smoothing`
/// (default 0). Targets are class indices `[N]` / `[N, d1, …]` (integer) or class
/// probabilities of the input's shape (float).
///
/// ```
/// use kiln::nn::loss::{CrossEntropyLoss, Reduction};
/// use candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[1f32, 2., 3.], [1., 1., 1.]], &Device::Cpu)?;
/// let labels = Tensor::new(&[2i64, -100], &Device::Cpu)?;
/// let loss = CrossEntropyLoss::new().label_smoothing(0.1).forward(&logits, &labels)?;
/// let per_sample = CrossEntropyLoss::new().reduction(Reduction::None).forward(&logits, &labels)?;
/// assert_eq!(per_sample.to_vec1::<f32>()?[1], 0.0); // ignored
/// # let _ = loss;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct CrossEntropyLoss {
    /// A manual rescaling weight per class, `[C]`.
    pub weight: Option<Tensor>,
    /// Class-index targets equal to this contribute nothing (and are not counted by mean).
    pub ignore_index: i64,
    /// How per-sample losses are combined.
    pub reduction: Reduction,
    /// Mixes the target with the uniform distribution: `(1 − ε)·target + ε/C`.
    pub label_smoothing: f64,
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

impl CrossEntropyLoss {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the class weights `[C]`.
    pub fn weight(mut self, w: Tensor) -> Self {
        self.weight = Some(w);
        self
    }
    /// Sets `ignore_index`.
    pub fn ignore_index(mut self, i: i64) -> Self {
        self.ignore_index = i;
        self
    }
    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }
    /// Sets `label_smoothing` (in `[0, 1]`).
    pub fn label_smoothing(mut self, e: f64) -> Self {
        self.label_smoothing = e;
        self
    }

    /// The loss of `input [N, C, d…]` (logits) against `target`.
    ///
    /// # Errors
    /// `K0206` for targets of the wrong shape or a weight that is not `[C]`; `K0205` for a
    /// class index outside `[0, C)` that is not `ignore_index`; `K0003` for a
    /// `label_smoothing` outside `[0, 1]` or `Reduction::BatchMean`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid(
                "cross_entropy label_smoothing",
                self.label_smoothing,
                "a value in [0, 1] (PyTorch: label_smoothing must be between 0.0 and 1.0)",
            ));
        }
        let rows = class_rows("cross_entropy", input, target)?;
        let logp = crate::nn::functional::log_softmax(&rows.input, 1)?;
        let w = class_weight(
            "cross_entropy",
            self.weight.as_ref(),
            rows.classes,
            input,
            target,
        )?;
        let spec = Coefficients {
            weight: &w,
            ignore_index: self.ignore_index,
            smoothing: self.label_smoothing,
        };
        let (coef, denom) = if target.dtype().is_float() {
            spec.for_probs(&rows)
        } else {
            spec.for_labels("cross_entropy", &rows)?
        };
        rows.finish("cross_entropy", &logp, coef, denom, self.reduction)
    }
}

/// Options of PyTorch's `nn.NLLLoss` / `F.nll_loss` on log-probabilities `[N, C, d…]` and
/// class indices; the same `weight`, `ignore_index` and `reduction` as
/// [`CrossEntropyLoss`].
#[derive(Clone, Debug)]
pub struct NllLoss {
    /// A manual rescaling weight per class, `[C]`.
    pub weight: Option<Tensor>,
    /// Targets equal to this contribute nothing.
    pub ignore_index: i64,
    /// How per-sample losses are combined.
    pub reduction: Reduction,
}

impl Default for NllLoss {
    fn default() -> Self {
        NllLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }
}

impl NllLoss {
    /// `−weight[y] · input[i, y]`, reduced.
    ///
    /// # Errors
    /// As [`CrossEntropyLoss::forward`]; float (probability) targets are `K0206`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if target.dtype().is_float() {
            return Err(Error::TargetShape {
                loss: "nll_loss".into(),
                detail: "nll_loss takes integer class indices".into(),
                input: shape_str(input.dims()),
                target: shape_str(target.dims()),
            });
        }
        let rows = class_rows("nll_loss", input, target)?;
        let w = class_weight(
            "nll_loss",
            self.weight.as_ref(),
            rows.classes,
            input,
            target,
        )?;
        let spec = Coefficients {
            weight: &w,
            ignore_index: self.ignore_index,
            smoothing: 0.0,
        };
        let (coef, denom) = spec.for_labels("nll_loss", &rows)?;
        rows.finish("nll_loss", &rows.input, coef, denom, self.reduction)
    }
}

/// `F.nll_loss(input, target, weight, ignore_index, reduction)`.
///
/// # Errors
/// As [`NllLoss::forward`].
pub fn nll_loss(input: &Tensor, target: &Tensor, options: &NllLoss) -> Result<Tensor> {
    options.forward(input, target)
}

/// A class-dimension input as rows `[M, C]` (class dim moved last) and its targets in row
/// order, with what is needed to put per-sample losses back in shape `[N, d…]`.
struct ClassRows {
    input: Tensor,
    classes: usize,
    /// `[N, d…]`.
    sample_dims: Vec<usize>,
    /// Class-index targets, one per row.
    labels: Vec<i64>,
    /// Probability targets as rows `[M, C]`, flattened.
    probs: Vec<f64>,
}

/// `[N, C, d…]` → `[N·d…, C]`.
fn to_rows(loss: &str, t: &Tensor) -> Result<Tensor> {
    let dims = t.dims();
    let c = dims[1];
    if dims.len() == 2 {
        return Ok(t.clone());
    }
    let mut perm: Vec<usize> = vec![0];
    perm.extend(2..dims.len());
    perm.push(1);
    t.permute(perm).and_then(|t| t.reshape(((), c))).ctx(loss)
}

fn class_rows(loss: &str, input: &Tensor, target: &Tensor) -> Result<ClassRows> {
    let bad = |detail: String| Error::TargetShape {
        loss: loss.into(),
        detail,
        input: shape_str(input.dims()),
        target: shape_str(target.dims()),
    };
    let dims = input.dims().to_vec();
    if dims.len() < 2 || !input.dtype().is_float() {
        return Err(bad(
            "input must be floating-point [N, C] or [N, C, d1, ...]".into(),
        ));
    }
    let c = dims[1];
    let mut sample_dims = vec![dims[0]];
    sample_dims.extend_from_slice(&dims[2..]);
    let (mut labels, mut probs) = (Vec::new(), Vec::new());
    if target.dtype().is_float() {
        if target.dims() != dims.as_slice() {
            return Err(bad("probability targets must have the input's shape".into()));
        }
        probs = f64s(&to_rows(loss, target)?, loss)?;
    } else {
        if target.dims() != sample_dims.as_slice() {
            let detail = if target.dims() == dims.as_slice() {
                "multi-target not supported: integer targets of the input's shape look one-hot; class-index targets drop the class dimension (use argmax(1), or float probabilities)".to_string()
            } else {
                format!(
                    "class-index targets must have shape {} (the input without its class dimension)",
                    shape_str(&sample_dims)
                )
            };
            return Err(bad(detail));
        }
        labels = target
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::I64))
            .and_then(|t| t.to_vec1())
            .ctx(loss)?;
    }
    Ok(ClassRows {
        input: to_rows(loss, input)?,
        classes: c,
        sample_dims,
        labels,
        probs,
    })
}

impl ClassRows {
    /// `−Σ_c coef · logp` per row, reduced (mean divides by `denom`).
    fn finish(
        &self,
        loss: &str,
        logp: &Tensor,
        coef: Vec<f64>,
        denom: f64,
        reduction: Reduction,
    ) -> Result<Tensor> {
        let coef = Tensor::from_vec(coef, logp.shape(), logp.device())
            .and_then(|t| t.to_dtype(logp.dtype()))
            .ctx(loss)?;
        let per_row = (logp * coef)
            .and_then(|t| t.sum(1))
            .and_then(|t| t.neg())
            .ctx(loss)?;
        match reduction {
            Reduction::None => per_row.reshape(self.sample_dims.as_slice()).ctx(loss),
            Reduction::Sum => per_row.sum_all().ctx(loss),
            Reduction::Mean => (per_row.sum_all().ctx(loss)? / denom).ctx(loss),
            Reduction::BatchMean => Reduction::BatchMean.apply(loss, per_row),
        }
    }
}

fn class_weight(
    loss: &str,
    weight: Option<&Tensor>,
    c: usize,
    input: &Tensor,
    target: &Tensor,
) -> Result<Vec<f64>> {
    match weight {
        None => Ok(vec![1.0; c]),
        Some(w) if w.dims() == [c] => f64s(w, loss),
        Some(w) => Err(Error::TargetShape {
            loss: loss.into(),
            detail: format!(
                "weight tensor should be defined either for all {c} classes or no classes but got weight tensor of shape: {}",
                shape_str(w.dims())
            ),
            input: shape_str(input.dims()),
            target: shape_str(target.dims()),
        }),
    }
}

/// The coefficients `A [M, C]` of the per-row loss `−Σ_c A[i, c] · logp[i, c]`.
struct Coefficients<'a> {
    weight: &'a [f64],
    ignore_index: i64,
    smoothing: f64,
}

impl Coefficients<'_> {
    /// Class indices: `(1 − ε)·w[y]` at `y` plus `ε/C · w[c]` everywhere; ignored rows 0.
    /// The mean divides by `Σ w[y]` over the rows not ignored (PyTorch's normalisation for
    /// both the NLL and the smoothing term).
    fn for_labels(&self, loss: &str, rows: &ClassRows) -> Result<(Vec<f64>, f64)> {
        let c = rows.classes;
        let kept: Vec<i64> = rows
            .labels
            .iter()
            .copied()
            .filter(|&l| l != self.ignore_index)
            .collect();
        check_label_range(&kept, c).map_err(|e| match e {
            Error::TargetOutOfBounds {
                target,
                num_classes,
                min,
                max,
                diagnosis,
            } => Error::TargetOutOfBounds {
                target,
                num_classes,
                min,
                max,
                diagnosis: format!("{diagnosis} ({loss}, ignore_index={})", self.ignore_index),
            },
            other => other,
        })?;
        let eps = self.smoothing;
        let mut coef = vec![0f64; rows.labels.len() * c];
        let mut denom = 0f64;
        for (i, &y) in rows.labels.iter().enumerate() {
            if y == self.ignore_index {
                continue;
            }
            // In range: checked above.
            let y = y as usize;
            denom += self.weight[y];
            let row = &mut coef[i * c..(i + 1) * c];
            for (k, a) in row.iter_mut().enumerate() {
                *a = eps / c as f64 * self.weight[k];
            }
            row[y] += (1.0 - eps) * self.weight[y];
        }
        Ok((coef, denom))
    }

    /// Probabilities: `((1 − ε)·p + ε/C) · w[c]`; the mean divides by the number of rows.
    fn for_probs(&self, rows: &ClassRows) -> (Vec<f64>, f64) {
        let c = rows.classes;
        let eps = self.smoothing;
        let coef: Vec<f64> = rows
            .probs
            .iter()
            .enumerate()
            .map(|(j, &v)| ((1.0 - eps) * v + eps / c as f64) * self.weight[j % c])
            .collect();
        (coef, (rows.probs.len() / c.max(1)) as f64)
    }
}

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

/// An element-wise loss `f(input − target)` with PyTorch's derivative `f'`.
fn diff_loss(
    loss: &'static str,
    input: &Tensor,
    target: &Tensor,
    op: Pointwise,
    fallback: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    let t = same_shape(loss, input, target)?;
    let d = (input - t).ctx(loss)?;
    reduction.apply(loss, apply(&d, op, fallback)?)
}

fn op(
    name: &'static str,
    f: impl Fn(f64) -> f64 + Send + Sync + 'static,
    df: impl Fn(f64) -> f64 + Send + Sync + 'static,
) -> Pointwise {
    Pointwise {
        name,
        f: Box::new(f),
        df: Box::new(move |x, _| df(x)),
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `F.mse_loss(input, target, reduction)`: `(x − t)²`.
///
/// # Errors
/// `K0206` when the shapes differ; `K0003` for `BatchMean`.
pub fn mse_loss_with(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let t = same_shape("mse_loss", input, target)?;
    let v = (input - t).and_then(|d| d.sqr()).ctx("mse_loss")?;
    reduction.apply("mse_loss", v)
}

/// `F.l1_loss(input, target, reduction)`: `|x − t|` (gradient 0 where they are equal).
///
/// # Errors
/// As [`mse_loss_with`].
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let o = op("l1_loss", f64::abs, sign);
    diff_loss("l1_loss", input, target, o, |d| d.abs(), reduction)
}

/// `F.smooth_l1_loss(input, target, reduction, beta)`: `0.5 d²/beta` where `|d| < beta`,
/// else `|d| − 0.5 beta` (`beta = 0` is the L1 loss).
///
/// # Errors
/// As [`mse_loss_with`]; `K0003` for a negative `beta`.
pub fn smooth_l1_loss(
    input: &Tensor,
    target: &Tensor,
    beta: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    if beta.is_nan() || beta < 0.0 {
        return Err(Error::invalid("smooth_l1_loss beta", beta, "beta >= 0"));
    }
    if beta == 0.0 {
        return l1_loss(input, target, reduction);
    }
    let o = op(
        "smooth_l1_loss",
        move |d| {
            let z = d.abs();
            if z < beta {
                0.5 * z * z / beta
            } else {
                z - 0.5 * beta
            }
        },
        move |d| {
            if d <= -beta {
                -1.0
            } else if d >= beta {
                1.0
            } else {
                d / beta
            }
        },
    );
    let fallback = move |d: &Tensor| {
        let z = d.abs()?;
        let quad = (z.sqr()? * (0.5 / beta))?;
        let lin = (&z - 0.5 * beta)?;
        z.lt(beta)?.where_cond(&quad, &lin)
    };
    diff_loss("smooth_l1_loss", input, target, o, fallback, reduction)
}

/// `F.huber_loss(input, target, reduction, delta)`: `0.5 d²` where `|d| < delta`, else
/// `delta (|d| − 0.5 delta)`.
///
/// # Errors
/// As [`mse_loss_with`]; `K0003` for `delta <= 0`.
pub fn huber_loss(
    input: &Tensor,
    target: &Tensor,
    delta: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    if delta.is_nan() || delta <= 0.0 {
        return Err(Error::invalid("huber_loss delta", delta, "delta > 0"));
    }
    let o = op(
        "huber_loss",
        move |d| {
            let z = d.abs();
            if z < delta {
                0.5 * z * z
            } else {
                delta * (z - 0.5 * delta)
            }
        },
        move |d| {
            if d <= -delta {
                -delta
            } else if d >= delta {
                delta
            } else {
                d
            }
        },
    );
    let fallback = move |d: &Tensor| {
        let z = d.abs()?;
        let quad = (z.sqr()? * 0.5)?;
        let lin = ((&z - 0.5 * delta)? * delta)?;
        z.lt(delta)?.where_cond(&quad, &lin)
    };
    diff_loss("huber_loss", input, target, o, fallback, reduction)
}

/// `F.kl_div(input, target, reduction, log_target)` with `input` log-probabilities:
/// `t · (log t − x)` (0 where `t = 0`), or `e^t · (t − x)` with `log_target`.
/// `Reduction::BatchMean` divides the sum by `input.size(0)` (the mathematically correct
/// KL divergence; PyTorch's `mean` divides by every element).
///
/// # Errors
/// `K0206` when the shapes differ.
pub fn kl_div(
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    log_target: bool,
) -> Result<Tensor> {
    let loss = "kl_div";
    let t = same_shape(loss, input, target)?.detach();
    let tv = f64s(&t, loss)?;
    let (coef, konst): (Vec<f64>, Vec<f64>) = tv
        .iter()
        .map(|&t| {
            if log_target {
                (t.exp(), t.exp() * t)
            } else if t == 0.0 {
                (0.0, 0.0)
            } else {
                (t, t * t.ln())
            }
        })
        .unzip();
    let mk = |v: Vec<f64>| {
        Tensor::from_vec(v, input.shape(), input.device())
            .and_then(|t| t.to_dtype(input.dtype()))
            .ctx(loss)
    };
    let v = (mk(konst)? - (input * mk(coef)?).ctx(loss)?).ctx(loss)?;
    match reduction {
        Reduction::BatchMean => {
            let n = input.dims().first().copied().unwrap_or(1).max(1);
            (v.sum_all().ctx(loss)? / n as f64).ctx(loss)
        }
        r => r.apply(loss, v),
    }
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
