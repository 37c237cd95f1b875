//! `x.then(&layer)`: a tensor passed through modules left to right, as `nn.Sequential`
//! would, without nesting the calls.

use crate::error::Result;
use crate::nn::Module;
use candle_core::Tensor;

/// Passes a tensor through a module: `x.then(&self.norm)?.then(&self.head)` is
/// `self.head.forward(&self.norm.forward(&x)?)`, read in the order the data flows.
///
/// ```
/// use kiln::candle::{Device, Tensor};
/// use kiln::nn::{Gelu, Linear, TensorExt};
///
/// # fn main() -> kiln::Result<()> {
/// let (fc, act) = (Linear::new(4, 2, true)?, Gelu::default());
/// let x = Tensor::ones((3, 4), kiln::candle::DType::F32, &Device::Cpu)?;
/// let y = x.then(&fc)?.then(&act)?;
/// assert_eq!(y.dims(), &[3, 2]);
/// # Ok(())
/// # }
/// ```
pub trait TensorExt {
    /// `module.forward(self)`.
    ///
    /// # Errors
    /// Whatever the module's `forward` returns.
    fn then<M: Module + ?Sized>(&self, module: &M) -> Result<Tensor>;

    /// Passes the tensor through each module of `modules` in order (a `Vec<Block>` field used
    /// like an `nn.Sequential`).
    ///
    /// # Errors
    /// The first error of a module's `forward`.
    fn then_each<M: Module>(&self, modules: &[M]) -> Result<Tensor>;
}

impl TensorExt for Tensor {
    fn then<M: Module + ?Sized>(&self, module: &M) -> Result<Tensor> {
        module.forward(self)
    }

    fn then_each<M: Module>(&self, modules: &[M]) -> Result<Tensor> {
        modules.iter().try_fold(self.clone(), |x, m| m.forward(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Gelu, Linear, ReLU};
    use candle_core::{DType, Device};

    #[test]
    fn then_is_forward_in_data_order() -> Result<()> {
        let (fc, act) = (Linear::new(4, 3, true)?, Gelu::default());
        let x = Tensor::randn(0f32, 1.0, (2, 4), &Device::Cpu)?;
        let chained = x.then(&fc)?.then(&act)?;
        let nested = act.forward(&fc.forward(&x)?)?;
        assert_eq!(chained.to_vec2::<f32>()?, nested.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn then_each_runs_every_module_in_order() -> Result<()> {
        let layers = vec![Linear::new(3, 3, true)?, Linear::new(3, 3, true)?];
        let x = Tensor::ones((1, 3), DType::F32, &Device::Cpu)?;
        let want = layers[1].forward(&layers[0].forward(&x)?)?;
        assert_eq!(
            x.then_each(&layers)?.to_vec2::<f32>()?,
            want.to_vec2::<f32>()?
        );
        let none: Vec<ReLU> = Vec::new();
        assert_eq!(x.then_each(&none)?.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
        Ok(())
    }
}
