//! `Dropout`: zeroes elements with probability `p` in training mode and scales the rest by
//! `1/(1-p)`; the mask comes from kiln's seeded generator, so runs are reproducible.
//! `Dropout1d` / `Dropout2d` zero whole channels (one draw per `(n, c)`), as PyTorch's.

use super::{ModeFlag, impl_as_any};
use crate::error::shape_str;
use crate::error::{Context, Error, Result};
use crate::nn::{Module, ModuleSpec};
use crate::rng;
use candle_core::{Device, Tensor};

/// A `scale`-or-zero mask of `dims` drawn from kiln's generator.
fn mask(p: f64, dims: &[usize], like: &Tensor, what: &str) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let m: Vec<f32> = rng::with(|g| {
        (0..n)
            .map(|_| if g.next_f64() < keep { scale } else { 0.0 })
            .collect()
    });
    Tensor::from_vec(m, dims, &Device::Cpu)
        .and_then(|m| m.to_device(like.device()))
        .and_then(|m| m.to_dtype(like.dtype()))
        .ctx(what)
}

macro_rules! channel_dropout {
    ($(#[$doc:meta])* $name:ident, $torch:literal, $ranks:expr, $expected:literal, $batch:expr) => {
        $(#[$doc])*
        pub struct $name {
            p: f64,
            /// Accepted for PyTorch compatibility; kiln never modifies the input.
            inplace: bool,
            training: ModeFlag,
        }

        impl $name {
            #[doc = concat!("`", $torch, "(p)`.")]
            ///
            /// # Errors
            /// `K0003` unless `0 <= p <= 1`.
            pub fn new(p: f64) -> Result<Self> {
                Self::with_inplace(p, false)
            }

            #[doc = concat!("`", $torch, "(p, inplace)`; `inplace` changes nothing.")]
            ///
            /// # Errors
            /// `K0003` unless `0 <= p <= 1`.
            pub fn with_inplace(p: f64, inplace: bool) -> Result<Self> {
                if !(0.0..=1.0).contains(&p) {
                    return Err(Error::invalid(
                        concat!($torch, " probability"),
                        p,
                        "a value between 0 and 1",
                    ));
                }
                Ok($name { p, inplace, training: ModeFlag::default() })
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a mistyped entry; as `new`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Self::with_inplace(spec.f64_or("p", 0.5)?, spec.bool_or("inplace", false)?)
            }
        }

        impl Module for $name {
            fn type_name(&self) -> &'static str {
                $torch
            }

            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                let ranks: &[usize] = &$ranks;
                if !ranks.contains(&x.rank()) {
                    return Err(Error::InputRank {
                        module: self.repr(),
                        expected: $expected.into(),
                        shape: shape_str(x.dims()),
                    });
                }
                if !self.training.get() || self.p == 0.0 {
                    return Ok(x.clone());
                }
                if self.p == 1.0 {
                    return x.zeros_like().ctx($torch);
                }
                // One draw per channel: every dimension but the spatial ones.
                let batch: fn(usize) -> usize = $batch;
                let batch = batch(x.rank());
                let dims: Vec<usize> = x
                    .dims()
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if i < batch { d } else { 1 })
                    .collect();
                let m = mask(self.p, &dims, x, $torch)?;
                x.broadcast_mul(&m).ctx($torch)
            }

            fn set_training(&self, training: bool) {
                self.training.set(training);
            }

            fn training_flag(&self) -> Option<bool> {
                Some(self.training.get())
            }

            fn spec(&self) -> ModuleSpec {
                ModuleSpec::new($torch).with("p", self.p).with("inplace", self.inplace)
            }

            fn extra_repr(&self) -> String {
                format!("p={}, inplace={}", self.p, super::py_bool(self.inplace))
            }

            impl_as_any!();
        }
    };
}

channel_dropout!(
    /// PyTorch's `nn.Dropout1d(p=0.5)`: zeroes whole channels of `[N, C, L]` (or unbatched
    /// `[C, L]`) with probability `p` in training mode, scaling the rest by `1/(1−p)`.
    Dropout1d, "Dropout1d", [2, 3], "2-D [C, L] or 3-D [N, C, L]", |rank| rank - 1
);
channel_dropout!(
    /// PyTorch's `nn.Dropout2d(p=0.5)`: zeroes whole channels of `[N, C, H, W]` with
    /// probability `p` in training mode, scaling the rest by `1/(1−p)`. A 3-D input is taken as
    /// `[N, C, L]` (PyTorch's behaviour, with its warning).
    Dropout2d, "Dropout2d", [3, 4], "3-D [N, C, L] or 4-D [N, C, H, W]", |_| 2
);

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
