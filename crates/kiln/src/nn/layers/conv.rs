//! `Conv2d`: 2-D convolution with stride, padding (a number, or PyTorch's `padding='same'`
//! through [`Conv2d::with_padding_same`]), dilation, groups (grouped and depthwise
//! convolutions) and bias: PyTorch's `nn.Conv2d` with square stride/padding/dilation.

use super::{check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::Tensor;

/// Hyper-parameters of a [`Conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Zero padding on each side.
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Number of groups; `in_channels` and `out_channels` must be divisible by it.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

/// A 2-D convolution, weight `[out_channels, in_channels/groups, kh, kw]`.
pub struct Conv2d {
    weight: Param,
    bias: Option<Param>,
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    cfg: Conv2dConfig,
    /// PyTorch's `padding='same'`: the output has the input's size (stride 1); the padding
    /// `dilation·(k−1)` is split with the extra row/column at the bottom/right, as in PyTorch.
    same: bool,
    /// `training`: kept so `eval()` is recorded even in models without Dropout/BatchNorm.
    mode: super::ModeFlag,
}

impl Conv2d {
    /// A square-kernel convolution with PyTorch's default initialisation.
    ///
    /// # Errors
    /// `K0003` when the channels are not divisible by `groups` or a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        cfg: Conv2dConfig,
    ) -> Result<Self> {
        if cfg.groups == 0 || in_channels % cfg.groups != 0 || out_channels % cfg.groups != 0 {
            return Err(Error::invalid(
                "Conv2d groups",
                cfg.groups,
                format!("a divisor of in_channels={in_channels} and out_channels={out_channels}"),
            ));
        }
        if kernel_size == 0 || cfg.stride == 0 || cfg.dilation == 0 {
            return Err(Error::invalid(
                "Conv2d kernel_size/stride/dilation",
                format!("{kernel_size}/{}/{}", cfg.stride, cfg.dilation),
                "positive values",
            ));
        }
        let dims = [
            out_channels,
            in_channels / cfg.groups,
            kernel_size,
            kernel_size,
        ];
        let w = init::default_weight(&dims)?;
        let b = if cfg.bias {
            Some(init::default_bias(out_channels, init::fans(&dims).0)?)
        } else {
            None
        };
        Self::from_tensors(w, b, cfg)
    }

    /// A convolution with given weight and bias.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, cfg: Conv2dConfig) -> Result<Self> {
        let (out_channels, in_per_group, kh, kw) =
            weight.dims4().ctx("Conv2d weight must be 4-D")?;
        Ok(Conv2d {
            weight: Param::new(&weight, true)?,
            bias: bias.map(|b| Param::new(&b, true)).transpose()?,
            in_channels: in_per_group * cfg.groups,
            out_channels,
            kernel: (kh, kw),
            cfg: Conv2dConfig {
                bias: cfg.bias,
                ..cfg
            },
            same: false,
            mode: super::ModeFlag::default(),
        })
    }

    /// PyTorch's `padding='same'`: pads so that the output has the input's height and width,
    /// `dilation·(k−1)` in total per dimension, the odd one at the bottom/right (as PyTorch).
    /// `Conv2dConfig.padding` must be 0 and the stride 1 (PyTorch: "padding='same' is not
    /// supported for strided convolutions").
    ///
    /// ```
    /// use kiln::nn::{Conv2d, Conv2dConfig, Module};
    /// let dw = Conv2d::new(8, 8, 3, Conv2dConfig { groups: 8, ..Default::default() })?
    ///     .with_padding_same()?;
    /// let x = candle_core::Tensor::zeros((1, 8, 5, 7), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// assert_eq!(dw.forward(&x)?.dims(), &[1, 8, 5, 7]);
    /// assert!(dw.repr().contains("padding=same"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `K0003` for a stride other than 1 or a non-zero numeric padding.
    pub fn with_padding_same(mut self) -> Result<Self> {
        if self.cfg.stride != 1 || self.cfg.padding != 0 {
            return Err(Error::invalid(
                format!("{} padding='same'", self.describe()),
                format!("stride={}, padding={}", self.cfg.stride, self.cfg.padding),
                "stride=1 and padding=0 (padding='same' is not supported for strided convolutions)",
            ));
        }
        self.same = true;
        Ok(self)
    }

    /// Whether the layer pads like PyTorch's `padding='same'`.
    pub fn is_padding_same(&self) -> bool {
        self.same
    }

    /// Kernel height and width.
    pub fn kernel_size(&self) -> (usize, usize) {
        self.kernel
    }

    /// Replaces the weight's initial values with `kaiming_normal_(fan_out, relu)` (torchvision).
    pub fn kaiming_normal_fan_out(&self) -> Result<()> {
        self.weight
            .set(&init::kaiming_normal_fan_out(&self.weight.dims())?)
    }

    /// The weight parameter.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias parameter, if any.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The configuration.
    pub fn config(&self) -> Conv2dConfig {
        self.cfg
    }

    fn describe(&self) -> String {
        format!("Conv2d({})", self.extra_repr())
    }

    /// The convolution itself, on tensors already checked and (under autocast) rounded.
    fn conv(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() != 4 {
            return Err(Error::InputRank {
                module: self.describe(),
                expected: "4-D [N, C, H, W]".into(),
                shape: shape_str(dims),
            });
        }
        if dims[1] != self.in_channels {
            return Err(Error::ConvChannels {
                module: self.describe(),
                groups: self.cfg.groups,
                weight: shape_str(w.dims()),
                input: shape_str(dims),
                expected: self.in_channels,
                got: dims[1],
            });
        }
        let d = self.cfg.dilation;
        if self.same {
            let (th, tw) = (d * (self.kernel.0 - 1), d * (self.kernel.1 - 1));
            if th == tw && th % 2 == 0 {
                let g = self.cfg.groups;
                return crate::nn::ops::conv2d(x, w, b, 1, th / 2, d, g);
            }
            let ctx = "Conv2d padding='same'";
            let xp = x
                .pad_with_zeros(2, th / 2, th - th / 2)
                .and_then(|x| x.pad_with_zeros(3, tw / 2, tw - tw / 2))
                .ctx(ctx)?;
            return crate::nn::ops::conv2d(&xp, w, b, 1, 0, d, self.cfg.groups);
        }
        let eff_h = self.cfg.dilation * (self.kernel.0 - 1) + 1;
        let eff_w = self.cfg.dilation * (self.kernel.1 - 1) + 1;
        if dims[2] + 2 * self.cfg.padding < eff_h || dims[3] + 2 * self.cfg.padding < eff_w {
            return Err(Error::InputRank {
                module: self.describe(),
                expected: format!(
                    "an image at least {eff_h}x{eff_w} after padding {}",
                    self.cfg.padding
                ),
                shape: shape_str(dims),
            });
        }
        crate::nn::ops::conv2d(
            x,
            w,
            b,
            self.cfg.stride,
            self.cfg.padding,
            self.cfg.dilation,
            self.cfg.groups,
        )
    }

    fn padding_value(&self) -> serde_json::Value {
        if self.same {
            serde_json::Value::from("same")
        } else {
            serde_json::Value::from(self.cfg.padding)
        }
    }
}

impl Module for Conv2d {
    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn training_flag(&self) -> Option<bool> {
        Some(self.mode.get())
    }

    fn type_name(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.tensor();
        check_input(&self.describe(), x, &w)?;
        let b = self.bias.as_ref().map(Param::tensor);
        // Autocast (`crate::amp::autocast`): input, weight and bias rounded to bf16/f16 on
        // the way in, f32 accumulation, the output rounded once on the way out.
        if crate::amp::autocast::current().is_some() {
            use crate::amp::autocast::{round, round_opt};
            let (xr, wr, br) = (round(x)?, round(&w)?, round_opt(b.as_ref())?);
            return round(&self.conv(&xr, &wr, br.as_ref())?);
        }
        self.conv(x, &w, b.as_ref())
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Conv2d")
            .with("in_channels", self.in_channels)
            .with("out_channels", self.out_channels)
            .with("kernel_size", vec![self.kernel.0, self.kernel.1])
            .with("stride", self.cfg.stride)
            .with("padding", self.padding_value())
            .with("dilation", self.cfg.dilation)
            .with("groups", self.cfg.groups)
            .with("bias", self.bias.is_some())
    }

    fn extra_repr(&self) -> String {
        let mut s = format!(
            "{}, {}, kernel_size=({}, {}), stride=({}, {})",
            self.in_channels,
            self.out_channels,
            self.kernel.0,
            self.kernel.1,
            self.cfg.stride,
            self.cfg.stride
        );
        if self.same {
            s.push_str(", padding=same");
        } else if self.cfg.padding != 0 {
            s.push_str(&format!(", padding=({0}, {0})", self.cfg.padding));
        }
        if self.cfg.dilation != 1 {
            s.push_str(&format!(", dilation=({0}, {0})", self.cfg.dilation));
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

/// Builds a [`Conv2d`] from its spec (non-square kernels are supported by the spec).
pub(crate) fn from_spec(spec: &ModuleSpec) -> Result<Conv2d> {
    let ks = spec.usize_list("kernel_size")?;
    let (kh, kw) = match ks.as_slice() {
        [k] => (*k, *k),
        [h, w] => (*h, *w),
        _ => {
            return Err(Error::BadSpec {
                detail: "Conv2d: kernel_size must have 1 or 2 entries".into(),
            });
        }
    };
    let same = spec
        .config
        .get("padding")
        .and_then(serde_json::Value::as_str)
        == Some("same");
    let cfg = Conv2dConfig {
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
    let (cin, cout) = (spec.usize("in_channels")?, spec.usize("out_channels")?);
    let conv = if kh == kw {
        Conv2d::new(cin, cout, kh, cfg)?
    } else {
        non_square(cin, cout, (kh, kw), cfg)?
    };
    if same {
        conv.with_padding_same()
    } else {
        Ok(conv)
    }
}

fn non_square(
    cin: usize,
    cout: usize,
    (kh, kw): (usize, usize),
    cfg: Conv2dConfig,
) -> Result<Conv2d> {
    if cfg.groups == 0 || cin % cfg.groups != 0 {
        return Err(Error::BadSpec {
            detail: format!(
                "Conv2d: groups={} does not divide in_channels={cin}",
                cfg.groups
            ),
        });
    }
    let dims = [cout, cin / cfg.groups, kh, kw];
    let w = init::default_weight(&dims)?;
    let b = if cfg.bias {
        Some(init::default_bias(cout, init::fans(&dims).0)?)
    } else {
        None
    };
    Conv2d::from_tensors(w, b, cfg)
}
