//! `torch.nn.utils`: gradient clipping.

pub mod clip_grad;

pub use clip_grad::{clip_grad_norm, clip_grad_value, grad_norm};
