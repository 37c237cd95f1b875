//! Element-wise regression losses (MSE, L1, smooth L1, Huber) and KL divergence.

use super::*;

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
