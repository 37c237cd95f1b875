//! Helpers shared by the optimizers' unit tests.

use super::Grads;
use crate::io::Value;
use crate::io::value::key_string;
use crate::nn::Param;
use candle_core::{Device, Tensor};

/// A trainable 1-D `f32` parameter.
pub(crate) fn param(v: &[f32]) -> Param {
    Param::new(&Tensor::new(v, &Device::Cpu).unwrap(), true).unwrap()
}

/// Gradients for some parameters.
pub(crate) fn grads(items: &[(&Param, &[f32])]) -> Grads {
    let mut g = Grads::new();
    for (p, v) in items {
        g.insert(p.id(), Tensor::new(*v, &Device::Cpu).unwrap());
    }
    g
}

/// A 1-D parameter's values.
pub(crate) fn vals(p: &Param) -> Vec<f32> {
    p.tensor().to_vec1::<f32>().unwrap()
}

/// A dict's keys as text.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    v.as_dict()
        .unwrap()
        .entries
        .iter()
        .map(|(k, _)| key_string(k))
        .collect()
}
