//! Embedding and ranking losses: `cosine_embedding_loss`, `margin_ranking_loss` and
//! `triplet_margin_loss`, each with PyTorch's formula, defaults and `reduction`, as functions
//! and as option structs (`nn.CosineEmbeddingLoss`, …).

use super::*;

fn shape_error(loss: &str, detail: impl Into<String>, a: &Tensor, b: &Tensor) -> Error {
    Error::TargetShape {
        loss: loss.into(),
        detail: detail.into(),
        input: shape_str(a.dims()),
        target: shape_str(b.dims()),
    }
}

fn float_input(loss: &str, x: &Tensor, other: &Tensor) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(shape_error(
            loss,
            format!("inputs must be floating point, got {:?}", x.dtype()),
            x,
            other,
        ))
    }
}

/// `F.cosine_embedding_loss(x1, x2, y, margin=0, reduction)`: per row,
/// `1 − cos(x1, x2)` where `y = 1` and `max(0, cos(x1, x2) − margin)` where `y = −1` (0 for
/// other labels), with PyTorch's `cos = Σ x1·x2 / √((Σ x1² + 1e-12)(Σ x2² + 1e-12))`. Inputs
/// `[N, D]` with `y [N]`, or `[D]` with a scalar `y`.
///
/// # Errors
/// `K0206` when the shapes do not fit together; `K0003` for `BatchMean`.
pub fn cosine_embedding_loss(
    x1: &Tensor,
    x2: &Tensor,
    y: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    let loss = "cosine_embedding_loss";
    float_input(loss, x1, x2)?;
    if x1.dims() != x2.dims() || !(1..=2).contains(&x1.rank()) {
        return Err(shape_error(
            loss,
            "x1 and x2 must have the same shape, [N, D] or [D]",
            x1,
            x2,
        ));
    }
    if y.rank() + 1 != x1.rank() || (y.rank() == 1 && y.dims()[0] != x1.dims()[0]) {
        return Err(shape_error(
            loss,
            "the target must be [N] for [N, D] inputs (a scalar for [D] inputs)",
            x1,
            y,
        ));
    }
    let dim = x1.rank() - 1;
    let eps = 1e-12;
    let c = |r: candle_core::Result<Tensor>| r.ctx(loss);
    let prod = c((x1 * x2).and_then(|p| p.sum(dim)))?;
    let m1 = c(x1.sqr().and_then(|s| s.sum(dim)).and_then(|s| s + eps))?;
    let m2 = c(x2.sqr().and_then(|s| s.sum(dim)).and_then(|s| s + eps))?;
    let cos = c((m1 * m2).and_then(|d| d.sqrt()).and_then(|d| prod / d))?;
    let yv = c(y.to_dtype(x1.dtype()))?;
    let pos_mask = c(yv.eq(1.0).and_then(|m| m.to_dtype(x1.dtype())))?;
    let neg_mask = c(yv.eq(-1.0).and_then(|m| m.to_dtype(x1.dtype())))?;
    let pos = c(cos.affine(-1.0, 1.0).and_then(|p| p * pos_mask))?;
    let neg = c((&cos - margin)
        .and_then(|n| n.relu())
        .and_then(|n| n * neg_mask))?;
    reduction.apply(loss, c(pos + neg)?)
}

/// `F.margin_ranking_loss(x1, x2, y, margin=0, reduction)`:
/// `max(0, −y·(x1 − x2) + margin)` element-wise (`y` is 1 or −1, all three the same shape).
///
/// # Errors
/// `K0206` when the shapes differ; `K0003` for `BatchMean`.
pub fn margin_ranking_loss(
    x1: &Tensor,
    x2: &Tensor,
    y: &Tensor,
    margin: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    let loss = "margin_ranking_loss";
    float_input(loss, x1, x2)?;
    if x1.dims() != x2.dims() || x1.dims() != y.dims() {
        return Err(shape_error(
            loss,
            format!(
                "x1, x2 and the target must have the same shape (x2 {})",
                shape_str(x2.dims())
            ),
            x1,
            y,
        ));
    }
    let yv = y.to_dtype(x1.dtype()).ctx(loss)?;
    let v = (x1 - x2)
        .and_then(|d| d * yv)
        .and_then(|v| v.affine(-1.0, margin))
        .and_then(|v| v.relu())
        .ctx(loss)?;
    reduction.apply(loss, v)
}

/// `F.pairwise_distance(a, b, p, eps)`: `‖a − b + eps‖_p` over the last dimension.
fn pairwise_distance(a: &Tensor, b: &Tensor, p: f64, eps: f64, loss: &str) -> Result<Tensor> {
    let d = (a - b).and_then(|d| d + eps).ctx(loss)?;
    let r = if p == 2.0 {
        d.sqr()
            .and_then(|s| s.sum(D::Minus1))
            .and_then(|s| s.sqrt())
    } else if p == 1.0 {
        d.abs().and_then(|s| s.sum(D::Minus1))
    } else {
        d.abs()
            .and_then(|s| s.powf(p))
            .and_then(|s| s.sum(D::Minus1))
            .and_then(|s| s.powf(1.0 / p))
    };
    r.ctx(loss)
}

/// `F.triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6,
/// swap=False, reduction)`: `max(0, margin + d(a, p) − d(a, n))` per row with PyTorch's
/// `pairwise_distance` `d(x, y) = ‖x − y + eps‖_p`; `swap` uses `min(d(a, n), d(p, n))`.
/// Inputs `[N, D]` (or `[D]`), all the same shape.
///
/// # Errors
/// `K0206` when the shapes differ; `K0003` for `p <= 0` or `BatchMean`.
#[allow(clippy::too_many_arguments)]
pub fn triplet_margin_loss(
    anchor: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
    reduction: Reduction,
) -> Result<Tensor> {
    let loss = "triplet_margin_loss";
    float_input(loss, anchor, positive)?;
    if anchor.dims() != positive.dims()
        || anchor.dims() != negative.dims()
        || !(1..=2).contains(&anchor.rank())
    {
        return Err(shape_error(
            loss,
            format!(
                "anchor, positive and negative must have the same shape, [N, D] or [D] (negative {})",
                shape_str(negative.dims())
            ),
            anchor,
            positive,
        ));
    }
    if !(p > 0.0 && p.is_finite()) {
        return Err(Error::invalid(
            "triplet_margin_loss p",
            p,
            "a positive norm degree",
        ));
    }
    let dp = pairwise_distance(anchor, positive, p, eps, loss)?;
    let mut dn = pairwise_distance(anchor, negative, p, eps, loss)?;
    if swap {
        let ds = pairwise_distance(positive, negative, p, eps, loss)?;
        dn = dn.minimum(&ds).ctx(loss)?;
    }
    let v = (dp - dn)
        .and_then(|v| v + margin)
        .and_then(|v| v.relu())
        .ctx(loss)?;
    reduction.apply(loss, v)
}

/// PyTorch's `nn.CosineEmbeddingLoss(margin=0.0, reduction='mean')`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CosineEmbeddingLoss {
    /// The margin for dissimilar pairs (`y = −1`), in `[−1, 1]`.
    pub margin: f64,
    /// How per-row losses are combined.
    pub reduction: Reduction,
}

impl CosineEmbeddingLoss {
    /// `CosineEmbeddingLoss(margin)` with `reduction='mean'`.
    pub fn new(margin: f64) -> Self {
        CosineEmbeddingLoss {
            margin,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }

    /// The loss of `(x1, x2)` against labels `y`.
    ///
    /// # Errors
    /// As [`cosine_embedding_loss`].
    pub fn forward(&self, x1: &Tensor, x2: &Tensor, y: &Tensor) -> Result<Tensor> {
        cosine_embedding_loss(x1, x2, y, self.margin, self.reduction)
    }
}

/// PyTorch's `nn.MarginRankingLoss(margin=0.0, reduction='mean')`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MarginRankingLoss {
    /// The margin.
    pub margin: f64,
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl MarginRankingLoss {
    /// `MarginRankingLoss(margin)` with `reduction='mean'`.
    pub fn new(margin: f64) -> Self {
        MarginRankingLoss {
            margin,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the reduction.
    pub fn reduction(mut self, r: Reduction) -> Self {
        self.reduction = r;
        self
    }

    /// The loss of `(x1, x2)` against `y` (1: x1 should rank higher, −1: lower).
    ///
    /// # Errors
    /// As [`margin_ranking_loss`].
    pub fn forward(&self, x1: &Tensor, x2: &Tensor, y: &Tensor) -> Result<Tensor> {
        margin_ranking_loss(x1, x2, y, self.margin, self.reduction)
    }
}

/// PyTorch's `nn.TripletMarginLoss(margin=1.0, p=2.0, eps=1e-6, swap=False,
/// reduction='mean')`.
///
/// ```
/// use kiln::nn::loss::TripletMarginLoss;
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[[0f32, 0.], [1., 1.]], &Device::Cpu)?;
/// let p = Tensor::new(&[[0f32, 1.], [1., 1.]], &Device::Cpu)?;
/// let n = Tensor::new(&[[3f32, 4.], [1., 1.]], &Device::Cpu)?;
/// let l = TripletMarginLoss::default().forward(&a, &p, &n)?.to_scalar::<f32>()?;
/// assert!((l - 0.5).abs() < 1e-4); // rows: max(0, 1 + 1 − 5) = 0 and max(0, 1 + 0 − 0) = 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletMarginLoss {
    /// The margin; default 1.0.
    pub margin: f64,
    /// The norm degree of the distances; default 2.0.
    pub p: f64,
    /// Added to the differences before the norm; default 1e-6.
    pub eps: f64,
    /// Use `min(d(a, n), d(p, n))` as the negative distance; default false.
    pub swap: bool,
    /// How per-row losses are combined.
    pub reduction: Reduction,
}

impl Default for TripletMarginLoss {
    fn default() -> Self {
        TripletMarginLoss {
            margin: 1.0,
            p: 2.0,
            eps: 1e-6,
            swap: false,
            reduction: Reduction::Mean,
        }
    }
}

impl TripletMarginLoss {
    /// The loss of the triplets.
    ///
    /// # Errors
    /// As [`triplet_margin_loss`].
    pub fn forward(&self, anchor: &Tensor, positive: &Tensor, negative: &Tensor) -> Result<Tensor> {
        triplet_margin_loss(
            anchor,
            positive,
            negative,
            self.margin,
            self.p,
            self.eps,
            self.swap,
            self.reduction,
        )
    }
}
