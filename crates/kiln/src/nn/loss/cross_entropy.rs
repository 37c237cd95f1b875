//! Cross-entropy and NLL with PyTorch's options (`weight`, `ignore_index`,
//! `label_smoothing`, probability targets, `reduction`).

use super::*;

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
