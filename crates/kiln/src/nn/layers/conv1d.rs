//! `Conv1d`: 1-D convolution over `[N, C, L]` (PyTorch's `nn.Conv1d`): stride, padding (a
//! number or `padding='same'`), dilation, groups and bias. It runs kiln's 2-D kernel on a
//! `[N, C, 1, L]` view with the length padded explicitly.

use super::{check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::Tensor;

/// The options of a [`Conv1d`] (and of [`super::ConvTranspose1d`]'s shared ones): the same
/// fields as [`super::Conv2dConfig`], PyTorch's defaults.
pub type Conv1dConfig = super::Conv2dConfig;

/// A 1-D convolution, weight `[out_channels, in_channels/groups, kernel_size]`, bias
/// `[out_channels]`; PyTorch's initialisation (`kaiming_uniform_(a=√5)`, bias
/// `uniform(±1/√fan_in)`) from kiln's generator.
///
/// ```
/// use kiln::nn::{Conv1d, Conv1dConfig, Module};
/// let c = Conv1d::new(4, 6, 3, Conv1dConfig { padding: 1, ..Default::default() })?;
/// assert_eq!(c.repr(), "Conv1d(4, 6, kernel_size=(3,), stride=(1,), padding=(1,))");
/// let x = candle_core::Tensor::zeros((2, 4, 10), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// assert_eq!(c.forward(&x)?.dims(), &[2, 6, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Conv1d {
    weight: Param,
    bias: Option<Param>,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv1dConfig,
    same: bool,
}

/// Checks `groups` against the channels and that the sizes are positive.
pub(crate) fn check_conv_args(
    layer: &str,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: &super::Conv2dConfig,
) -> Result<()> {
    if cfg.groups == 0 || in_channels % cfg.groups != 0 || out_channels % cfg.groups != 0 {
        return Err(Error::invalid(
            format!("{layer} groups"),
            cfg.groups,
            format!("a divisor of in_channels={in_channels} and out_channels={out_channels}"),
        ));
    }
    if kernel == 0 || cfg.stride == 0 || cfg.dilation == 0 {
        return Err(Error::invalid(
            format!("{layer} kernel_size/stride/dilation"),
            format!("{kernel}/{}/{}", cfg.stride, cfg.dilation),
            "positive values",
        ));
    }
    Ok(())
}

impl Conv1d {
    /// `Conv1d(in_channels, out_channels, kernel_size, ...)` with PyTorch's initialisation.
    ///
    /// # Errors
    /// `K0003` when the channels are not divisible by `groups` or a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        cfg: Conv1dConfig,
    ) -> Result<Self> {
        check_conv_args("Conv1d", in_channels, out_channels, kernel_size, &cfg)?;
        let dims = [out_channels, in_channels / cfg.groups, kernel_size];
        let w = init::default_weight(&dims)?;
        let b = if cfg.bias {
            Some(init::default_bias(out_channels, init::fans(&dims).0)?)
        } else {
            None
        };
        Self::from_tensors(w, b, cfg)
    }

    /// A convolution with the given weight `[O, C/groups, k]` and bias `[O]`.
    ///
    /// # Errors
    /// `K0003` for a weight that is not 3-D or a bias of another length.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, cfg: Conv1dConfig) -> Result<Self> {
        let (out_channels, in_per_group, k) = weight.dims3().ctx("Conv1d weight must be 3-D")?;
        if let Some(b) = &bias {
            if b.dims() != [out_channels] {
                return Err(Error::invalid(
                    "Conv1d bias shape",
                    shape_str(b.dims()),
                    format!("[{out_channels}]"),
                ));
            }
        }
        check_conv_args("Conv1d", in_per_group * cfg.groups, out_channels, k, &cfg)?;
        let has_bias = bias.is_some();
        Ok(Conv1d {
            weight: Param::new(&weight, true)?,
            bias: bias.map(|b| Param::new(&b, true)).transpose()?,
            in_channels: in_per_group * cfg.groups,
            out_channels,
            kernel: k,
            cfg: Conv1dConfig {
                bias: has_bias,
                ..cfg
            },
            same: false,
        })
    }

    /// PyTorch's `padding='same'` (output length = input length; the odd padding element
    /// goes at the end). Needs stride 1 and `padding: 0`.
    ///
    /// # Errors
    /// `K0003` for a stride other than 1 or a non-zero numeric padding.
    pub fn with_padding_same(mut self) -> Result<Self> {
        if self.cfg.stride != 1 || self.cfg.padding != 0 {
            return Err(Error::invalid(
                format!("{} padding='same'", self.repr()),
                format!("stride={}, padding={}", self.cfg.stride, self.cfg.padding),
                "stride=1 and padding=0 (padding='same' is not supported for strided convolutions)",
            ));
        }
        self.same = true;
        Ok(self)
    }

    /// The weight parameter.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias parameter, if any.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> Conv1dConfig {
        self.cfg
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped entry; as [`Conv1d::new`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let same = spec
            .config
            .get("padding")
            .and_then(serde_json::Value::as_str)
            == Some("same");
        let cfg = Conv1dConfig {
            padding: if same {
                0
            } else {
                spec.usize_or("padding", 0)?
            },
            stride: spec.usize_or("stride", 1)?,
            dilation: spec.usize_or("dilation", 1)?,
            groups: spec.usize_or("groups", 1)?,
            bias: spec.bool_or("bias", true)?,
        };
        let c = Conv1d::new(
            spec.usize("in_channels")?,
            spec.usize("out_channels")?,
            spec.usize("kernel_size")?,
            cfg,
        )?;
        if same { c.with_padding_same() } else { Ok(c) }
    }
}

/// Checks a `[N, C, L]` (or unbatched `[C, L]`) input; returns it as `[N, C, L]` and whether
/// it was unbatched.
pub(crate) fn batched_3d(module: &str, x: &Tensor) -> Result<(Tensor, bool)> {
    match x.rank() {
        3 => Ok((x.clone(), false)),
        2 => Ok((x.unsqueeze(0).ctx(module)?, true)),
        _ => Err(Error::InputRank {
            module: module.to_string(),
            expected: "3-D [N, C, L] (or unbatched 2-D [C, L])".into(),
            shape: shape_str(x.dims()),
        }),
    }
}

impl Module for Conv1d {
    fn type_name(&self) -> &'static str {
        "Conv1d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        let w = self.weight.tensor();
        check_input(&me, x, &w)?;
        let (x, unbatched) = batched_3d(&me, x)?;
        let dims = x.dims().to_vec();
        if dims[1] != self.in_channels {
            return Err(Error::ConvChannels {
                module: me,
                groups: self.cfg.groups,
                weight: shape_str(w.dims()),
                input: shape_str(&dims),
                expected: self.in_channels,
                got: dims[1],
            });
        }
        let d = self.cfg.dilation;
        let span = d * (self.kernel - 1);
        let (lo, hi) = if self.same {
            (span / 2, span - span / 2)
        } else {
            (self.cfg.padding, self.cfg.padding)
        };
        if dims[2] + lo + hi < span + 1 {
            return Err(Error::InputRank {
                module: me,
                expected: format!("a length of at least {} after padding {lo}+{hi}", span + 1),
                shape: shape_str(&dims),
            });
        }
        let xp = x
            .pad_with_zeros(2, lo, hi)
            .and_then(|x| x.unsqueeze(2))
            .ctx("Conv1d")?;
        let w4 = w.unsqueeze(2).ctx("Conv1d")?;
        let b = self.bias.as_ref().map(Param::tensor);
        let y =
            crate::nn::ops::conv2d(&xp, &w4, b.as_ref(), self.cfg.stride, 0, d, self.cfg.groups)?
                .squeeze(2)
                .ctx("Conv1d")?;
        if unbatched {
            y.squeeze(0).ctx("Conv1d")
        } else {
            Ok(y)
        }
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        let padding = if self.same {
            serde_json::Value::from("same")
        } else {
            serde_json::Value::from(self.cfg.padding)
        };
        ModuleSpec::new("Conv1d")
            .with("in_channels", self.in_channels)
            .with("out_channels", self.out_channels)
            .with("kernel_size", self.kernel)
            .with("stride", self.cfg.stride)
            .with("padding", padding)
            .with("dilation", self.cfg.dilation)
            .with("groups", self.cfg.groups)
            .with("bias", self.bias.is_some())
    }

    fn extra_repr(&self) -> String {
        let mut s = format!(
            "{}, {}, kernel_size=({},), stride=({},)",
            self.in_channels, self.out_channels, self.kernel, self.cfg.stride
        );
        if self.same {
            s.push_str(", padding=same");
        } else if self.cfg.padding != 0 {
            s.push_str(&format!(", padding=({},)", self.cfg.padding));
        }
        if self.cfg.dilation != 1 {
            s.push_str(&format!(", dilation=({},)", self.cfg.dilation));
        }
        if self.cfg.groups != 1 {
            s.push_str(&format!(", groups={}", self.cfg.groups));
        }
        if self.bias.is_none() {
            s.push_str(", bias=False");
        }
        s
    }

    impl_as_any!();
}
