//! `MultiheadAttention`: PyTorch's `nn.MultiheadAttention` (the reference path of
//! `F.multi_head_attention_forward`), with its parameter names, initialisation and masks.

use super::sdpa::{additive_mask, scaled_dot_product_attention};
use super::{Dropout, Linear, ModeFlag, check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::module::call_child;
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::{D, DType, Device, Tensor};

/// The options of [`MultiheadAttention`] besides `embed_dim` and `num_heads`, with PyTorch's
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Dropout probability on the attention weights (training mode only); default `0.0`.
    pub dropout: f64,
    /// Biases on the input and output projections; default true.
    pub bias: bool,
    /// Learnt `bias_k` / `bias_v` appended to the key and value sequences; default false.
    pub add_bias_kv: bool,
    /// A zero key and value appended to the sequences; default false.
    pub add_zero_attn: bool,
    /// Features of the key (`None`: `embed_dim`). Another value gives separate
    /// `q_proj_weight` / `k_proj_weight` / `v_proj_weight` instead of `in_proj_weight`.
    pub kdim: Option<usize>,
    /// Features of the value (`None`: `embed_dim`).
    pub vdim: Option<usize>,
    /// Inputs and outputs are `(batch, seq, feature)` instead of `(seq, batch, feature)`;
    /// default false.
    pub batch_first: bool,
}

impl Default for MultiheadAttentionConfig {
    fn default() -> Self {
        MultiheadAttentionConfig {
            dropout: 0.0,
            bias: true,
            add_bias_kv: false,
            add_zero_attn: false,
            kdim: None,
            vdim: None,
            batch_first: false,
        }
    }
}

/// The optional arguments of [`MultiheadAttention::forward_with`], PyTorch's defaults.
///
/// Masks are float tensors (added to the attention scores, `-inf` masks) or integer tensors
/// standing in for PyTorch's `bool` (`u8`, `u32`, `i64`; non-zero = `True`), where `True`
/// means *masked* (PyTorch's convention for this module; the opposite of
/// [`scaled_dot_product_attention`]'s).
#[derive(Clone, Copy, Debug)]
pub struct AttentionArgs<'a> {
    /// `(N, S)` (unbatched: `(S)`): `True` ignores that key.
    pub key_padding_mask: Option<&'a Tensor>,
    /// Return the attention weights as well; default true.
    pub need_weights: bool,
    /// `(L, S)` or `(N·num_heads, L, S)`: `True` forbids that position.
    pub attn_mask: Option<&'a Tensor>,
    /// Average the returned weights over the heads; default true.
    pub average_attn_weights: bool,
    /// A hint that `attn_mask` is the causal mask (PyTorch requires the mask too).
    pub is_causal: bool,
}

impl Default for AttentionArgs<'_> {
    fn default() -> Self {
        AttentionArgs {
            key_padding_mask: None,
            need_weights: true,
            attn_mask: None,
            average_attn_weights: true,
            is_causal: false,
        }
    }
}

/// The output projection of [`MultiheadAttention`]: a [`Linear`] that prints as PyTorch's
/// `NonDynamicallyQuantizableLinear`.
pub struct OutProj(Linear);

impl OutProj {
    /// The wrapped layer.
    pub fn linear(&self) -> &Linear {
        &self.0
    }
}

impl Module for OutProj {
    fn type_name(&self) -> &'static str {
        "NonDynamicallyQuantizableLinear"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
    fn local_params(&self) -> Vec<(String, Param)> {
        self.0.local_params()
    }
    fn set_training(&self, training: bool) {
        self.0.set_training(training)
    }
    fn training_flag(&self) -> Option<bool> {
        self.0.training_flag()
    }
    fn spec(&self) -> ModuleSpec {
        self.0.spec()
    }
    fn extra_repr(&self) -> String {
        self.0.extra_repr()
    }
    impl_as_any!();
}

/// Multi-head attention, `Concat(head₁…headₕ) W_o` with `headᵢ = Attention(Q Wᵢ^Q, K Wᵢ^K,
/// V Wᵢ^V)`. State-dict keys as PyTorch's: `in_proj_weight [3E, E]` (or `q_proj_weight`,
/// `k_proj_weight`, `v_proj_weight` when `kdim`/`vdim` differ from `embed_dim`),
/// `in_proj_bias [3E]`, `bias_k`, `bias_v` (`[1, 1, E]`, with `add_bias_kv`),
/// `out_proj.weight`, `out_proj.bias`. Initialisation as PyTorch's (`xavier_uniform_` on the
/// projections, zero biases, `xavier_normal_` on `bias_k`/`bias_v`), from kiln's generator.
///
/// [`Module::forward`] is self-attention on one input, returning only the output;
/// [`MultiheadAttention::forward_with`] is PyTorch's `forward(query, key, value, …)`.
///
/// ```
/// use kiln::nn::{Module, MultiheadAttention};
/// use kiln::nn::layers::AttentionArgs;
/// let mha = MultiheadAttention::new(8, 2)?;
/// let x = candle_core::Tensor::zeros((5, 3, 8), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let (y, w) = mha.forward_with(&x, &x, &x, AttentionArgs::default())?;
/// assert_eq!((y.dims(), w.unwrap().dims()), (&[5, 3, 8][..], &[3, 5, 5][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultiheadAttention {
    embed_dim: usize,
    num_heads: usize,
    kdim: usize,
    vdim: usize,
    cfg: MultiheadAttentionConfig,
    in_proj_weight: Option<Param>,
    q_proj_weight: Option<Param>,
    k_proj_weight: Option<Param>,
    v_proj_weight: Option<Param>,
    in_proj_bias: Option<Param>,
    bias_k: Option<Param>,
    bias_v: Option<Param>,
    out_proj: OutProj,
    training: ModeFlag,
}

fn zeros(dims: &[usize]) -> Result<Tensor> {
    Tensor::zeros(dims, DType::F32, &Device::Cpu).ctx("MultiheadAttention init")
}

impl MultiheadAttention {
    /// `MultiheadAttention(embed_dim, num_heads)` with PyTorch's defaults.
    ///
    /// # Errors
    /// `K0003` when `embed_dim` or `num_heads` is 0 or `embed_dim` is not divisible by
    /// `num_heads`.
    pub fn new(embed_dim: usize, num_heads: usize) -> Result<Self> {
        Self::with(embed_dim, num_heads, MultiheadAttentionConfig::default())
    }

    /// With explicit options.
    ///
    /// # Errors
    /// As [`MultiheadAttention::new`]; `K0003` for a dropout outside `[0, 1]` or a zero
    /// `kdim`/`vdim`.
    pub fn with(embed_dim: usize, num_heads: usize, cfg: MultiheadAttentionConfig) -> Result<Self> {
        if embed_dim == 0 || num_heads == 0 {
            return Err(Error::invalid(
                "MultiheadAttention embed_dim/num_heads",
                format!("embed_dim={embed_dim}, num_heads={num_heads}"),
                "embed_dim and num_heads must be greater than 0",
            ));
        }
        if embed_dim % num_heads != 0 {
            return Err(Error::invalid(
                "MultiheadAttention embed_dim",
                embed_dim,
                format!("embed_dim must be divisible by num_heads={num_heads}"),
            ));
        }
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                "MultiheadAttention dropout",
                cfg.dropout,
                "a probability between 0 and 1",
            ));
        }
        let kdim = cfg.kdim.unwrap_or(embed_dim);
        let vdim = cfg.vdim.unwrap_or(embed_dim);
        if kdim == 0 || vdim == 0 {
            return Err(Error::invalid(
                "MultiheadAttention kdim/vdim",
                format!("kdim={kdim}, vdim={vdim}"),
                "positive feature counts (or None for embed_dim)",
            ));
        }
        let e = embed_dim;
        let param = |t: Tensor| Param::new(&t, true);
        let (in_proj_weight, q, k, v) = if kdim == e && vdim == e {
            (
                Some(param(init::xavier_uniform(&[3 * e, e])?)?),
                None,
                None,
                None,
            )
        } else {
            (
                None,
                Some(param(init::xavier_uniform(&[e, e])?)?),
                Some(param(init::xavier_uniform(&[e, kdim])?)?),
                Some(param(init::xavier_uniform(&[e, vdim])?)?),
            )
        };
        let in_proj_bias = if cfg.bias {
            Some(param(zeros(&[3 * e])?)?)
        } else {
            None
        };
        let out = Linear::new(e, e, cfg.bias)?;
        let out = if cfg.bias {
            Linear::from_tensors(out.weight().detached(), Some(zeros(&[e])?))?
        } else {
            out
        };
        let (bias_k, bias_v) = if cfg.add_bias_kv {
            (
                Some(param(init::xavier_normal(&[1, 1, e])?)?),
                Some(param(init::xavier_normal(&[1, 1, e])?)?),
            )
        } else {
            (None, None)
        };
        Ok(MultiheadAttention {
            embed_dim,
            num_heads,
            kdim,
            vdim,
            cfg,
            in_proj_weight,
            q_proj_weight: q,
            k_proj_weight: k,
            v_proj_weight: v,
            in_proj_bias,
            bias_k,
            bias_v,
            out_proj: OutProj(out),
            training: ModeFlag::default(),
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped config entry; as [`MultiheadAttention::with`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let d = MultiheadAttentionConfig::default();
        let opt = |k: &str| -> Result<Option<usize>> {
            match spec.config.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(_) => spec.usize(k).map(Some),
            }
        };
        Self::with(
            spec.usize("embed_dim")?,
            spec.usize("num_heads")?,
            MultiheadAttentionConfig {
                dropout: spec.f64_or("dropout", d.dropout)?,
                bias: spec.bool_or("bias", d.bias)?,
                add_bias_kv: spec.bool_or("add_bias_kv", d.add_bias_kv)?,
                add_zero_attn: spec.bool_or("add_zero_attn", d.add_zero_attn)?,
                kdim: opt("kdim")?,
                vdim: opt("vdim")?,
                batch_first: spec.bool_or("batch_first", d.batch_first)?,
            },
        )
    }

    /// `embed_dim`.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// `num_heads`.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// The options.
    pub fn config(&self) -> MultiheadAttentionConfig {
        self.cfg
    }

    /// `in_proj_weight [3E, E]`, when `kdim == vdim == embed_dim`.
    pub fn in_proj_weight(&self) -> Option<&Param> {
        self.in_proj_weight.as_ref()
    }

    /// `in_proj_bias [3E]`, with `bias`.
    pub fn in_proj_bias(&self) -> Option<&Param> {
        self.in_proj_bias.as_ref()
    }

    /// The output projection (`out_proj`).
    pub fn out_proj(&self) -> &OutProj {
        &self.out_proj
    }

    fn describe(&self) -> String {
        format!(
            "MultiheadAttention(embed_dim={}, num_heads={}, batch_first={})",
            self.embed_dim,
            self.num_heads,
            super::py_bool(self.cfg.batch_first)
        )
    }

    fn shape_err(&self, what: &str, got: &[usize], expected: String) -> Error {
        Error::SequenceShape {
            module: self.describe(),
            what: what.to_string(),
            got: shape_str(got),
            expected,
        }
    }

    fn layout(&self) -> (&'static str, &'static str) {
        if self.cfg.batch_first {
            ("(N, L, E)", "(N, S, E)")
        } else {
            ("(L, N, E)", "(S, N, E)")
        }
    }

    /// Checks ranks and feature sizes (PyTorch's `_mha_shape_check` and the embed-dim
    /// checks); returns whether the input is batched.
    fn check_shapes(&self, q: &Tensor, k: &Tensor, v: &Tensor, a: &AttentionArgs) -> Result<bool> {
        let (ql, kl) = self.layout();
        let batched = match q.rank() {
            3 => true,
            2 => false,
            _ => {
                return Err(self.shape_err(
                    "query",
                    q.dims(),
                    format!("{ql} (batched) or (L, E) (unbatched)"),
                ));
            }
        };
        let r = q.rank();
        if q.dims()[r - 1] != self.embed_dim {
            return Err(self.shape_err(
                "query",
                q.dims(),
                format!("[..., {}] (embed_dim)", self.embed_dim),
            ));
        }
        if k.rank() != r {
            return Err(self.shape_err("key", k.dims(), format!("a {r}-D tensor {kl}")));
        }
        if v.rank() != r {
            return Err(self.shape_err("value", v.dims(), format!("a {r}-D tensor {kl}")));
        }
        if k.dims()[r - 1] != self.kdim {
            return Err(self.shape_err("key", k.dims(), format!("[..., {}] (kdim)", self.kdim)));
        }
        if v.dims()[r - 1] != self.vdim || k.dims()[..r - 1] != v.dims()[..r - 1] {
            let mut want = k.dims()[..r - 1].to_vec();
            want.push(self.vdim);
            return Err(self.shape_err("value", v.dims(), shape_str(&want)));
        }
        // The batch dimension of a batched input: 0 with batch_first, else 1.
        let batch_dim = usize::from(!self.cfg.batch_first);
        if batched && k.dims()[batch_dim] != q.dims()[batch_dim] {
            return Err(self.shape_err(
                "key",
                k.dims(),
                format!("batch size {} of the query {kl}", q.dims()[batch_dim]),
            ));
        }
        if let Some(m) = a.key_padding_mask {
            let (n, s) = if batched {
                (Some(k.dims()[batch_dim]), k.dims()[1 - batch_dim])
            } else {
                (None, k.dims()[0])
            };
            let want: Vec<usize> = n.into_iter().chain([s]).collect();
            if m.dims() != want.as_slice() {
                return Err(self.shape_err("key_padding_mask", m.dims(), shape_str(&want)));
            }
        }
        if let Some(m) = a.attn_mask {
            let (l, s) = if batched {
                (q.dims()[1 - batch_dim], k.dims()[1 - batch_dim])
            } else {
                (q.dims()[0], k.dims()[0])
            };
            let n = if batched { q.dims()[batch_dim] } else { 1 };
            let three = [n * self.num_heads, l, s];
            if m.dims() != [l, s] && m.dims() != three {
                return Err(self.shape_err(
                    "attn_mask",
                    m.dims(),
                    format!("{} or {}", shape_str(&[l, s]), shape_str(&three)),
                ));
            }
        }
        Ok(batched)
    }

    /// The input projections of query, key and value (each `[T, N, E]`).
    fn project(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let e = self.embed_dim;
        let bias = self.in_proj_bias.as_ref().map(Param::tensor);
        let b = |i: usize| -> Result<Option<Tensor>> {
            bias.as_ref()
                .map(|b| b.narrow(0, i * e, e).ctx("MultiheadAttention in_proj_bias"))
                .transpose()
        };
        let (wq, wk, wv) = match &self.in_proj_weight {
            Some(w) => {
                let w = w.tensor();
                let n = |i: usize| w.narrow(0, i * e, e).ctx("MultiheadAttention in_proj");
                (n(0)?, n(1)?, n(2)?)
            }
            None => {
                let get = |p: &Option<Param>| {
                    p.as_ref()
                        .map(Param::tensor)
                        .ok_or_else(|| Error::Unsupported {
                            what: "MultiheadAttention without projection weights".into(),
                        })
                };
                (
                    get(&self.q_proj_weight)?,
                    get(&self.k_proj_weight)?,
                    get(&self.v_proj_weight)?,
                )
            }
        };
        Ok((
            linear3(q, &wq, b(0)?.as_ref())?,
            linear3(k, &wk, b(1)?.as_ref())?,
            linear3(v, &wv, b(2)?.as_ref())?,
        ))
    }

    /// PyTorch's `forward(query, key, value, key_padding_mask, need_weights, attn_mask,
    /// average_attn_weights, is_causal)` → `(attn_output, attn_output_weights)`.
    ///
    /// Shapes: `query (L, N, E)`, `key (S, N, kdim)`, `value (S, N, vdim)` (`(N, L, E)` …
    /// with `batch_first`, or unbatched `(L, E)`); output like the query; weights
    /// `(N, L, S)` averaged over heads or `(N, num_heads, L, S)` (unbatched: without `N`),
    /// `None` unless `need_weights`.
    ///
    /// With `need_weights` a fully masked row gives NaN (PyTorch's softmax); without, it
    /// gives zeros before the output projection (PyTorch's attention kernel).
    ///
    /// # Errors
    /// `K0220` for inputs or masks of the wrong shape; `K0003` for `is_causal` without an
    /// `attn_mask` (PyTorch: "Need attn_mask if specifying the is_causal hint"); `K0301` /
    /// `K0302` for inputs on another device or of another dtype than the weights.
    pub fn forward_with(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        args: AttentionArgs<'_>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let op = "MultiheadAttention";
        let w = self.out_proj.0.weight().tensor();
        for x in [query, key, value] {
            check_input(&self.describe(), x, &w)?;
        }
        let batched = self.check_shapes(query, key, value, &args)?;
        let dtype = query.dtype();
        let mut kpm = args
            .key_padding_mask
            .map(|m| additive_mask(op, m, dtype, false))
            .transpose()?;
        if args.is_causal && args.attn_mask.is_none() {
            return Err(Error::invalid(
                format!("{} is_causal", self.describe()),
                "true without attn_mask",
                "Need attn_mask if specifying the is_causal hint: pass the causal mask too (Transformer::generate_square_subsequent_mask)",
            ));
        }
        let mut is_causal = args.is_causal;
        let mut mask = if is_causal && kpm.is_none() && !args.need_weights {
            None
        } else {
            if kpm.is_some() {
                is_causal = false;
            }
            args.attn_mask
                .map(|m| additive_mask(op, m, dtype, false))
                .transpose()?
        };
        // To PyTorch's internal layout: (T, N, E).
        let (q, k, v) = if !batched {
            kpm = kpm.map(|m| m.unsqueeze(0)).transpose().ctx(op)?;
            (
                query.unsqueeze(1).ctx(op)?,
                key.unsqueeze(1).ctx(op)?,
                value.unsqueeze(1).ctx(op)?,
            )
        } else if self.cfg.batch_first {
            (
                query.transpose(0, 1).ctx(op)?,
                key.transpose(0, 1).ctx(op)?,
                value.transpose(0, 1).ctx(op)?,
            )
        } else {
            (query.clone(), key.clone(), value.clone())
        };
        let (tgt_len, bsz, e) = q.dims3().ctx(op)?;
        let h = self.num_heads;
        let hd = e / h;
        let (q, mut k, mut v) = self.project(&q, &k, &v)?;
        if let Some(m) = mask.take() {
            mask = Some(if m.rank() == 2 {
                m.unsqueeze(0).ctx(op)?
            } else {
                m
            });
        }
        if let (Some(bk), Some(bv)) = (&self.bias_k, &self.bias_v) {
            let rep = |b: &Param| b.tensor().repeat((1, bsz, 1)).ctx(op);
            k = Tensor::cat(&[&k, &rep(bk)?], 0).ctx(op)?;
            v = Tensor::cat(&[&v, &rep(bv)?], 0).ctx(op)?;
            mask = pad_last(mask)?;
            kpm = pad_last(kpm)?;
        }
        let q = heads(&q, bsz * h, hd)?;
        let mut k = heads(&k, bsz * h, hd)?;
        let mut v = heads(&v, bsz * h, hd)?;
        if self.cfg.add_zero_attn {
            let z = Tensor::zeros((bsz * h, 1, hd), dtype, k.device()).ctx(op)?;
            k = Tensor::cat(&[&k, &z], 1).ctx(op)?;
            v = Tensor::cat(&[&v, &z], 1).ctx(op)?;
            mask = pad_last(mask)?;
            kpm = pad_last(kpm)?;
        }
        let src_len = k.dim(1).ctx(op)?;
        if let Some(p) = kpm {
            let p = p
                .reshape((bsz, 1, 1, src_len))
                .and_then(|p| p.broadcast_as((bsz, h, 1, src_len)))
                .and_then(|p| p.reshape((bsz * h, 1, src_len)))
                .ctx(op)?;
            mask = Some(match mask {
                None => p,
                Some(m) => m.broadcast_add(&p).ctx(op)?,
            });
        }
        let dropout_p = if self.training.get() {
            self.cfg.dropout
        } else {
            0.0
        };
        let (attn, weights) = if args.need_weights {
            let qs = (q * (1.0 / hd as f64).sqrt()).ctx(op)?;
            let mut s = qs.matmul(&k.t().ctx(op)?).ctx(op)?;
            if let Some(m) = &mask {
                s = s.broadcast_add(m).ctx(op)?;
            }
            let mut w = crate::nn::functional::softmax(&s, -1)?;
            if dropout_p > 0.0 {
                w = Dropout::new(dropout_p)?.forward(&w)?;
            }
            let out = w.matmul(&v).ctx(op)?;
            let out = out
                .transpose(0, 1)
                .and_then(|o| o.reshape((tgt_len * bsz, e)))
                .ctx(op)?;
            let w = w.reshape((bsz, h, tgt_len, src_len)).ctx(op)?;
            let w = if args.average_attn_weights {
                w.mean(1).ctx(op)?
            } else {
                w
            };
            (out, Some(w))
        } else {
            let m = mask
                .map(|m| {
                    if m.dim(0)? == 1 {
                        m.unsqueeze(0)
                    } else {
                        m.reshape((bsz, h, (), src_len))
                    }
                })
                .transpose()
                .ctx(op)?;
            let q4 = q.reshape((bsz, h, tgt_len, hd)).ctx(op)?;
            let k4 = k.reshape((bsz, h, src_len, hd)).ctx(op)?;
            let v4 = v.reshape((bsz, h, src_len, hd)).ctx(op)?;
            let out = scaled_dot_product_attention(
                &q4,
                &k4,
                &v4,
                m.as_ref(),
                dropout_p,
                is_causal,
                None,
            )?;
            let out = out
                .permute((2, 0, 1, 3))
                .and_then(|o| o.reshape((tgt_len * bsz, e)))
                .ctx(op)?;
            (out, None)
        };
        let out = call_child("out_proj", &self.out_proj, &attn)?
            .reshape((tgt_len, bsz, e))
            .ctx(op)?;
        let (out, weights) = if !batched {
            (
                out.squeeze(1).ctx(op)?,
                weights.map(|w| w.squeeze(0)).transpose().ctx(op)?,
            )
        } else if self.cfg.batch_first {
            (out.transpose(0, 1).ctx(op)?, weights)
        } else {
            (out, weights)
        };
        Ok((out, weights))
    }
}

/// `x [T, N, in] @ wᵀ + b` → `[T, N, out]`.
fn linear3(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let op = "MultiheadAttention projection";
    let (t, n, i) = x.dims3().ctx(op)?;
    let x2 = x.reshape((t * n, i)).ctx(op)?;
    let y = crate::nn::ops::linear(&x2, w, b)?;
    y.reshape((t, n, w.dim(0).ctx(op)?)).ctx(op)
}

/// `[T, N, E]` → `[N·H, T, hd]`.
fn heads(x: &Tensor, nh: usize, hd: usize) -> Result<Tensor> {
    let t = x.dim(0).ctx("MultiheadAttention heads")?;
    x.reshape((t, nh, hd))
        .and_then(|x| x.transpose(0, 1))
        .and_then(|x| x.contiguous())
        .ctx("MultiheadAttention heads")
}

/// PyTorch's `pad(mask, (0, 1))`: one more (unmasked) key column.
fn pad_last(m: Option<Tensor>) -> Result<Option<Tensor>> {
    m.map(|m| m.pad_with_zeros(D::Minus1, 0, 1))
        .transpose()
        .ctx("MultiheadAttention mask padding")
}

impl Module for MultiheadAttention {
    fn type_name(&self) -> &'static str {
        "MultiheadAttention"
    }

    /// Self-attention `forward(x, x, x, need_weights=False)`, the output only.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let args = AttentionArgs {
            need_weights: false,
            ..AttentionArgs::default()
        };
        Ok(self.forward_with(x, x, x, args)?.0)
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        let named = [
            ("in_proj_weight", &self.in_proj_weight),
            ("q_proj_weight", &self.q_proj_weight),
            ("k_proj_weight", &self.k_proj_weight),
            ("v_proj_weight", &self.v_proj_weight),
        ];
        // PyTorch registers q/k/v first when they exist, then in_proj_weight (None).
        let order: [usize; 4] = if self.in_proj_weight.is_some() {
            [0, 1, 2, 3]
        } else {
            [1, 2, 3, 0]
        };
        let mut v: Vec<(String, Param)> = order
            .iter()
            .filter_map(|&i| {
                named[i]
                    .1
                    .as_ref()
                    .map(|p| (named[i].0.to_string(), p.clone()))
            })
            .collect();
        for (n, p) in [
            ("in_proj_bias", &self.in_proj_bias),
            ("bias_k", &self.bias_k),
            ("bias_v", &self.bias_v),
        ] {
            if let Some(p) = p {
                v.push((n.to_string(), p.clone()));
            }
        }
        v
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("out_proj".to_string(), &self.out_proj as &dyn Module)]
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.training.get())
    }

    fn spec(&self) -> ModuleSpec {
        let opt = |v: usize| {
            if v == self.embed_dim {
                serde_json::Value::Null
            } else {
                v.into()
            }
        };
        ModuleSpec::new("MultiheadAttention")
            .with("embed_dim", self.embed_dim)
            .with("num_heads", self.num_heads)
            .with("dropout", self.cfg.dropout)
            .with("bias", self.cfg.bias)
            .with("add_bias_kv", self.cfg.add_bias_kv)
            .with("add_zero_attn", self.cfg.add_zero_attn)
            .with("kdim", opt(self.kdim))
            .with("vdim", opt(self.vdim))
            .with("batch_first", self.cfg.batch_first)
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_shapes_are_pytorchs() {
        let m = MultiheadAttention::with(
            4,
            2,
            MultiheadAttentionConfig {
                add_bias_kv: true,
                ..Default::default()
            },
        )
        .unwrap();
        let keys: Vec<String> = m.state_dict().keys().map(str::to_string).collect();
        assert_eq!(
            keys,
            [
                "in_proj_weight",
                "in_proj_bias",
                "bias_k",
                "bias_v",
                "out_proj.weight",
                "out_proj.bias"
            ]
        );
        let m = MultiheadAttention::with(
            4,
            2,
            MultiheadAttentionConfig {
                kdim: Some(3),
                vdim: Some(5),
                bias: false,
                ..Default::default()
            },
        )
        .unwrap();
        let sd = m.state_dict();
        let keys: Vec<(String, Vec<usize>)> = sd
            .iter()
            .map(|(k, v)| (k.to_string(), v.dims().to_vec()))
            .collect();
        assert_eq!(
            keys,
            [
                ("q_proj_weight".to_string(), vec![4, 4]),
                ("k_proj_weight".to_string(), vec![4, 3]),
                ("v_proj_weight".to_string(), vec![4, 5]),
                ("out_proj.weight".to_string(), vec![4, 4]),
            ]
        );
    }

    #[test]
    fn wrong_embed_dim_names_the_layer() {
        let m = MultiheadAttention::new(4, 2).unwrap();
        let x = Tensor::zeros((3, 2, 5), DType::F32, &Device::Cpu).unwrap();
        let e = m.forward(&x).unwrap_err();
        assert_eq!(e.code(), "K0220");
        assert!(
            e.to_string().contains("MultiheadAttention(embed_dim=4"),
            "{e}"
        );
        assert!(MultiheadAttention::new(5, 2).is_err());
    }
}
