//! `LoraLayer`: a `Linear` or `Conv2d` with a low-rank adapter beside it, PEFT's
//! `lora.Linear` / `lora.Conv2d`:
//! `y = base(x) + B(A(dropout(x))) · alpha / r`.
//!
//! The base layer's weight and bias stay the layer's own parameters (`fc1.weight`,
//! `fc1.bias`: the base model's keys are unchanged), and the adapter adds two children,
//! `lora_A` and `lora_B` (`fc1.lora_A.weight`, `fc1.lora_B.weight` — PEFT's saved keys
//! without the `base_model.model.` prefix). For a Linear `[out, in]`, `lora_A` is
//! `Linear(in, r)` and `lora_B` `Linear(r, out)`, both without bias; for a Conv2d,
//! `lora_A` is `Conv2d(in, r, kernel, stride, padding)` and `lora_B` a 1×1 `Conv2d(r, out)`.
//! `lora_A` starts from `kaiming_uniform_(a=√5)` (drawn from kiln's generator) and `lora_B`
//! from zeros, so a fresh adapter leaves the output unchanged.

use super::LoraConfig;
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::layers::Conv2dConfig;
use crate::nn::{Conv2d, Dropout, Linear, Module, ModuleSpec, Param, init};
use candle_core::{DType, Device, Tensor};

/// Which kind of layer an adapter wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraKind {
    /// `nn.Linear`.
    Linear,
    /// `nn.Conv2d` (no groups, no dilation).
    Conv2d,
}

/// A base layer with a LoRA adapter (see the module documentation).
pub struct LoraLayer {
    kind: LoraKind,
    base: Box<dyn Module>,
    dropout: Dropout,
    lora_a: Box<dyn Module>,
    lora_b: Box<dyn Module>,
    r: usize,
    alpha: f64,
    p: f64,
}

impl LoraLayer {
    /// Wraps `base` (a [`Linear`] or [`Conv2d`]) with a fresh adapter of `cfg`'s rank,
    /// alpha and dropout; `name` is its path, for messages.
    ///
    /// # Errors
    /// `K0742` for invalid settings, a layer that is neither Linear nor Conv2d, a grouped,
    /// dilated or `padding='same'` convolution, or a layer that already has an adapter.
    pub fn wrap(name: &str, base: Box<dyn Module>, cfg: &LoraConfig) -> Result<Self> {
        let adapter = LoraAdapter::new(name, base.as_ref(), cfg)?;
        Ok(Self::assemble(base, adapter))
    }

    /// Puts a base layer and an adapter built for it together (cannot fail).
    pub(super) fn assemble(base: Box<dyn Module>, adapter: LoraAdapter) -> Self {
        let LoraAdapter {
            kind,
            dropout,
            lora_a,
            lora_b,
            r,
            alpha,
            p,
        } = adapter;
        dropout.set_training(base.is_training());
        lora_a.train(base.is_training());
        lora_b.train(base.is_training());
        LoraLayer {
            kind,
            base,
            dropout,
            lora_a,
            lora_b,
            r,
            alpha,
            p,
        }
    }

    /// Linear or Conv2d.
    pub fn kind(&self) -> LoraKind {
        self.kind
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.r
    }

    /// `lora_alpha`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.r as f64
    }

    /// `lora_dropout`.
    pub fn dropout_p(&self) -> f64 {
        self.p
    }

    /// The wrapped layer.
    pub fn base(&self) -> &dyn Module {
        self.base.as_ref()
    }

    /// `lora_A.weight`.
    pub fn lora_a(&self) -> Result<Param> {
        first_param(self.lora_a.as_ref(), "lora_A")
    }

    /// `lora_B.weight`.
    pub fn lora_b(&self) -> Result<Param> {
        first_param(self.lora_b.as_ref(), "lora_B")
    }

    /// The base weight with the update merged in: `W + B·A · alpha/r` (for a convolution,
    /// `B` `[out, r, 1, 1]` composed with `A` `[r, in, kh, kw]`), in the weight's dtype.
    ///
    /// # Errors
    /// Backend errors.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let w = first_param(self.base.as_ref(), "weight")?.detached();
        merge_weight(
            &w,
            &self.lora_a()?.detached(),
            &self.lora_b()?.detached(),
            self.scaling(),
        )
    }

    /// Takes the base layer out (without the adapter).
    pub fn into_base(self) -> Box<dyn Module> {
        self.base
    }
}

/// A fresh adapter built for a base layer, not yet attached (so building it, which can
/// fail, never takes the base layer out of its model).
pub(super) struct LoraAdapter {
    kind: LoraKind,
    dropout: Dropout,
    lora_a: Box<dyn Module>,
    lora_b: Box<dyn Module>,
    r: usize,
    alpha: f64,
    p: f64,
}

impl LoraAdapter {
    /// `lora_A` (Kaiming-uniform) and `lora_B` (zeros) for `base`, on its device and dtype.
    ///
    /// # Errors
    /// As [`LoraLayer::wrap`].
    pub(super) fn new(name: &str, base: &dyn Module, cfg: &LoraConfig) -> Result<Self> {
        cfg.validate()?;
        let bad = |got: String, expected: &str| Error::LoraConfig {
            what: format!("target '{name}'"),
            got,
            expected: expected.into(),
        };
        let any = base.as_any();
        let (kind, a, b) = if let Some(l) = any.downcast_ref::<Linear>() {
            let w = l.weight();
            let a = Linear::from_tensors(init::default_weight(&[cfg.r, l.in_features()])?, None)?;
            let b = Linear::from_tensors(zeros(&[l.out_features(), cfg.r])?, None)?;
            place(&a, w)?;
            place(&b, w)?;
            (
                LoraKind::Linear,
                Box::new(a) as Box<dyn Module>,
                Box::new(b) as Box<dyn Module>,
            )
        } else if let Some(c) = any.downcast_ref::<Conv2d>() {
            let cc = c.config();
            if cc.groups != 1 || cc.dilation != 1 || c.is_padding_same() {
                return Err(bad(
                    format!(
                        "a Conv2d with groups={}, dilation={}{}",
                        cc.groups,
                        cc.dilation,
                        if c.is_padding_same() {
                            ", padding='same'"
                        } else {
                            ""
                        }
                    ),
                    "a Conv2d with groups=1, dilation=1 and numeric padding",
                ));
            }
            let (kh, kw) = c.kernel_size();
            let a_cfg = Conv2dConfig {
                padding: cc.padding,
                stride: cc.stride,
                dilation: 1,
                groups: 1,
                bias: false,
            };
            let b_cfg = Conv2dConfig {
                padding: 0,
                stride: 1,
                ..a_cfg
            };
            let a = Conv2d::from_tensors(
                init::default_weight(&[cfg.r, c.in_channels(), kh, kw])?,
                None,
                a_cfg,
            )?;
            let b = Conv2d::from_tensors(zeros(&[c.out_channels(), cfg.r, 1, 1])?, None, b_cfg)?;
            place(&a, c.weight())?;
            place(&b, c.weight())?;
            (
                LoraKind::Conv2d,
                Box::new(a) as Box<dyn Module>,
                Box::new(b) as Box<dyn Module>,
            )
        } else if any.is::<LoraLayer>() {
            return Err(bad(
                "already a LoRA layer".into(),
                "a layer without an adapter (apply LoRA once)",
            ));
        } else {
            return Err(bad(
                format!("a {}", base.type_name()),
                "a Linear or Conv2d layer",
            ));
        };
        Ok(LoraAdapter {
            kind,
            dropout: Dropout::new(cfg.dropout)?,
            lora_a: a,
            lora_b: b,
            r: cfg.r,
            alpha: cfg.alpha,
            p: cfg.dropout,
        })
    }
}

/// `W + B·A · scaling` for a Linear (`A` `[r, in]`, `B` `[out, r]`) or a Conv2d weight
/// (`A` `[r, in, kh, kw]`, `B` `[out, r, 1, 1]`: the composition of the two convolutions is
/// the convolution with `(B·A)` reshaped to `[out, in, kh, kw]`). Computed in f64 and cast
/// back to `W`'s dtype.
///
/// # Errors
/// `K0743` when the shapes do not fit together; backend errors.
pub fn merge_weight(w: &Tensor, a: &Tensor, b: &Tensor, scaling: f64) -> Result<Tensor> {
    let dims = w.dims();
    let (out, r) = (b.dims().first().copied(), a.dims().first().copied());
    let inner: usize = dims.iter().skip(1).product();
    let fits = match (out, r) {
        (Some(o), Some(r)) => {
            o == dims.first().copied().unwrap_or(0)
                && b.elem_count() == o * r
                && b.dims().get(1) == Some(&r)
                && a.elem_count() == r * inner
                && a.dims().get(1..) == dims.get(1..)
        }
        _ => false,
    };
    let (Some(o), Some(r), true) = (out, r, fits) else {
        return Err(Error::LoraAdapter {
            path: "merge".into(),
            detail: format!(
                "lora_A {} and lora_B {} do not fit the weight {}",
                shape_str(a.dims()),
                shape_str(b.dims()),
                shape_str(dims)
            ),
        });
    };
    let ctx = "merge LoRA weight";
    let b2 = b
        .to_dtype(DType::F64)
        .and_then(|t| t.reshape((o, r)))
        .ctx(ctx)?;
    let a2 = a
        .to_dtype(DType::F64)
        .and_then(|t| t.reshape((r, inner)))
        .ctx(ctx)?;
    let delta = b2
        .matmul(&a2)
        .and_then(|d| d.affine(scaling, 0.0))
        .and_then(|d| d.reshape(dims))
        .ctx(ctx)?;
    w.to_dtype(DType::F64)
        .and_then(|w| w.add(&delta))
        .and_then(|m| m.to_dtype(w.dtype()))
        .ctx(ctx)
}

fn zeros(dims: &[usize]) -> Result<Tensor> {
    Tensor::zeros(dims, DType::F32, &Device::Cpu).ctx("LoRA init")
}

/// Moves a new adapter layer to the base weight's device and dtype.
fn place(m: &dyn Module, like: &Param) -> Result<()> {
    let t = like.detached();
    if t.dtype() != DType::F32 {
        m.to_dtype(t.dtype())?;
    }
    if !t.device().is_cpu() {
        m.to_device(t.device())?;
    }
    Ok(())
}

fn first_param(m: &dyn Module, what: &str) -> Result<Param> {
    m.local_params()
        .into_iter()
        .find(|(n, _)| n == "weight")
        .map(|(_, p)| p)
        .ok_or_else(|| Error::invalid("LoRA layer", what, "a layer with a weight"))
}

impl Module for LoraLayer {
    fn type_name(&self) -> &'static str {
        match self.kind {
            LoraKind::Linear => "LoraLinear",
            LoraKind::Conv2d => "LoraConv2d",
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        let h = self.dropout.forward(x)?;
        let u = self.lora_b.forward(&self.lora_a.forward(&h)?)?;
        let u = u.affine(self.scaling(), 0.0).ctx("LoRA scaling")?;
        y.add(&u).ctx("LoRA add")
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        self.base.local_params()
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("lora_dropout".to_string(), &self.dropout as &dyn Module),
            ("lora_A".to_string(), self.lora_a.as_ref()),
            ("lora_B".to_string(), self.lora_b.as_ref()),
        ]
    }

    fn set_training(&self, training: bool) {
        self.base.set_training(training);
    }

    fn training_flag(&self) -> Option<bool> {
        self.base.training_flag()
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new(self.type_name())
            .with("base", self.base.type_name())
            .with("r", self.r)
            .with("lora_alpha", self.alpha)
            .with("lora_dropout", self.p)
    }

    fn extra_repr(&self) -> String {
        format!(
            "base={}, r={}, lora_alpha={}, lora_dropout={}",
            self.base.repr(),
            self.r,
            self.alpha,
            self.p
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
