//! The Transformer layers: PyTorch's `nn.TransformerEncoderLayer`, `nn.TransformerEncoder`,
//! `nn.TransformerDecoderLayer` and `nn.TransformerDecoder` (post-norm or `norm_first`,
//! ReLU or GELU feed-forward), with PyTorch's child names and state-dict keys.

use super::attention::{AttentionArgs, MultiheadAttention, MultiheadAttentionConfig};
use super::{Dropout, LayerNorm, LayerNormConfig, Linear, impl_as_any};
use crate::error::{Error, Result};
use crate::nn::functional::{GeluApproximate, gelu};
use crate::nn::module::call_child;
use crate::nn::{Module, ModuleSpec};
use candle_core::Tensor;

/// The feed-forward activation of a Transformer layer (PyTorch's `activation="relu"` /
/// `"gelu"`; GELU is the exact `erf` form, `F.gelu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransformerActivation {
    /// `F.relu`, PyTorch's default.
    #[default]
    Relu,
    /// `F.gelu` (exact).
    Gelu,
}

impl TransformerActivation {
    /// Parses PyTorch's spelling, `"relu"` or `"gelu"`.
    ///
    /// # Errors
    /// `K0003` for any other string (PyTorch: activation should be relu/gelu, not …).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(TransformerActivation::Relu),
            "gelu" => Ok(TransformerActivation::Gelu),
            other => Err(Error::invalid(
                "Transformer activation",
                format!("'{other}'"),
                "'relu' or 'gelu' (PyTorch: activation should be relu/gelu)",
            )),
        }
    }

    /// PyTorch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransformerActivation::Relu => "relu",
            TransformerActivation::Gelu => "gelu",
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            TransformerActivation::Relu => crate::nn::ops::relu(x),
            TransformerActivation::Gelu => gelu(x, GeluApproximate::None),
        }
    }
}

/// The options of the Transformer layers besides `d_model` and `nhead`, with PyTorch's
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerLayerConfig {
    /// Width of the feed-forward block; default 2048.
    pub dim_feedforward: usize,
    /// Dropout probability (attention weights, feed-forward, residual branches); default 0.1.
    pub dropout: f64,
    /// Feed-forward activation; default ReLU.
    pub activation: TransformerActivation,
    /// LayerNorm `eps`; default `1e-5`.
    pub layer_norm_eps: f64,
    /// `(batch, seq, feature)` inputs; default false (`(seq, batch, feature)`).
    pub batch_first: bool,
    /// Pre-norm (`x + f(norm(x))`) instead of post-norm (`norm(x + f(x))`); default false.
    pub norm_first: bool,
    /// Biases in the Linear and LayerNorm layers; default true.
    pub bias: bool,
}

impl Default for TransformerLayerConfig {
    fn default() -> Self {
        TransformerLayerConfig {
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: TransformerActivation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }
}

impl TransformerLayerConfig {
    pub(crate) fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let d = Self::default();
        let activation = match spec.config.get("activation") {
            None => d.activation,
            Some(v) => TransformerActivation::parse(v.as_str().unwrap_or_default())?,
        };
        Ok(TransformerLayerConfig {
            dim_feedforward: spec.usize_or("dim_feedforward", d.dim_feedforward)?,
            dropout: spec.f64_or("dropout", d.dropout)?,
            activation,
            layer_norm_eps: spec.f64_or("layer_norm_eps", d.layer_norm_eps)?,
            batch_first: spec.bool_or("batch_first", d.batch_first)?,
            norm_first: spec.bool_or("norm_first", d.norm_first)?,
            bias: spec.bool_or("bias", d.bias)?,
        })
    }

    fn to_spec(self, s: ModuleSpec) -> ModuleSpec {
        s.with("dim_feedforward", self.dim_feedforward)
            .with("dropout", self.dropout)
            .with("activation", self.activation.as_str())
            .with("layer_norm_eps", self.layer_norm_eps)
            .with("batch_first", self.batch_first)
            .with("norm_first", self.norm_first)
            .with("bias", self.bias)
    }

    fn attention(self) -> MultiheadAttentionConfig {
        MultiheadAttentionConfig {
            dropout: self.dropout,
            bias: self.bias,
            batch_first: self.batch_first,
            ..MultiheadAttentionConfig::default()
        }
    }

    fn norm(self, d_model: usize) -> Result<LayerNorm> {
        LayerNorm::with(
            &[d_model],
            LayerNormConfig {
                eps: self.layer_norm_eps,
                elementwise_affine: true,
                bias: self.bias,
            },
        )
    }
}

/// The masks of [`TransformerEncoderLayer::forward_with`] and
/// [`TransformerEncoder::forward_with`] (conventions of [`AttentionArgs`]: integer masks
/// are PyTorch's `bool`, `True` = masked; float masks are added).
#[derive(Clone, Copy, Debug, Default)]
pub struct EncoderArgs<'a> {
    /// `src_mask`: `(S, S)` or `(N·nhead, S, S)`.
    pub src_mask: Option<&'a Tensor>,
    /// `src_key_padding_mask`: `(N, S)`.
    pub src_key_padding_mask: Option<&'a Tensor>,
    /// A hint that `src_mask` is the causal mask.
    pub is_causal: bool,
}

/// The feed-forward block `linear2(dropout(activation(linear1(x))))` shared by both layers.
fn feed_forward(
    linear1: &Linear,
    dropout: &Dropout,
    linear2: &Linear,
    act: TransformerActivation,
    x: &Tensor,
) -> Result<Tensor> {
    let h = call_child("linear1", linear1, x)?;
    let h = dropout.forward(&act.apply(&h)?)?;
    call_child("linear2", linear2, &h)
}

fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    crate::error::Context::ctx(a + b, "Transformer residual")
}

fn self_attention(
    attn: &MultiheadAttention,
    name: &str,
    q: &Tensor,
    kv: &Tensor,
    mask: Option<&Tensor>,
    kpm: Option<&Tensor>,
    is_causal: bool,
) -> Result<Tensor> {
    let args = AttentionArgs {
        key_padding_mask: kpm,
        need_weights: false,
        attn_mask: mask,
        average_attn_weights: true,
        is_causal,
    };
    attn.forward_with(q, kv, kv, args)
        .map(|(y, _)| y)
        .map_err(|e| e.within(name))
}

/// One encoder block: self-attention and a feed-forward network, each with a residual
/// connection, dropout and LayerNorm. Children (and state-dict keys) as PyTorch's:
/// `self_attn`, `linear1`, `dropout`, `linear2`, `norm1`, `norm2`, `dropout1`, `dropout2`.
pub struct TransformerEncoderLayer {
    d_model: usize,
    nhead: usize,
    cfg: TransformerLayerConfig,
    self_attn: MultiheadAttention,
    linear1: Linear,
    dropout: Dropout,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
}

impl TransformerEncoderLayer {
    /// `TransformerEncoderLayer(d_model, nhead)` with PyTorch's defaults.
    ///
    /// # Errors
    /// `K0003` when `d_model` is not divisible by `nhead` (or either is 0).
    pub fn new(d_model: usize, nhead: usize) -> Result<Self> {
        Self::with(d_model, nhead, TransformerLayerConfig::default())
    }

    /// With explicit options.
    ///
    /// # Errors
    /// As [`TransformerEncoderLayer::new`]; `K0003` for a dropout outside `[0, 1]`, a zero
    /// `dim_feedforward` or a negative `layer_norm_eps`.
    pub fn with(d_model: usize, nhead: usize, cfg: TransformerLayerConfig) -> Result<Self> {
        check_ff(cfg)?;
        Ok(TransformerEncoderLayer {
            d_model,
            nhead,
            cfg,
            self_attn: MultiheadAttention::with(d_model, nhead, cfg.attention())?,
            linear1: Linear::new(d_model, cfg.dim_feedforward, cfg.bias)?,
            dropout: Dropout::new(cfg.dropout)?,
            linear2: Linear::new(cfg.dim_feedforward, d_model, cfg.bias)?,
            norm1: cfg.norm(d_model)?,
            norm2: cfg.norm(d_model)?,
            dropout1: Dropout::new(cfg.dropout)?,
            dropout2: Dropout::new(cfg.dropout)?,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped config entry; as [`TransformerEncoderLayer::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Self::with(
            spec.usize("d_model")?,
            spec.usize("nhead")?,
            TransformerLayerConfig::from_spec(spec)?,
        )
    }

    /// A copy with the same configuration and the same weights (PyTorch's `deepcopy`, as
    /// `TransformerEncoder` clones its layer).
    ///
    /// # Errors
    /// Backend errors only.
    pub fn try_clone(&self) -> Result<Self> {
        let c = Self::with(self.d_model, self.nhead, self.cfg)?;
        c.load_state_dict(&self.state_dict(), true)?;
        c.train(self.is_training());
        Ok(c)
    }

    /// The options.
    pub fn config(&self) -> TransformerLayerConfig {
        self.cfg
    }

    /// The self-attention block.
    pub fn self_attn(&self) -> &MultiheadAttention {
        &self.self_attn
    }

    /// PyTorch's `forward(src, src_mask, src_key_padding_mask, is_causal)`.
    ///
    /// # Errors
    /// As [`MultiheadAttention::forward_with`] (`K0220` for a wrong input or mask shape).
    pub fn forward_with(&self, src: &Tensor, args: EncoderArgs<'_>) -> Result<Tensor> {
        let sa = |x: &Tensor| -> Result<Tensor> {
            let y = self_attention(
                &self.self_attn,
                "self_attn",
                x,
                x,
                args.src_mask,
                args.src_key_padding_mask,
                args.is_causal,
            )?;
            self.dropout1.forward(&y)
        };
        let ff = |x: &Tensor| -> Result<Tensor> {
            let y = feed_forward(
                &self.linear1,
                &self.dropout,
                &self.linear2,
                self.cfg.activation,
                x,
            )?;
            self.dropout2.forward(&y)
        };
        if self.cfg.norm_first {
            let x = add(src, &sa(&call_child("norm1", &self.norm1, src)?)?)?;
            add(&x, &ff(&call_child("norm2", &self.norm2, &x)?)?)
        } else {
            let x = call_child("norm1", &self.norm1, &add(src, &sa(src)?)?)?;
            call_child("norm2", &self.norm2, &add(&x, &ff(&x)?)?)
        }
    }
}

fn check_ff(cfg: TransformerLayerConfig) -> Result<()> {
    if cfg.dim_feedforward == 0 {
        return Err(Error::invalid(
            "Transformer dim_feedforward",
            0,
            "a positive width",
        ));
    }
    Ok(())
}

impl Module for TransformerEncoderLayer {
    fn type_name(&self) -> &'static str {
        "TransformerEncoderLayer"
    }

    /// `forward(src)` without masks.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, EncoderArgs::default())
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("self_attn".into(), &self.self_attn as &dyn Module),
            ("linear1".into(), &self.linear1),
            ("dropout".into(), &self.dropout),
            ("linear2".into(), &self.linear2),
            ("norm1".into(), &self.norm1),
            ("norm2".into(), &self.norm2),
            ("dropout1".into(), &self.dropout1),
            ("dropout2".into(), &self.dropout2),
        ]
    }

    fn spec(&self) -> ModuleSpec {
        self.cfg.to_spec(
            ModuleSpec::new("TransformerEncoderLayer")
                .with("d_model", self.d_model)
                .with("nhead", self.nhead),
        )
    }

    impl_as_any!();
}

/// `num_layers` copies of one [`TransformerEncoderLayer`] (same initial weights, as
/// PyTorch's `deepcopy`) and an optional final norm. Keys `layers.0.self_attn.…`, `norm.…`.
///
/// Difference from PyTorch: in evaluation mode *under `torch.no_grad()`*, PyTorch runs a
/// `batch_first`, post-norm encoder given a left-aligned `src_key_padding_mask` on nested
/// tensors, and the padded positions come out as zeros (then the final norm's bias). kiln
/// computes those positions like PyTorch does with gradients enabled or in training; the
/// positions that are not padding agree either way.
pub struct TransformerEncoder {
    layers: Vec<TransformerEncoderLayer>,
    norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `TransformerEncoder(encoder_layer, num_layers, norm)`.
    ///
    /// # Errors
    /// `K0003` for `num_layers == 0`.
    pub fn new(
        encoder_layer: TransformerEncoderLayer,
        num_layers: usize,
        norm: Option<LayerNorm>,
    ) -> Result<Self> {
        if num_layers == 0 {
            return Err(Error::invalid(
                "TransformerEncoder num_layers",
                0,
                "at least one layer",
            ));
        }
        let mut layers = Vec::with_capacity(num_layers.min(1024));
        for _ in 1..num_layers {
            layers.push(encoder_layer.try_clone()?);
        }
        layers.push(encoder_layer);
        Ok(TransformerEncoder { layers, norm })
    }

    /// The layers.
    pub fn layers(&self) -> &[TransformerEncoderLayer] {
        &self.layers
    }

    /// PyTorch's `forward(src, mask, src_key_padding_mask, is_causal)`: every layer with the
    /// same masks, then the norm.
    ///
    /// # Errors
    /// As [`TransformerEncoderLayer::forward_with`], the layer's index in the message.
    pub fn forward_with(&self, src: &Tensor, args: EncoderArgs<'_>) -> Result<Tensor> {
        let mut x = src.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l
                .forward_with(&x, args)
                .map_err(|e| e.within(&i.to_string()).within("layers"))?;
        }
        match &self.norm {
            Some(n) => call_child("norm", n, &x),
            None => Ok(x),
        }
    }
}

impl Module for TransformerEncoder {
    fn type_name(&self) -> &'static str {
        "TransformerEncoder"
    }

    /// `forward(src)` without masks.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, EncoderArgs::default())
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut v = vec![("layers".to_string(), &self.layers as &dyn Module)];
        if let Some(n) = &self.norm {
            v.push(("norm".into(), n));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        stack_spec("TransformerEncoder", &self.layers, self.norm.as_ref())
    }

    impl_as_any!();
}

fn stack_spec<M: Module>(name: &str, layers: &[M], norm: Option<&LayerNorm>) -> ModuleSpec {
    let mut s = ModuleSpec::new(name).with("num_layers", layers.len());
    if let Some(l) = layers.first() {
        s = s.child("layer", l.spec());
    }
    if let Some(n) = norm {
        s = s.child("norm", n.spec());
    }
    s
}

/// Builds a `TransformerEncoder` / `TransformerDecoder` from its spec: the `layer` child is
/// cloned `num_layers` times (the weights are loaded afterwards).
pub(crate) fn stack_from_spec(
    spec: &ModuleSpec,
    mut children: Vec<(String, Box<dyn Module>)>,
) -> Result<Box<dyn Module>> {
    let owner = spec.type_name.clone();
    let layer = crate::nn::registry::take_child(&mut children, &owner, "layer")?;
    let norm = match children.iter().position(|(n, _)| n == "norm") {
        Some(i) => {
            Some(
                LayerNorm::from_boxed(children.remove(i).1).map_err(|_| Error::BadSpec {
                    detail: format!("{owner}: child 'norm' is not a LayerNorm"),
                })?,
            )
        }
        None => None,
    };
    let n = spec.usize("num_layers")?;
    let wrong = |want: &str| Error::BadSpec {
        detail: format!("{owner}: child 'layer' is not a {want}"),
    };
    if owner == "TransformerDecoder" {
        let l = TransformerDecoderLayer::from_boxed(layer)
            .map_err(|_| wrong("TransformerDecoderLayer"))?;
        Ok(Box::new(TransformerDecoder::new(l, n, norm)?))
    } else {
        let l = TransformerEncoderLayer::from_boxed(layer)
            .map_err(|_| wrong("TransformerEncoderLayer"))?;
        Ok(Box::new(TransformerEncoder::new(l, n, norm)?))
    }
}

/// The masks of [`TransformerDecoderLayer::forward_with`] and
/// [`TransformerDecoder::forward_with`] (conventions of [`AttentionArgs`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecoderArgs<'a> {
    /// `tgt_mask`: `(T, T)` or `(N·nhead, T, T)`.
    pub tgt_mask: Option<&'a Tensor>,
    /// `memory_mask`: `(T, S)` or `(N·nhead, T, S)`.
    pub memory_mask: Option<&'a Tensor>,
    /// `tgt_key_padding_mask`: `(N, T)`.
    pub tgt_key_padding_mask: Option<&'a Tensor>,
    /// `memory_key_padding_mask`: `(N, S)`.
    pub memory_key_padding_mask: Option<&'a Tensor>,
    /// A hint that `tgt_mask` is the causal mask.
    pub tgt_is_causal: bool,
    /// A hint that `memory_mask` is the causal mask.
    pub memory_is_causal: bool,
}

/// One decoder block: self-attention, attention over the encoder's `memory`, and a
/// feed-forward network. Children as PyTorch's: `self_attn`, `multihead_attn`, `linear1`,
/// `dropout`, `linear2`, `norm1`, `norm2`, `norm3`, `dropout1`, `dropout2`, `dropout3`.
pub struct TransformerDecoderLayer {
    d_model: usize,
    nhead: usize,
    cfg: TransformerLayerConfig,
    self_attn: MultiheadAttention,
    multihead_attn: MultiheadAttention,
    linear1: Linear,
    dropout: Dropout,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    norm3: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
    dropout3: Dropout,
}

impl TransformerDecoderLayer {
    /// `TransformerDecoderLayer(d_model, nhead)` with PyTorch's defaults.
    ///
    /// # Errors
    /// `K0003` when `d_model` is not divisible by `nhead` (or either is 0).
    pub fn new(d_model: usize, nhead: usize) -> Result<Self> {
        Self::with(d_model, nhead, TransformerLayerConfig::default())
    }

    /// With explicit options.
    ///
    /// # Errors
    /// As [`TransformerEncoderLayer::with`].
    pub fn with(d_model: usize, nhead: usize, cfg: TransformerLayerConfig) -> Result<Self> {
        check_ff(cfg)?;
        Ok(TransformerDecoderLayer {
            d_model,
            nhead,
            cfg,
            self_attn: MultiheadAttention::with(d_model, nhead, cfg.attention())?,
            multihead_attn: MultiheadAttention::with(d_model, nhead, cfg.attention())?,
            linear1: Linear::new(d_model, cfg.dim_feedforward, cfg.bias)?,
            dropout: Dropout::new(cfg.dropout)?,
            linear2: Linear::new(cfg.dim_feedforward, d_model, cfg.bias)?,
            norm1: cfg.norm(d_model)?,
            norm2: cfg.norm(d_model)?,
            norm3: cfg.norm(d_model)?,
            dropout1: Dropout::new(cfg.dropout)?,
            dropout2: Dropout::new(cfg.dropout)?,
            dropout3: Dropout::new(cfg.dropout)?,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped config entry; as [`TransformerDecoderLayer::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        Self::with(
            spec.usize("d_model")?,
            spec.usize("nhead")?,
            TransformerLayerConfig::from_spec(spec)?,
        )
    }

    /// A copy with the same configuration and weights.
    ///
    /// # Errors
    /// Backend errors only.
    pub fn try_clone(&self) -> Result<Self> {
        let c = Self::with(self.d_model, self.nhead, self.cfg)?;
        c.load_state_dict(&self.state_dict(), true)?;
        c.train(self.is_training());
        Ok(c)
    }

    /// The options.
    pub fn config(&self) -> TransformerLayerConfig {
        self.cfg
    }

    /// PyTorch's `forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
    /// memory_key_padding_mask, tgt_is_causal, memory_is_causal)`.
    ///
    /// # Errors
    /// As [`MultiheadAttention::forward_with`] (`K0220` for a wrong input or mask shape).
    pub fn forward_with(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        a: DecoderArgs<'_>,
    ) -> Result<Tensor> {
        let sa = |x: &Tensor| -> Result<Tensor> {
            let y = self_attention(
                &self.self_attn,
                "self_attn",
                x,
                x,
                a.tgt_mask,
                a.tgt_key_padding_mask,
                a.tgt_is_causal,
            )?;
            self.dropout1.forward(&y)
        };
        let mha = |x: &Tensor| -> Result<Tensor> {
            let y = self_attention(
                &self.multihead_attn,
                "multihead_attn",
                x,
                memory,
                a.memory_mask,
                a.memory_key_padding_mask,
                a.memory_is_causal,
            )?;
            self.dropout2.forward(&y)
        };
        let ff = |x: &Tensor| -> Result<Tensor> {
            let y = feed_forward(
                &self.linear1,
                &self.dropout,
                &self.linear2,
                self.cfg.activation,
                x,
            )?;
            self.dropout3.forward(&y)
        };
        if self.cfg.norm_first {
            let x = add(tgt, &sa(&call_child("norm1", &self.norm1, tgt)?)?)?;
            let x = add(&x, &mha(&call_child("norm2", &self.norm2, &x)?)?)?;
            add(&x, &ff(&call_child("norm3", &self.norm3, &x)?)?)
        } else {
            let x = call_child("norm1", &self.norm1, &add(tgt, &sa(tgt)?)?)?;
            let x = call_child("norm2", &self.norm2, &add(&x, &mha(&x)?)?)?;
            call_child("norm3", &self.norm3, &add(&x, &ff(&x)?)?)
        }
    }
}

fn needs_memory(what: &str) -> Error {
    Error::Unsupported {
        what: format!(
            "{what}.forward(x): a decoder needs the encoder's memory; call forward_with(tgt, memory, DecoderArgs::default())"
        ),
    }
}

impl Module for TransformerDecoderLayer {
    fn type_name(&self) -> &'static str {
        "TransformerDecoderLayer"
    }

    /// Always `K0005`: a decoder layer needs `memory` ([`TransformerDecoderLayer::forward_with`]).
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(needs_memory("TransformerDecoderLayer"))
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("self_attn".into(), &self.self_attn as &dyn Module),
            ("multihead_attn".into(), &self.multihead_attn),
            ("linear1".into(), &self.linear1),
            ("dropout".into(), &self.dropout),
            ("linear2".into(), &self.linear2),
            ("norm1".into(), &self.norm1),
            ("norm2".into(), &self.norm2),
            ("norm3".into(), &self.norm3),
            ("dropout1".into(), &self.dropout1),
            ("dropout2".into(), &self.dropout2),
            ("dropout3".into(), &self.dropout3),
        ]
    }

    fn spec(&self) -> ModuleSpec {
        self.cfg.to_spec(
            ModuleSpec::new("TransformerDecoderLayer")
                .with("d_model", self.d_model)
                .with("nhead", self.nhead),
        )
    }

    impl_as_any!();
}

/// `num_layers` copies of one [`TransformerDecoderLayer`] and an optional final norm
/// (PyTorch's `nn.TransformerDecoder`; keys `layers.0.…`, `norm.…`).
pub struct TransformerDecoder {
    layers: Vec<TransformerDecoderLayer>,
    norm: Option<LayerNorm>,
}

impl TransformerDecoder {
    /// `TransformerDecoder(decoder_layer, num_layers, norm)`.
    ///
    /// # Errors
    /// `K0003` for `num_layers == 0`.
    pub fn new(
        decoder_layer: TransformerDecoderLayer,
        num_layers: usize,
        norm: Option<LayerNorm>,
    ) -> Result<Self> {
        if num_layers == 0 {
            return Err(Error::invalid(
                "TransformerDecoder num_layers",
                0,
                "at least one layer",
            ));
        }
        let mut layers = Vec::with_capacity(num_layers.min(1024));
        for _ in 1..num_layers {
            layers.push(decoder_layer.try_clone()?);
        }
        layers.push(decoder_layer);
        Ok(TransformerDecoder { layers, norm })
    }

    /// PyTorch's `forward(tgt, memory, …)`: every layer with the same masks, then the norm.
    ///
    /// # Errors
    /// As [`TransformerDecoderLayer::forward_with`].
    pub fn forward_with(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        a: DecoderArgs<'_>,
    ) -> Result<Tensor> {
        let mut x = tgt.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l
                .forward_with(&x, memory, a)
                .map_err(|e| e.within(&i.to_string()).within("layers"))?;
        }
        match &self.norm {
            Some(n) => call_child("norm", n, &x),
            None => Ok(x),
        }
    }
}

impl Module for TransformerDecoder {
    fn type_name(&self) -> &'static str {
        "TransformerDecoder"
    }

    /// Always `K0005`: a decoder needs `memory` ([`TransformerDecoder::forward_with`]).
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(needs_memory("TransformerDecoder"))
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut v = vec![("layers".to_string(), &self.layers as &dyn Module)];
        if let Some(n) = &self.norm {
            v.push(("norm".into(), n));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        stack_spec("TransformerDecoder", &self.layers, self.norm.as_ref())
    }

    impl_as_any!();
}

/// PyTorch's `Transformer.generate_square_subsequent_mask(sz)`: an `(sz, sz)` float mask,
/// `0` on and below the diagonal and `-inf` above.
///
/// # Errors
/// Backend errors only.
pub fn generate_square_subsequent_mask(sz: usize) -> Result<Tensor> {
    super::sdpa::causal_bias(sz, sz, candle_core::DType::F32, &candle_core::Device::Cpu)
}
