//! `--ddp-verify`: checks after every step that all ranks hold bit-identical parameters.

use super::hooks::{Hook, StepReport};
use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::parallel::Communicator;
use std::sync::Arc;

/// FNV-1a over the exact bytes of every parameter.
fn fingerprint(t: &Trainer) -> Result<u64> {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in t.model.parameters() {
        let cpu = p
            .detached()
            .to_device(&candle_core::Device::Cpu)
            .map_err(|e| Error::backend("ddp verify", e))?;
        for b in crate::io::value::tensor_bytes(&cpu)? {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    Ok(h)
}

/// A hook comparing every rank's parameters with rank 0's after each optimizer step.
pub struct DdpVerify {
    comm: Arc<dyn Communicator>,
    /// Steps verified so far.
    pub steps: u64,
}

impl DdpVerify {
    /// A verifier over `comm`.
    pub fn new(comm: Arc<dyn Communicator>) -> Self {
        DdpVerify { comm, steps: 0 }
    }
}

impl Hook for DdpVerify {
    fn on_step(&mut self, t: &Trainer, _s: &StepReport) -> Result<()> {
        let mine = fingerprint(t)?;
        let mut root = mine.to_le_bytes();
        self.comm.broadcast(&mut root, 0)?;
        let mut differ = [if u64::from_le_bytes(root) == mine {
            0.0
        } else {
            1.0
        }];
        self.comm.all_reduce_sum_f64(&mut differ)?;
        if differ[0] > 0.0 {
            return Err(Error::Distributed {
                detail: format!(
                    "after step {} {} rank(s) hold parameters that differ from rank 0's",
                    t.state.global_step, differ[0] as usize
                ),
            });
        }
        self.steps += 1;
        Ok(())
    }
}
