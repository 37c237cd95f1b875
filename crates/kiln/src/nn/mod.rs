//! Modules, parameters, layers, losses and state dicts: kiln's `torch.nn`.

#[doc(hidden)]
pub mod derive_support;
pub mod functional;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod ops;
pub mod param;
pub mod registry;
pub mod spec;
pub mod state_dict;

/// `#[derive(Module)]`: see [`kiln_derive`](https://docs.rs/kiln-derive) and the library guide.
pub use kiln_derive::Module;
pub use layers::Conv2dConfig;
pub use layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Identity, Linear, MaxPool2d,
    ModuleList, ReLU, Sequential,
};
pub use layers::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, Elu, Embedding, Gelu, GeluApproximate, Hardsigmoid,
    Hardswish, LayerNorm, LayerNormConfig, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Sigmoid,
    Softmax, Softplus, Tanh,
};
pub use layers::{LayerNorm2d, StochasticDepth, StochasticDepthMode, stochastic_depth};
pub use module::Module;
pub use param::{Buffer, Param, ParamId};
pub use spec::{ModuleSpec, NamedSpec};
pub use state_dict::{LoadReport, ShapeMismatch, StateDict};
