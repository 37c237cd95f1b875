//! `DistributedDataParallel`: one process (rank) per device, gradients averaged across ranks
//! so every rank takes the same optimizer step — PyTorch's DDP on kiln's [`Communicator`]s.
//!
//! What matches PyTorch: rank 0's parameters and buffers are broadcast at construction;
//! gradients are averaged in buckets built in reverse parameter order (first bucket 1 MiB,
//! then `bucket_cap_mb`, 25 MiB by default); only parameters that require a gradient take
//! part; `no_sync` skips the reduction for gradient accumulation; the state dict keys carry
//! the `module.` prefix. What differs: PyTorch launches each bucket's all-reduce from
//! autograd hooks while backward is still running; candle's backward has no hooks, so kiln
//! reduces the buckets right after backward ([`DistributedDataParallel::reduce_gradients`]).
//! The result is the same; only the overlap of communication with computation is lost.

use super::comm::Communicator;
use crate::error::{Context, Error, Result};
use crate::io::value::tensor_bytes;
use crate::nn::module::call_child;
use crate::nn::{Module, ModuleSpec, Param};
use crate::optim::Grads;
use candle_core::{DType, Tensor};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// DDP options.
#[derive(Clone, Copy, Debug)]
pub struct DdpOptions {
    /// Size cap of each gradient bucket after the first, in MiB (PyTorch: 25).
    pub bucket_cap_mb: f64,
    /// Size cap of the first bucket, in MiB (PyTorch: 1).
    pub first_bucket_mb: f64,
    /// Whether to broadcast rank 0's buffers (BatchNorm statistics) before each forward
    /// (PyTorch's `broadcast_buffers=True`).
    pub broadcast_buffers: bool,
}

impl Default for DdpOptions {
    fn default() -> Self {
        DdpOptions {
            bucket_cap_mb: 25.0,
            first_bucket_mb: 1.0,
            broadcast_buffers: true,
        }
    }
}

/// A module replicated across processes, with averaged gradients.
pub struct DistributedDataParallel {
    module: Box<dyn Module>,
    comm: Arc<dyn Communicator>,
    opts: DdpOptions,
    sync: AtomicBool,
}

/// While alive, [`DistributedDataParallel::reduce_gradients`] does nothing (PyTorch's
/// `with ddp.no_sync():`); accumulate gradients locally and reduce on the last micro-batch.
pub struct NoSync<'a> {
    ddp: &'a DistributedDataParallel,
}

impl Drop for NoSync<'_> {
    fn drop(&mut self) {
        self.ddp.sync.store(true, Ordering::SeqCst);
    }
}

/// FNV-1a over the model's parameter and buffer names, shapes and dtypes.
fn signature(m: &dyn Module) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for (k, t) in m.state_dict().iter() {
        feed(&format!("{k}{:?}{:?}", t.dims(), t.dtype()));
    }
    h
}

impl DistributedDataParallel {
    /// Wraps `module`: checks that every rank holds the same architecture, then copies rank
    /// 0's parameters and buffers to every rank.
    ///
    /// # Errors
    /// `K0802` when ranks disagree on the model (names, shapes or dtypes) or a collective
    /// fails.
    pub fn new(
        module: Box<dyn Module>,
        comm: Arc<dyn Communicator>,
        opts: DdpOptions,
    ) -> Result<Self> {
        let sig = signature(module.as_ref());
        let mut root = sig.to_le_bytes();
        comm.broadcast(&mut root, 0)?;
        let mismatch = if u64::from_le_bytes(root) == sig {
            0.0
        } else {
            1.0
        };
        let mut flag = [mismatch];
        comm.all_reduce_sum_f64(&mut flag)?;
        if flag[0] > 0.0 {
            return Err(Error::Distributed {
                detail: format!(
                    "ranks disagree on the model: {} of {} ranks hold parameters whose names, shapes or dtypes differ from rank 0's ({} on rank 0); build the same model with the same options on every rank (CLI: the same --model and flags)",
                    flag[0] as usize,
                    comm.world_size(),
                    module.type_name()
                ),
            });
        }
        let ddp = DistributedDataParallel {
            module,
            comm,
            opts,
            sync: AtomicBool::new(true),
        };
        ddp.broadcast_state()?;
        Ok(ddp)
    }

    /// Copies rank 0's parameters and buffers to every rank.
    pub fn broadcast_state(&self) -> Result<()> {
        for p in self.module.parameters() {
            let t = p.detached();
            let b = self.broadcast_tensor(&t)?;
            p.set(&b)?;
        }
        self.broadcast_buffers()
    }

    fn broadcast_buffers(&self) -> Result<()> {
        for (_, b) in self.module.named_buffers() {
            let t = self.broadcast_tensor(&b.get())?;
            b.replace(t);
        }
        Ok(())
    }

    fn broadcast_tensor(&self, t: &Tensor) -> Result<Tensor> {
        let cpu = t
            .to_device(&candle_core::Device::Cpu)
            .ctx("DDP broadcast")?;
        let mut bytes = tensor_bytes(&cpu)?;
        self.comm.broadcast(&mut bytes, 0)?;
        Tensor::from_raw_buffer(&bytes, t.dtype(), t.dims(), &candle_core::Device::Cpu)
            .and_then(|x| x.to_device(t.device()))
            .ctx("DDP broadcast")
    }

    /// The wrapped module (`ddp.module`).
    pub fn module(&self) -> &dyn Module {
        self.module.as_ref()
    }

    /// The communicator.
    pub fn comm(&self) -> &Arc<dyn Communicator> {
        &self.comm
    }

    /// Skips gradient reduction until the guard is dropped.
    pub fn no_sync(&self) -> NoSync<'_> {
        self.sync.store(false, Ordering::SeqCst);
        NoSync { ddp: self }
    }

    /// The buckets for the current trainable parameters: indices into `parameters()`, in
    /// reverse registration order, capped at 1 MiB for the first bucket and `bucket_cap_mb`
    /// after.
    pub fn buckets(&self) -> Vec<Vec<usize>> {
        let params = self.module.parameters();
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut cur = Vec::new();
        let mut bytes = 0usize;
        let cap = |first: bool| {
            let mb = if first {
                self.opts.first_bucket_mb
            } else {
                self.opts.bucket_cap_mb
            };
            (mb * 1024.0 * 1024.0).max(1.0) as usize
        };
        for (i, p) in params.iter().enumerate().rev() {
            if !p.requires_grad() {
                continue;
            }
            let size = p.elem_count() * p.dtype().size_in_bytes();
            if !cur.is_empty() && bytes + size > cap(out.is_empty()) {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
            cur.push(i);
            bytes += size;
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    /// Averages `grads` over all ranks, bucket by bucket (a no-op inside [`Self::no_sync`]).
    /// A trainable parameter with no local gradient contributes zeros.
    ///
    /// # Errors
    /// `K0802` when a collective fails.
    pub fn reduce_gradients(&self, grads: &mut Grads) -> Result<()> {
        if !self.sync.load(Ordering::SeqCst) {
            return Ok(());
        }
        let world = self.comm.world_size();
        if world <= 1 {
            return Ok(());
        }
        let params = self.module.parameters();
        for bucket in self.buckets() {
            let members: Vec<&Param> = bucket.iter().filter_map(|&i| params.get(i)).collect();
            let mut flat: Vec<f64> = Vec::new();
            let mut f32_flat: Vec<f32> = Vec::new();
            let all_f32 = members.iter().all(|p| p.dtype() == DType::F32);
            for p in &members {
                let g = match grads.get(p) {
                    Some(g) => g.clone(),
                    None => p.detached().zeros_like().ctx("DDP zero gradient")?,
                };
                let g = g
                    .to_device(&candle_core::Device::Cpu)
                    .and_then(|g| g.flatten_all())
                    .ctx("DDP bucket")?;
                if all_f32 {
                    f32_flat.extend(g.to_vec1::<f32>().ctx("DDP bucket")?);
                } else {
                    flat.extend(
                        g.to_dtype(DType::F64)
                            .and_then(|g| g.to_vec1::<f64>())
                            .ctx("DDP bucket")?,
                    );
                }
            }
            if all_f32 {
                self.comm.all_reduce_sum(&mut f32_flat)?;
                let inv = 1.0 / world as f32;
                f32_flat.iter_mut().for_each(|x| *x *= inv);
            } else {
                self.comm.all_reduce_sum_f64(&mut flat)?;
                let inv = 1.0 / world as f64;
                flat.iter_mut().for_each(|x| *x *= inv);
            }
            let mut off = 0;
            for p in &members {
                let n = p.elem_count();
                let t = if all_f32 {
                    Tensor::from_slice(&f32_flat[off..off + n], p.dims(), &candle_core::Device::Cpu)
                } else {
                    Tensor::from_slice(&flat[off..off + n], p.dims(), &candle_core::Device::Cpu)
                };
                let t = t
                    .and_then(|t| t.to_dtype(p.dtype()))
                    .and_then(|t| t.to_device(&p.device()))
                    .ctx("DDP bucket")?;
                grads.insert(p.id(), t);
                off += n;
            }
        }
        Ok(())
    }
}

impl Module for DistributedDataParallel {
    fn type_name(&self) -> &'static str {
        "DistributedDataParallel"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.opts.broadcast_buffers && self.comm.world_size() > 1 && self.module.is_training() {
            self.broadcast_buffers()?;
        }
        call_child("module", self.module.as_ref(), x)
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("module".to_string(), self.module.as_ref())]
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        (name == "module").then(|| self.module.as_mut() as &mut dyn Module)
    }

    fn get_submodule(&self, path: &str) -> Result<&dyn Module> {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        if first != "module" {
            return Err(Error::WrappedAttribute {
                wrapper: "DistributedDataParallel".into(),
                attribute: first.to_string(),
            });
        }
        if rest.is_empty() {
            Ok(self.module.as_ref())
        } else {
            self.module.get_submodule(rest)
        }
    }

    fn spec(&self) -> ModuleSpec {
        // The process group does not survive the process: a saved DDP model comes back as a
        // single-device DataParallel wrapper, which keeps the `module.` keys and the forward.
        ModuleSpec::new("DataParallel")
            .with(
                "device_ids",
                vec![crate::device::device_name(
                    &self
                        .module
                        .parameters()
                        .first()
                        .map(|p| p.device())
                        .unwrap_or(candle_core::Device::Cpu),
                )],
            )
            .child("module", self.module.spec())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
