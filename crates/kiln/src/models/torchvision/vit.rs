//! torchvision's ViT-B/16 (`torchvision/models/vision_transformer.py`): `conv_proj` (16×16
//! patches), `class_token`, `encoder` (`pos_embedding`, `layers.encoder_layer_{i}` =
//! `EncoderBlock`, `ln`), `heads.head` (the head). Input 224×224, as torchvision asserts.

use super::ZooConfig;
use crate::error::{Context, Error, Result};
use crate::nn::init;
use crate::nn::{
    AttentionArgs, Conv2d, Conv2dConfig, Dropout, Gelu, LayerNorm, LayerNormConfig, Linear, Module,
    MultiheadAttention, MultiheadAttentionConfig, Param, Sequential,
};
use candle_core::{DType, Device, Tensor};

const EPS: f64 = 1e-6;

fn layer_norm(dim: usize) -> Result<LayerNorm> {
    LayerNorm::with(
        &[dim],
        LayerNormConfig {
            eps: EPS,
            ..Default::default()
        },
    )
}

/// torchvision's `EncoderBlock`: pre-norm self-attention and MLP, each with a residual.
/// Children `ln_1`, `self_attention` (batch-first MultiheadAttention), `dropout`, `ln_2`,
/// `mlp` (`MLPBlock` = Linear, GELU, Dropout, Linear, Dropout: keys `mlp.0.*`, `mlp.3.*`).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "EncoderBlock")]
pub struct EncoderBlock {
    ln_1: LayerNorm,
    self_attention: MultiheadAttention,
    dropout: Dropout,
    ln_2: LayerNorm,
    mlp: Sequential,
}

impl EncoderBlock {
    /// A block of width `hidden` with `heads` heads and an MLP of width `mlp_dim`; the MLP's
    /// Linear layers get torchvision's `xavier_uniform_` weights and `normal_(std=1e-6)`
    /// biases.
    ///
    /// # Errors
    /// `K0003` for widths not divisible by the heads, or zero sizes.
    pub fn new(heads: usize, hidden: usize, mlp_dim: usize, dropout: f64) -> Result<Self> {
        let attn = MultiheadAttentionConfig {
            batch_first: true,
            ..Default::default()
        };
        let (fc1, fc2) = (
            Linear::new(hidden, mlp_dim, true)?,
            Linear::new(mlp_dim, hidden, true)?,
        );
        for l in [&fc1, &fc2] {
            l.weight().set(&init::xavier_uniform(&l.weight().dims())?)?;
            if let Some(b) = l.bias() {
                b.set(&init::normal(&b.dims(), 1e-6)?)?;
            }
        }
        Ok(EncoderBlock {
            ln_1: layer_norm(hidden)?,
            self_attention: MultiheadAttention::with(hidden, heads, attn)?,
            dropout: Dropout::new(dropout)?,
            ln_2: layer_norm(hidden)?,
            mlp: Sequential::new()
                .with(fc1)
                .with(Gelu::default())
                .with(Dropout::new(dropout)?)
                .with(fc2)
                .with(Dropout::new(dropout)?),
        })
    }

    /// `x + dropout(attn(ln_1(x)))`, then `+ mlp(ln_2(·))`.
    ///
    /// # Errors
    /// As the layers inside.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let x = self.ln_1.forward(input)?;
        let args = AttentionArgs {
            need_weights: false,
            ..Default::default()
        };
        let (x, _) = self.self_attention.forward_with(&x, &x, &x, args)?;
        let x = (self.dropout.forward(&x)? + input).ctx("EncoderBlock residual")?;
        let y = self.mlp.forward(&self.ln_2.forward(&x)?)?;
        (x + y).ctx("EncoderBlock residual")
    }
}

/// torchvision's ViT `Encoder`: learned position embedding, dropout, the blocks, LayerNorm.
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "Encoder")]
pub struct Encoder {
    pos_embedding: Param,
    dropout: Dropout,
    layers: Sequential,
    ln: LayerNorm,
}

impl Encoder {
    /// Runs the encoder on `[N, seq_length, hidden]`.
    ///
    /// # Errors
    /// `K0003` when the sequence length differs from the position embedding's.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pos = self.pos_embedding.tensor();
        if x.dims().get(1) != pos.dims().get(1) {
            return Err(Error::invalid(
                "ViT sequence length",
                format!("{:?}", x.dims()),
                format!(
                    "{} tokens (1 class token + the 14×14 patches of a 224×224 image; torchvision asserts the image size too)",
                    pos.dims().get(1).copied().unwrap_or(0)
                ),
            ));
        }
        let x = x.broadcast_add(&pos).ctx("ViT pos_embedding")?;
        self.ln
            .forward(&self.layers.forward(&self.dropout.forward(&x)?)?)
    }
}

/// ViT-B/16 (`vit_b_16`).
#[derive(crate::nn::Module)]
#[module(crate = "crate", name = "VisionTransformer")]
pub struct VisionTransformer {
    class_token: Param,
    conv_proj: Conv2d,
    encoder: Encoder,
    heads: Sequential,
    #[module(skip)]
    hidden: usize,
}

impl VisionTransformer {
    /// `vit_b_16(num_classes)`: patch 16, 12 layers, 12 heads, width 768, MLP 3072, image 224,
    /// with torchvision's initialisation (the head starts at zero).
    ///
    /// # Errors
    /// `K0003` for zero classes or channels.
    pub fn b_16(cfg: ZooConfig) -> Result<Self> {
        Self::build(16, 12, 12, 768, 3072, 224, cfg)
    }

    fn build(
        patch: usize,
        num_layers: usize,
        heads: usize,
        hidden: usize,
        mlp_dim: usize,
        image_size: usize,
        cfg: ZooConfig,
    ) -> Result<Self> {
        if cfg.num_classes == 0 || cfg.in_channels == 0 {
            return Err(Error::invalid(
                "vit_b_16 num_classes/in_channels",
                format!("{}/{}", cfg.num_classes, cfg.in_channels),
                "at least 1 each",
            ));
        }
        let proj = Conv2dConfig {
            stride: patch,
            bias: true,
            ..Default::default()
        };
        let conv_proj = Conv2d::new(cfg.in_channels, hidden, patch, proj)?;
        let fan_in = (cfg.in_channels * patch * patch) as f64;
        let w = init::normal(&conv_proj.weight().dims(), (1.0 / fan_in).sqrt())?;
        let w = w.clamp(-2f32, 2f32).ctx("trunc_normal")?;
        conv_proj.weight().set(&w)?;
        if let Some(b) = conv_proj.bias() {
            b.set(&b.tensor().zeros_like().ctx("init bias")?)?;
        }
        let seq_length = (image_size / patch).pow(2) + 1;
        let mut layers = Sequential::new();
        for i in 0..num_layers {
            layers.push_named(
                format!("encoder_layer_{i}"),
                Box::new(EncoderBlock::new(heads, hidden, mlp_dim, 0.0)?),
            )?;
        }
        let encoder = Encoder {
            pos_embedding: Param::new(&init::normal(&[1, seq_length, hidden], 0.02)?, true)?,
            dropout: Dropout::new(0.0)?,
            layers,
            ln: layer_norm(hidden)?,
        };
        let head = Linear::new(hidden, cfg.num_classes, true)?;
        head.weight()
            .set(&head.weight().tensor().zeros_like().ctx("init head")?)?;
        if let Some(b) = head.bias() {
            b.set(&b.tensor().zeros_like().ctx("init head")?)?;
        }
        let mut heads_seq = Sequential::new();
        heads_seq.push_named("head", Box::new(head))?;
        let zeros = Tensor::zeros((1, 1, hidden), DType::F32, &Device::Cpu).ctx("class_token")?;
        Ok(VisionTransformer {
            class_token: Param::new(&zeros, true)?,
            conv_proj,
            encoder,
            heads: heads_seq,
            hidden,
        })
    }

    /// Runs the network on `[N, 3, 224, 224]`: logits `[N, num_classes]`.
    ///
    /// # Errors
    /// As the layers inside; `K0003` for another image size.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv_proj.forward(x)?;
        let (n, c, h, w) = x.dims4().ctx("ViT patches")?;
        let x = x
            .reshape((n, c, h * w))
            .and_then(|x| x.transpose(1, 2))
            .ctx("ViT patches")?;
        let cls = self
            .class_token
            .tensor()
            .broadcast_as((n, 1, self.hidden))
            .ctx("ViT class token")?;
        let x = Tensor::cat(&[&cls, &x], 1).ctx("ViT class token")?;
        let x = self.encoder.forward(&x)?;
        let x = x
            .narrow(1, 0, 1)
            .and_then(|x| x.squeeze(1))
            .ctx("ViT class token")?;
        self.heads.forward(&x)
    }
}
