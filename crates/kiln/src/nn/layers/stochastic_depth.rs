//! `StochasticDepth`: torchvision's `torchvision.ops.StochasticDepth(p, mode)`, which drops a
//! residual branch with probability `p` in training mode (for each sample with `mode =
//! "row"`, for the whole batch with `"batch"`) and scales what survives by `1 / (1 - p)`.

use super::{ModeFlag, impl_as_any, py_float};
use crate::error::{Context, Error, Result};
use crate::nn::{Module, ModuleSpec};
use crate::rng;
use candle_core::{Device, Tensor};

/// Which part of the input one draw keeps or drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StochasticDepthMode {
    /// One draw per sample (the first dimension): torchvision's `"row"`.
    Row,
    /// One draw for the whole batch: `"batch"`.
    Batch,
}

impl StochasticDepthMode {
    /// Parses torchvision's spelling, `"row"` or `"batch"`.
    ///
    /// # Errors
    /// `K0003` for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "row" => Ok(StochasticDepthMode::Row),
            "batch" => Ok(StochasticDepthMode::Batch),
            other => Err(Error::invalid(
                "StochasticDepth mode",
                other,
                "'row' or 'batch' (torchvision's modes)",
            )),
        }
    }

    /// torchvision's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StochasticDepthMode::Row => "row",
            StochasticDepthMode::Batch => "batch",
        }
    }
}

/// `stochastic_depth(input, p, mode, training)` (torchvision.ops.stochastic_depth): the
/// identity when not training or `p == 0`; otherwise `input * noise` where `noise` is
/// Bernoulli(1 − p) of shape `[N, 1, …]` (row) or `[1, 1, …]` (batch), divided by `1 − p`
/// when that is positive. The draws come from kiln's generator ([`crate::rng`]).
///
/// # Errors
/// `K0003` unless `0 <= p <= 1`, or for a 0-D input.
pub fn stochastic_depth(
    x: &Tensor,
    p: f64,
    mode: StochasticDepthMode,
    training: bool,
) -> Result<Tensor> {
    check_p(p)?;
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let dims = x.dims();
    if dims.is_empty() {
        return Err(Error::invalid(
            "StochasticDepth input",
            "a 0-D tensor",
            "a tensor whose first dimension is the batch",
        ));
    }
    let survival = 1.0 - p;
    let (draws, shape) = match mode {
        StochasticDepthMode::Row => {
            let mut s = vec![1; dims.len()];
            s[0] = dims[0];
            (dims[0], s)
        }
        StochasticDepthMode::Batch => (1, vec![1; dims.len()]),
    };
    let scale = if survival > 0.0 { 1.0 / survival } else { 1.0 };
    let noise: Vec<f32> = rng::with(|g| {
        (0..draws)
            .map(|_| {
                if g.next_f64() < survival {
                    scale as f32
                } else {
                    0.0
                }
            })
            .collect()
    });
    let noise = Tensor::from_vec(noise, shape, &Device::Cpu)
        .and_then(|m| m.to_device(x.device()))
        .and_then(|m| m.to_dtype(x.dtype()))
        .ctx("StochasticDepth noise")?;
    x.broadcast_mul(&noise).ctx("StochasticDepth")
}

fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            "StochasticDepth p",
            p,
            "a drop probability between 0 and 1",
        ));
    }
    Ok(())
}

/// torchvision's `StochasticDepth(p, mode)` module: [`stochastic_depth`] with the module's
/// training flag. No parameters or buffers.
///
/// ```
/// use kiln::nn::{Module, StochasticDepth};
/// let sd = StochasticDepth::new(0.2, "row")?;
/// assert_eq!(sd.repr(), "StochasticDepth(p=0.2, mode=row)");
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Debug)]
pub struct StochasticDepth {
    p: f64,
    mode: StochasticDepthMode,
    training: ModeFlag,
}

impl StochasticDepth {
    /// `StochasticDepth(p, mode)`; `mode` is `"row"` or `"batch"`.
    ///
    /// # Errors
    /// `K0003` unless `0 <= p <= 1` and the mode is one of torchvision's.
    pub fn new(p: f64, mode: &str) -> Result<Self> {
        Self::with(p, StochasticDepthMode::parse(mode)?)
    }

    /// With a typed mode.
    ///
    /// # Errors
    /// `K0003` unless `0 <= p <= 1`.
    pub fn with(p: f64, mode: StochasticDepthMode) -> Result<Self> {
        check_p(p)?;
        Ok(StochasticDepth {
            p,
            mode,
            training: ModeFlag::default(),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The mode.
    pub fn mode(&self) -> StochasticDepthMode {
        self.mode
    }

    fn from_spec(
        spec: &ModuleSpec,
        _children: Vec<(String, Box<dyn Module>)>,
    ) -> Result<Box<dyn Module>> {
        let mode = match spec.config.get("mode").and_then(|v| v.as_str()) {
            Some(m) => StochasticDepthMode::parse(m)?,
            None => StochasticDepthMode::Row,
        };
        Ok(Box::new(Self::with(spec.f64("p")?, mode)?))
    }
}

inventory::submit! {
    crate::nn::derive_support::Registration::new("StochasticDepth", StochasticDepth::from_spec)
}

impl Module for StochasticDepth {
    fn type_name(&self) -> &'static str {
        "StochasticDepth"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        stochastic_depth(x, self.p, self.mode, self.training.get())
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.training.get())
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("StochasticDepth")
            .with("p", self.p)
            .with("mode", self.mode.as_str())
    }

    fn extra_repr(&self) -> String {
        format!("p={}, mode={}", py_float(self.p), self.mode.as_str())
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn ones(dims: &[usize]) -> Tensor {
        Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn eval_mode_and_zero_p_are_the_identity() {
        let x = ones(&[3, 2, 2, 2]);
        let sd = StochasticDepth::new(0.7, "row").unwrap();
        sd.eval();
        let y = sd.forward(&x).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&a| a == 1.0));
        let y = stochastic_depth(&x, 0.0, StochasticDepthMode::Batch, true).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&a| a == 1.0));
    }

    /// Row mode: each sample is all zeros or all `1/(1-p)`; the kept fraction is about
    /// `1 - p`, so the expectation is preserved.
    #[test]
    fn row_mode_drops_whole_samples_and_rescales_survivors() {
        rng::manual_seed(3);
        let p = 0.25;
        let sd = StochasticDepth::new(p, "row").unwrap();
        let x = ones(&[4000, 3, 2]);
        let y = sd.forward(&x).unwrap();
        let rows: Vec<Vec<Vec<f32>>> = y.to_vec3().unwrap();
        let mut kept = 0;
        for r in &rows {
            let first = r[0][0];
            assert!(first == 0.0 || (first - 1.0 / 0.75).abs() < 1e-6, "{first}");
            assert!(r.iter().flatten().all(|&v| v == first), "a row is mixed");
            kept += usize::from(first != 0.0);
        }
        let frac = kept as f64 / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "kept {frac}");
        let mean: f32 = y.mean_all().unwrap().to_scalar().unwrap();
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn batch_mode_drops_all_or_nothing_and_p_one_gives_zeros() {
        rng::manual_seed(5);
        let x = ones(&[8, 4]);
        for _ in 0..20 {
            let y = stochastic_depth(&x, 0.5, StochasticDepthMode::Batch, true).unwrap();
            let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert!(v.iter().all(|&a| a == v[0]) && (v[0] == 0.0 || v[0] == 2.0));
        }
        let y = stochastic_depth(&x, 1.0, StochasticDepthMode::Row, true).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|&a| a == 0.0));
    }

    #[test]
    fn bad_p_and_mode_are_refused() {
        let code = |r: Result<StochasticDepth>| r.err().map(|e| e.code());
        assert_eq!(code(StochasticDepth::new(1.5, "row")), Some("K0003"));
        assert_eq!(code(StochasticDepth::new(0.1, "col")), Some("K0003"));
    }

    #[test]
    fn same_seed_same_mask() {
        let x = ones(&[16, 2]);
        let run = || {
            rng::manual_seed(11);
            stochastic_depth(&x, 0.5, StochasticDepthMode::Row, true)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(), run());
    }
}
