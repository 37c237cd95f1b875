//! `Dropout`: zeroes elements with probability `p` in training mode and scales the rest by
//! `1/(1-p)`; the mask comes from kiln's seeded generator, so runs are reproducible.

use super::{ModeFlag, impl_as_any};
use crate::error::{Context, Error, Result};
use crate::nn::{Module, ModuleSpec};
use crate::rng;
use candle_core::{Device, Tensor};

/// Dropout with probability `p`.
pub struct Dropout {
    p: f64,
    training: ModeFlag,
}

impl Dropout {
    /// `Dropout(p)`.
    ///
    /// # Errors
    /// `K0003` unless `0 <= p <= 1`.
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout probability",
                p,
                "a value between 0 and 1",
            ));
        }
        Ok(Dropout {
            p,
            training: ModeFlag::default(),
        })
    }
}

impl Module for Dropout {
    fn type_name(&self) -> &'static str {
        "Dropout"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.training.get() || self.p == 0.0 {
            return Ok(x.clone());
        }
        if self.p == 1.0 {
            return x.zeros_like().ctx("Dropout");
        }
        let n = x.elem_count();
        let keep = 1.0 - self.p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = rng::with(|g| {
            (0..n)
                .map(|_| if g.next_f64() < keep { scale } else { 0.0 })
                .collect()
        });
        let mask = Tensor::from_vec(mask, x.dims(), &Device::Cpu)
            .and_then(|m| m.to_device(x.device()))
            .and_then(|m| m.to_dtype(x.dtype()))
            .ctx("Dropout mask")?;
        (x * mask).ctx("Dropout")
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.training.get())
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Dropout").with("p", self.p)
    }

    fn extra_repr(&self) -> String {
        format!("p={}, inplace=False", super::py_float(self.p))
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn dropout_is_seeded_scaled_and_off_in_eval() {
        let d = Dropout::new(0.5).unwrap();
        let x = Tensor::ones(1000, DType::F32, &Device::Cpu).unwrap();
        rng::manual_seed(3);
        let a: Vec<f32> = d.forward(&x).unwrap().to_vec1().unwrap();
        rng::manual_seed(3);
        let b: Vec<f32> = d.forward(&x).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = a.iter().filter(|&&v| v > 0.0).count();
        assert!((400..600).contains(&kept));
        d.eval();
        assert_eq!(
            d.forward(&x).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 1000]
        );
    }
}
