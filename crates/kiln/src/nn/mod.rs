//! Modules, parameters, layers, losses and state dicts: kiln's `torch.nn`.

pub mod chain;
#[doc(hidden)]
pub mod derive_support;
pub mod functional;
pub mod init;
pub mod layers;
pub mod lora;
pub mod loss;
pub mod module;
pub mod ops;
pub mod param;
pub mod registry;
pub mod spec;
pub mod state_dict;
pub mod utils;

pub use chain::TensorExt;
/// `#[derive(Module)]`: see [`kiln_derive`](https://docs.rs/kiln-derive) and the library guide.
pub use kiln_derive::Module;
pub use layers::Conv2dConfig;
pub use layers::{
    AdaptiveAvgPool1d, AdaptiveMaxPool2d, AvgPool1d, Conv1d, Conv1dConfig, ConvTranspose1d,
    ConvTranspose2d, ConvTransposeConfig, Dropout1d, Dropout2d, GroupNorm, InstanceNorm2d,
    InstanceNormConfig, MaxPool1d, ModuleDict, RMSNorm, Unflatten, Upsample, UpsampleMode,
    UpsampleTarget,
};
pub use layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Identity, Linear, MaxPool2d,
    ModuleList, ReLU, Sequential,
};
pub use layers::{AttentionArgs, MultiheadAttention, MultiheadAttentionConfig};
pub use layers::{
    BatchNorm1d, BatchNorm2d, BatchNormConfig, Elu, Embedding, Gelu, GeluApproximate, Hardsigmoid,
    Hardswish, LayerNorm, LayerNormConfig, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Sigmoid,
    Softmax, Softplus, Tanh,
};
pub use layers::{
    DecoderArgs, EncoderArgs, TransformerActivation, TransformerDecoder, TransformerDecoderLayer,
    TransformerEncoder, TransformerEncoderLayer, TransformerLayerConfig,
};
pub use layers::{GRU, GRUCell, LSTM, LSTMCell, RnnConfig};
pub use layers::{LayerNorm2d, StochasticDepth, StochasticDepthMode, stochastic_depth};
pub use module::Module;
pub use param::{Buffer, Param, ParamId};
pub use spec::{ModuleSpec, NamedSpec};
pub use state_dict::{LoadReport, ShapeMismatch, StateDict};
