//! Parameters and buffers: shared, in-place-updatable tensor handles.
//!
//! A [`Param`] is what `nn.Parameter` is in PyTorch: one object shared by the module that uses
//! it, the optimizer that updates it and `load_state_dict` that overwrites it. Cloning a
//! `Param` clones the handle, not the value. A trainable parameter holds a candle `Var` (so
//! backward computes its gradient); a frozen one holds a plain tensor, so backward skips it
//! entirely — freezing saves work, as it does in PyTorch.

use crate::error::{Context, Error, Result, shape_str};
use candle_core::{DType, Device, Tensor, Var};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A stable identity for a parameter handle (survives `to_device`, `set`, freezing).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u64);

enum Slot {
    Trainable(Var),
    Frozen(Tensor),
    /// A replica's view of another parameter (DataParallel): gradients flow back to the
    /// original through the autograd graph, so the replica itself never gets one.
    Bound {
        value: Tensor,
        requires_grad: bool,
    },
}

impl Slot {
    fn tensor(&self) -> &Tensor {
        match self {
            Slot::Trainable(v) => v.as_tensor(),
            Slot::Frozen(t) => t,
            Slot::Bound { value, .. } => value,
        }
    }
}

struct ParamInner {
    id: ParamId,
    slot: RwLock<Slot>,
    /// Set when a snapshot holds the current value: the next in-place update allocates a
    /// new value instead of overwriting (copy-on-write).
    shared: std::sync::atomic::AtomicBool,
}

/// A trainable tensor shared between a module, its optimizer and state-dict loading.
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.tensor();
        write!(
            f,
            "Param(id={}, shape={}, dtype={:?}, requires_grad={})",
            self.0.id.0,
            shape_str(t.dims()),
            t.dtype(),
            self.requires_grad()
        )
    }
}

fn read(lock: &RwLock<Slot>) -> RwLockReadGuard<'_, Slot> {
    // A poisoned lock only means another thread panicked while holding it; the slot itself
    // is always a complete value, so keep going.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Slot>) -> RwLockWriteGuard<'_, Slot> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Param {
    /// A new parameter holding a private copy of `value`.
    pub fn new(value: &Tensor, requires_grad: bool) -> Result<Self> {
        let value = value.detach().contiguous().ctx("Param::new")?;
        let slot = if requires_grad {
            Slot::Trainable(Var::from_tensor(&value.copy().ctx("Param::new")?).ctx("Param::new")?)
        } else {
            Slot::Frozen(value.copy().ctx("Param::new")?)
        };
        Ok(Param(Arc::new(ParamInner {
            id: ParamId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            slot: RwLock::new(slot),
            shared: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// Declares that a snapshot (an asynchronous checkpoint) holds the current value: the
    /// next in-place update ([`Param::set`]) gives the parameter a new value instead of
    /// overwriting this one, so the snapshot needs no copy.
    pub fn mark_shared(&self) {
        self.0.shared.store(true, Ordering::Release);
    }

    /// This handle's identity.
    pub fn id(&self) -> ParamId {
        self.0.id
    }

    /// Whether two handles are the same parameter.
    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The current value, for use in a forward pass (tracked by autograd when trainable).
    pub fn tensor(&self) -> Tensor {
        read(&self.0.slot).tensor().clone()
    }

    /// The current value, detached from autograd.
    pub fn detached(&self) -> Tensor {
        read(&self.0.slot).tensor().detach()
    }

    /// Runs `update` on a trainable parameter's own value, for kernels that change it in place
    /// as [`Param::set`] does (the fused SGD step), holding the parameter's lock throughout.
    /// `update` returns `Ok(None)` when it changed nothing (the caller then falls back to
    /// [`Param::set`]). Copy-on-write is kept: when a snapshot holds the current value
    /// ([`Param::mark_shared`]), `update` gets a fresh copy, which becomes the value only if
    /// `update` applied. Frozen and bound parameters are not touched (`Ok(None)`).
    ///
    /// # Errors
    /// Those of `update`, and backend errors copying a shared value.
    pub(crate) fn update_in_place<R>(
        &self,
        update: impl FnOnce(&Tensor) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        let mut slot = write(&self.0.slot);
        let Slot::Trainable(v) = &*slot else {
            return Ok(None);
        };
        if !self.0.shared.load(Ordering::Acquire) {
            return update(v.as_tensor());
        }
        // A snapshot holds the current value: update a copy and keep it only if applied.
        // (`Var::from_tensor` shares a variable's storage but copies a detached tensor's.)
        let fresh = Var::from_tensor(&v.as_tensor().detach()).ctx("Param::update_in_place")?;
        let r = update(fresh.as_tensor())?;
        if r.is_some() {
            *slot = Slot::Trainable(fresh);
            self.0.shared.store(false, Ordering::Release);
        }
        Ok(r)
    }

    /// Whether backward computes a gradient for this parameter.
    pub fn requires_grad(&self) -> bool {
        match &*read(&self.0.slot) {
            Slot::Trainable(_) => true,
            Slot::Frozen(_) => false,
            Slot::Bound { requires_grad, .. } => *requires_grad,
        }
    }

    /// Makes this parameter a view of `source` on `device` (DataParallel replicas): forward
    /// uses `source`'s value moved to `device`, and backward sends the gradient to `source`.
    pub fn bind_to(&self, source: &Param, device: &Device) -> Result<()> {
        let value = source
            .tensor()
            .to_device(device)
            .ctx("replicate parameter")?;
        let requires_grad = source.requires_grad();
        *write(&self.0.slot) = Slot::Bound {
            value,
            requires_grad,
        };
        Ok(())
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter, keeping its value and identity.
    pub fn set_requires_grad(&self, requires_grad: bool) -> Result<()> {
        let mut slot = write(&self.0.slot);
        match (&*slot, requires_grad) {
            (Slot::Trainable(v), false) => {
                let t = v.as_tensor().detach().copy().ctx("freeze parameter")?;
                *slot = Slot::Frozen(t);
            }
            (Slot::Frozen(t), true) => {
                let v = Var::from_tensor(&t.copy().ctx("unfreeze parameter")?)
                    .ctx("unfreeze parameter")?;
                *slot = Slot::Trainable(v);
            }
            (Slot::Bound { value, .. }, rg) => {
                let value = value.clone();
                *slot = Slot::Bound {
                    value,
                    requires_grad: rg,
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// Shape of the value.
    pub fn dims(&self) -> Vec<usize> {
        read(&self.0.slot).tensor().dims().to_vec()
    }

    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        read(&self.0.slot).tensor().elem_count()
    }

    /// The value's dtype.
    pub fn dtype(&self) -> DType {
        read(&self.0.slot).tensor().dtype()
    }

    /// The value's device.
    pub fn device(&self) -> Device {
        read(&self.0.slot).tensor().device().clone()
    }

    /// Overwrites the value in place (like `param.data.copy_(src)`): the shape must match;
    /// the source is cast to this parameter's dtype and moved to its device.
    ///
    /// # Errors
    /// `K0003` when the shapes differ.
    pub fn set(&self, src: &Tensor) -> Result<()> {
        let slot = write(&self.0.slot);
        let cur = slot.tensor();
        if cur.dims() != src.dims() {
            return Err(Error::invalid(
                "parameter value",
                shape_str(src.dims()),
                format!("shape {}", shape_str(cur.dims())),
            ));
        }
        let src = src
            .detach()
            .to_dtype(cur.dtype())
            .and_then(|t| t.to_device(cur.device()))
            .ctx("Param::set")?;
        let mut slot = slot;
        if self.0.shared.swap(false, Ordering::AcqRel) {
            // A snapshot holds the current value: give the parameter a new one.
            if let Slot::Trainable(_) = &*slot {
                let v = Var::from_tensor(&src.copy().ctx("Param::set")?).ctx("Param::set")?;
                *slot = Slot::Trainable(v);
                return Ok(());
            }
        }
        match &mut *slot {
            Slot::Trainable(v) => v.set(&src).ctx("Param::set")?,
            Slot::Frozen(t) | Slot::Bound { value: t, .. } => *t = src.copy().ctx("Param::set")?,
        }
        Ok(())
    }

    /// Replaces the value with one of possibly another dtype/device (used by `to_device`,
    /// `to_dtype`); identity and `requires_grad` are kept.
    pub fn replace(&self, value: &Tensor) -> Result<()> {
        let mut slot = write(&self.0.slot);
        let value = value.detach().contiguous().ctx("Param::replace")?;
        *slot = match &*slot {
            Slot::Trainable(_) => Slot::Trainable(
                Var::from_tensor(&value.copy().ctx("Param::replace")?).ctx("Param::replace")?,
            ),
            Slot::Frozen(_) | Slot::Bound { .. } => {
                Slot::Frozen(value.copy().ctx("Param::replace")?)
            }
        };
        Ok(())
    }

    /// The gradient of this parameter in `grads` (None when frozen or not reached).
    pub fn grad(&self, grads: &candle_core::backprop::GradStore) -> Option<Tensor> {
        match &*read(&self.0.slot) {
            Slot::Trainable(v) => grads.get(v.as_tensor()).cloned(),
            Slot::Frozen(_) | Slot::Bound { .. } => None,
        }
    }
}

/// A non-trainable tensor owned by a module (BatchNorm's running statistics).
#[derive(Clone)]
pub struct Buffer {
    value: Arc<RwLock<Tensor>>,
    persistent: bool,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.get();
        write!(
            f,
            "Buffer(shape={}, dtype={:?}, persistent={})",
            shape_str(t.dims()),
            t.dtype(),
            self.persistent
        )
    }
}

impl Buffer {
    /// A persistent buffer (saved in the state dict).
    pub fn new(value: Tensor) -> Self {
        Buffer {
            value: Arc::new(RwLock::new(value.detach())),
            persistent: true,
        }
    }

    /// A buffer left out of the state dict (`persistent=False` in PyTorch).
    pub fn non_persistent(value: Tensor) -> Self {
        Buffer {
            value: Arc::new(RwLock::new(value.detach())),
            persistent: false,
        }
    }

    /// Whether `state_dict` includes it.
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// The current value.
    pub fn get(&self) -> Tensor {
        self.value.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value (any dtype/device).
    pub fn replace(&self, value: Tensor) {
        *self.value.write().unwrap_or_else(|p| p.into_inner()) = value.detach();
    }

    /// Overwrites in place like a parameter: shape must match, dtype/device of the buffer kept.
    pub fn set(&self, src: &Tensor) -> Result<()> {
        let cur = self.get();
        if cur.dims() != src.dims() {
            return Err(Error::invalid(
                "buffer value",
                shape_str(src.dims()),
                format!("shape {}", shape_str(cur.dims())),
            ));
        }
        let v = src
            .detach()
            .to_dtype(cur.dtype())
            .and_then(|t| t.to_device(cur.device()))
            .and_then(|t| t.copy())
            .ctx("Buffer::set")?;
        self.replace(v);
        Ok(())
    }

    /// Whether two handles are the same buffer.
    pub fn same(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_identity_and_is_seen_by_clones() {
        let p = Param::new(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(), true).unwrap();
        let q = p.clone();
        p.set(&Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(q.tensor().to_vec1::<f32>().unwrap(), vec![1., 2., 3.]);
        assert!(q.requires_grad() && p.same(&q));
    }

    #[test]
    fn set_casts_dtype_and_rejects_shape() {
        let p = Param::new(&Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(), true).unwrap();
        p.set(&Tensor::new(&[1f64, 2.], &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(p.dtype(), DType::F32);
        assert!(
            p.set(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap())
                .is_err()
        );
    }

    #[test]
    fn frozen_param_gets_no_grad_and_unfreeze_restores() {
        let p = Param::new(&Tensor::ones(2, DType::F32, &Device::Cpu).unwrap(), true).unwrap();
        p.set_requires_grad(false).unwrap();
        let x = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
        let y = (p.tensor() * &x).unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        assert!(p.grad(&g).is_none());
        p.set_requires_grad(true).unwrap();
        let y = (p.tensor() * &x).unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        assert_eq!(p.grad(&g).unwrap().to_vec1::<f32>().unwrap(), vec![1., 1.]);
    }
}
