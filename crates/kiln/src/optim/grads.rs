//! `Grads`: gradients keyed by parameter identity (PyTorch's `p.grad` for every parameter).
//!
//! Keying by [`ParamId`] rather than by candle tensor id lets gradients computed elsewhere
//! (DataParallel replicas, other ranks) be summed onto the original parameters, and lets
//! gradient accumulation add several backward passes.

use crate::error::{Context, Error, Result};
use crate::nn::{Param, ParamId};
use candle_core::Tensor;
use std::collections::HashMap;

/// Gradients of parameters, by parameter identity.
#[derive(Clone, Debug, Default)]
pub struct Grads {
    map: HashMap<ParamId, Tensor>,
}

impl Grads {
    /// An empty set (every parameter's gradient is "None").
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs backward from `loss` and collects the gradients of `params` (frozen parameters
    /// and parameters the loss does not reach get none, like PyTorch's `grad is None`).
    ///
    /// # Errors
    /// `K0207` when no parameter in `params` requires a gradient (PyTorch: element 0 of
    /// tensors does not require grad and does not have a grad_fn).
    pub fn backward(loss: &Tensor, params: &[Param]) -> Result<Grads> {
        let trainable = params.iter().filter(|p| p.requires_grad()).count();
        if trainable == 0 {
            return Err(Error::NothingRequiresGrad {
                frozen: params.len(),
                trainable: 0,
            });
        }
        let store = loss.backward().ctx("backward")?;
        let mut map = HashMap::with_capacity(trainable);
        for p in params {
            if let Some(g) = p.grad(&store) {
                map.insert(p.id(), g);
            }
        }
        Ok(Grads { map })
    }

    /// The gradient of `p`, if any.
    pub fn get(&self, p: &Param) -> Option<&Tensor> {
        self.map.get(&p.id())
    }

    /// The gradient for an id.
    pub fn get_id(&self, id: ParamId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Sets the gradient of a parameter.
    pub fn insert(&mut self, id: ParamId, grad: Tensor) {
        self.map.insert(id, grad);
    }

    /// Removes a gradient.
    pub fn remove(&mut self, id: ParamId) -> Option<Tensor> {
        self.map.remove(&id)
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds `other` into `self` (gradient accumulation; ids missing here are inserted).
    pub fn accumulate(&mut self, other: &Grads) -> Result<()> {
        for (id, g) in &other.map {
            match self.map.get_mut(id) {
                Some(cur) => *cur = cur.add(g).ctx("accumulate gradients")?,
                None => {
                    self.map.insert(*id, g.clone());
                }
            }
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor` (e.g. `1/world_size`).
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        for g in self.map.values_mut() {
            *g = (&*g * factor).ctx("scale gradients")?;
        }
        Ok(())
    }

    /// Iterates over `(id, grad)`.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamId, &Tensor)> {
        self.map.iter()
    }
}
