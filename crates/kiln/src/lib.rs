//! # kiln
//!
//! The whole life of a neural-network model in Rust, with PyTorch's semantics and file
//! formats: build and train it ([`nn`], [`optim`], [`data`], [`train`]), save and load it
//! ([`io`]), checkpoint and resume it bit-exactly ([`checkpoint`]), fine-tune it
//! ([`finetune`]), move it between devices and dtypes ([`device`]), and explain every user
//! mistake with a coded error ([`Error`]).
//!
//! Tensors, autograd and device kernels come from `candle-core`; everything about the
//! model's life cycle is kiln's.

pub mod amp;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod finetune;
pub mod io;
pub mod models;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod rng;
pub mod train;

pub use error::{Error, Result};
pub use io::{LoadOptions, load, save};
pub use nn::{Module, Param, StateDict};

/// What `#[derive(Module)]` expands to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::nn::derive_support::*;
}

/// Re-export of the tensor library kiln is built on.
pub use candle_core as candle;
