//! `ConvTranspose1d` / `ConvTranspose2d` (PyTorch's `nn.ConvTranspose1d/2d`): stride,
//! padding, `output_padding`, dilation, groups and bias, and the functional
//! [`conv_transpose2d`].
//!
//! A transposed convolution is computed as the convolution it is the gradient of: the input
//! is spread out with `stride − 1` zeros between elements, padded by
//! `dilation·(k−1) − padding` (plus `output_padding` at the end; negative amounts crop), and
//! convolved (stride 1, same dilation and groups) with the weight flipped spatially and its
//! two channel axes swapped per group. Every step is a differentiable tensor op or kiln's
//! conv kernel, so the input, weight and bias gradients are exact.

use super::{check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::Tensor;

/// The options of [`ConvTranspose1d`] / [`ConvTranspose2d`], PyTorch's defaults: stride 1,
/// padding 0, `output_padding` 0, dilation 1, groups 1, bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTransposeConfig {
    /// Stride.
    pub stride: usize,
    /// `dilation·(k−1) − padding` zero padding is added on each side of the spread input.
    pub padding: usize,
    /// Extra size added to one side of the output (must be below the stride or dilation).
    pub output_padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Number of groups; both channel counts must be divisible by it.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for ConvTransposeConfig {
    fn default() -> Self {
        ConvTransposeConfig {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

/// Inserts `s − 1` zeros between the elements of dimension `dim`.
fn spread(x: &Tensor, dim: usize, s: usize) -> candle_core::Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let size = x.dim(dim)?;
    let mut zdims = x.dims().to_vec();
    zdims.insert(dim + 1, s - 1);
    let zeros = Tensor::zeros(zdims, x.dtype(), x.device())?;
    let y = Tensor::cat(&[&x.unsqueeze(dim + 1)?, &zeros], dim + 1)?;
    let mut merged = x.dims().to_vec();
    merged[dim] = size * s;
    y.reshape(merged)?.narrow(dim, 0, size * s - (s - 1))
}

/// Pads (positive) or crops (negative) `lo` / `hi` elements at the ends of `dim`.
fn pad_or_crop(x: &Tensor, dim: usize, lo: isize, hi: isize) -> candle_core::Result<Tensor> {
    let x = x.pad_with_zeros(dim, lo.max(0) as usize, hi.max(0) as usize)?;
    let (cl, ch) = ((-lo).max(0) as usize, (-hi).max(0) as usize);
    if cl + ch == 0 {
        return Ok(x);
    }
    let n = x.dim(dim)?;
    x.narrow(dim, cl, n - cl - ch)
}

/// The geometry of one spatial dimension.
#[derive(Clone, Copy, Debug)]
struct Axis {
    k: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

/// `[N, C_in, H, W]` ⋆ᵀ `w [C_in, C_out/groups, kh, kw]` with per-axis geometry.
fn transpose_conv(
    module: &str,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    axes: [Axis; 2],
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    let (n, cin, h, wd) = x.dims4().ctx(module)?;
    let (wcin, cout_g, kh, kw) = w.dims4().ctx(module)?;
    if groups == 0 || wcin != cin || cin % groups != 0 {
        return Err(Error::ConvChannels {
            module: module.to_string(),
            groups,
            weight: shape_str(w.dims()),
            input: shape_str(x.dims()),
            expected: wcin,
            got: cin,
        });
    }
    for (a, size) in axes.iter().zip([h, wd]) {
        let full = (size - 1) * a.stride + dilation * (a.k - 1) + a.output_padding + 1;
        if full <= 2 * a.padding {
            return Err(Error::InputRank {
                module: module.to_string(),
                expected: format!(
                    "an input whose output size (in−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1 is positive (padding {})",
                    a.padding
                ),
                shape: format!("{} [n={n}]", shape_str(x.dims())),
            });
        }
    }
    let spread_dims: Vec<usize> = axes
        .iter()
        .zip([h, wd])
        .map(|(a, size)| {
            size.saturating_mul(a.stride)
                .saturating_add(dilation.saturating_mul(a.k).saturating_mul(2))
        })
        .collect();
    super::check_alloc(&[n, cin, spread_dims[0], spread_dims[1]], x.dtype())?;
    let ctx = module.to_string();
    let mut xs = x.clone();
    for (i, a) in axes.iter().enumerate() {
        let dim = 2 + i;
        let lo = (dilation * (a.k - 1)) as isize - a.padding as isize;
        let hi = lo + a.output_padding as isize;
        xs = spread(&xs, dim, a.stride)
            .and_then(|t| pad_or_crop(&t, dim, lo, hi))
            .ctx(&ctx)?;
    }
    // The equivalent convolution's weight: flip kh and kw, swap the channel axes per group.
    let rev = |k: usize| Tensor::from_vec((0..k as u32).rev().collect::<Vec<u32>>(), k, w.device());
    let wf = w
        .index_select(&rev(kh).ctx(&ctx)?, 2)
        .and_then(|t| t.index_select(&rev(kw)?, 3))
        .and_then(|t| t.reshape((groups, cin / groups, cout_g, kh, kw)))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.reshape((groups * cout_g, cin / groups, kh, kw)))
        .ctx(&ctx)?;
    crate::nn::ops::conv2d(&xs, &wf, b, 1, 0, dilation, groups)
}

/// `F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)`
/// for `x [N, C_in, H, W]`, `weight [C_in, C_out/groups, kh, kw]`, `bias [C_out]`, square
/// stride/padding/output_padding/dilation.
///
/// # Errors
/// `K0203` for inputs of the wrong rank or an output that would be empty; `K0201` for
/// channels that do not match the weight; `K0003` for an `output_padding` not below the
/// stride or dilation.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
    groups: usize,
    dilation: usize,
) -> Result<Tensor> {
    let name = "conv_transpose2d";
    if x.rank() != 4 || weight.rank() != 4 {
        return Err(Error::InputRank {
            module: name.into(),
            expected: "4-D input [N, C, H, W] and 4-D weight [C_in, C_out/groups, kh, kw]".into(),
            shape: format!("{} and {}", shape_str(x.dims()), shape_str(weight.dims())),
        });
    }
    check_output_padding(name, stride, dilation, output_padding)?;
    let d = weight.dims();
    let ax = |k| Axis {
        k,
        stride,
        padding,
        output_padding,
    };
    transpose_conv(
        name,
        x,
        weight,
        bias,
        [ax(d[2]), ax(d[3])],
        dilation,
        groups,
    )
}

fn check_output_padding(module: &str, stride: usize, dilation: usize, op: usize) -> Result<()> {
    if stride == 0 || dilation == 0 {
        return Err(Error::invalid(
            format!("{module} stride/dilation"),
            format!("{stride}/{dilation}"),
            "positive values",
        ));
    }
    if op >= stride && op >= dilation {
        return Err(Error::invalid(
            format!("{module} output_padding"),
            op,
            format!(
                "a value smaller than either stride ({stride}) or dilation ({dilation}) (PyTorch: output padding must be smaller than either stride or dilation)"
            ),
        ));
    }
    Ok(())
}

/// The shared state of the two transposed convolutions.
struct Inner {
    weight: Param,
    bias: Option<Param>,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: ConvTransposeConfig,
}

impl Inner {
    fn new(
        layer: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        cfg: ConvTransposeConfig,
        spatial: usize,
    ) -> Result<Self> {
        let as_conv = super::Conv2dConfig {
            padding: cfg.padding,
            stride: cfg.stride,
            dilation: cfg.dilation,
            groups: cfg.groups,
            bias: cfg.bias,
        };
        super::conv1d::check_conv_args(layer, in_channels, out_channels, kernel, &as_conv)?;
        check_output_padding(layer, cfg.stride, cfg.dilation, cfg.output_padding)?;
        let mut dims = vec![in_channels, out_channels / cfg.groups];
        dims.extend(std::iter::repeat_n(kernel, spatial));
        let weight = init::default_weight(&dims)?;
        let bias = if cfg.bias {
            Some(Param::new(
                &init::default_bias(out_channels, init::fans(&dims).0)?,
                true,
            )?)
        } else {
            None
        };
        Ok(Inner {
            weight: Param::new(&weight, true)?,
            bias,
            in_channels,
            out_channels,
            kernel,
            cfg,
        })
    }

    fn from_spec(layer: &str, spec: &ModuleSpec, spatial: usize) -> Result<Self> {
        let cfg = ConvTransposeConfig {
            stride: spec.usize_or("stride", 1)?,
            padding: spec.usize_or("padding", 0)?,
            output_padding: spec.usize_or("output_padding", 0)?,
            dilation: spec.usize_or("dilation", 1)?,
            groups: spec.usize_or("groups", 1)?,
            bias: spec.bool_or("bias", true)?,
        };
        Inner::new(
            layer,
            spec.usize("in_channels")?,
            spec.usize("out_channels")?,
            spec.usize("kernel_size")?,
            cfg,
            spatial,
        )
    }

    fn params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn spec(&self, name: &str) -> ModuleSpec {
        ModuleSpec::new(name)
            .with("in_channels", self.in_channels)
            .with("out_channels", self.out_channels)
            .with("kernel_size", self.kernel)
            .with("stride", self.cfg.stride)
            .with("padding", self.cfg.padding)
            .with("output_padding", self.cfg.output_padding)
            .with("dilation", self.cfg.dilation)
            .with("groups", self.cfg.groups)
            .with("bias", self.bias.is_some())
    }

    /// PyTorch's `extra_repr`; `tuple` prints one value as `(v,)` or `(v, v)`.
    fn extra_repr(&self, tuple: fn(usize) -> String) -> String {
        let c = &self.cfg;
        let mut s = format!(
            "{}, {}, kernel_size={}, stride={}",
            self.in_channels,
            self.out_channels,
            tuple(self.kernel),
            tuple(c.stride)
        );
        if c.padding != 0 {
            s.push_str(&format!(", padding={}", tuple(c.padding)));
        }
        if c.dilation != 1 {
            s.push_str(&format!(", dilation={}", tuple(c.dilation)));
        }
        if c.output_padding != 0 {
            s.push_str(&format!(", output_padding={}", tuple(c.output_padding)));
        }
        if c.groups != 1 {
            s.push_str(&format!(", groups={}", c.groups));
        }
        if self.bias.is_none() {
            s.push_str(", bias=False");
        }
        s
    }

    fn axis(&self, k: usize) -> Axis {
        Axis {
            k,
            stride: self.cfg.stride,
            padding: self.cfg.padding,
            output_padding: self.cfg.output_padding,
        }
    }

    fn check(&self, me: &str, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.tensor();
        check_input(me, x, &w)?;
        if x.dim(1).ok() != Some(self.in_channels) {
            return Err(Error::ConvChannels {
                module: me.to_string(),
                groups: self.cfg.groups,
                weight: shape_str(w.dims()),
                input: shape_str(x.dims()),
                expected: self.in_channels,
                got: x.dim(1).unwrap_or(0),
            });
        }
        Ok(w)
    }
}

fn tuple1(v: usize) -> String {
    format!("({v},)")
}

fn tuple2(v: usize) -> String {
    format!("({v}, {v})")
}

macro_rules! transpose_layer {
    ($(#[$doc:meta])* $name:ident, $torch:literal, $spatial:literal) => {
        $(#[$doc])*
        pub struct $name {
            inner: Inner,
        }

        impl $name {
            #[doc = concat!("`", $torch, "(in_channels, out_channels, kernel_size, ...)` with PyTorch's initialisation (`kaiming_uniform_(a=√5)` with fan-in `out_channels/groups·k…`, bias `uniform(±1/√fan_in)`) from kiln's generator.")]
            ///
            /// # Errors
            /// `K0003` for channels not divisible by `groups`, a zero size, or an
            /// `output_padding` not below the stride or dilation.
            pub fn new(
                in_channels: usize,
                out_channels: usize,
                kernel_size: usize,
                cfg: ConvTransposeConfig,
            ) -> Result<Self> {
                Ok($name {
                    inner: Inner::new($torch, in_channels, out_channels, kernel_size, cfg, $spatial)?,
                })
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a missing or mistyped entry; as `new`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Ok($name {
                    inner: Inner::from_spec($torch, spec, $spatial)?,
                })
            }

            /// The weight parameter, `[in_channels, out_channels/groups, k…]`.
            pub fn weight(&self) -> &Param {
                &self.inner.weight
            }

            /// The bias parameter, if any.
            pub fn bias(&self) -> Option<&Param> {
                self.inner.bias.as_ref()
            }

            /// The configuration.
            pub fn config(&self) -> ConvTransposeConfig {
                self.inner.cfg
            }
        }
    };
}

transpose_layer!(
    /// PyTorch's `nn.ConvTranspose1d` over `[N, C, L]` (or unbatched `[C, L]`): weight
    /// `[in_channels, out_channels/groups, kernel_size]`, bias `[out_channels]`; output length
    /// `(L−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1`.
    ///
    /// ```
    /// use kiln::nn::{ConvTranspose1d, ConvTransposeConfig, Module};
    /// let cfg = ConvTransposeConfig { stride: 2, padding: 1, output_padding: 1, ..Default::default() };
    /// let up = ConvTranspose1d::new(4, 2, 3, cfg)?;
    /// assert_eq!(up.repr(), "ConvTranspose1d(4, 2, kernel_size=(3,), stride=(2,), padding=(1,), output_padding=(1,))");
    /// let x = candle_core::Tensor::zeros((1, 4, 5), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// assert_eq!(up.forward(&x)?.dims(), &[1, 2, 10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ConvTranspose1d, "ConvTranspose1d", 1
);
transpose_layer!(
    /// PyTorch's `nn.ConvTranspose2d` over `[N, C, H, W]` with a square kernel: weight
    /// `[in_channels, out_channels/groups, k, k]`, bias `[out_channels]`; output size
    /// `(H−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1`.
    ///
    /// ```
    /// use kiln::nn::{ConvTranspose2d, ConvTransposeConfig, Module};
    /// let cfg = ConvTransposeConfig { stride: 2, ..Default::default() };
    /// let up = ConvTranspose2d::new(4, 2, 2, cfg)?;
    /// let x = candle_core::Tensor::zeros((1, 4, 3, 5), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// assert_eq!(up.forward(&x)?.dims(), &[1, 2, 6, 10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ConvTranspose2d, "ConvTranspose2d", 2
);

impl Module for ConvTranspose1d {
    fn type_name(&self) -> &'static str {
        "ConvTranspose1d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        let (x, unbatched) = super::conv1d::batched_3d(&me, x)?;
        let w = self.inner.check(&me, &x)?;
        let x4 = x.unsqueeze(2).ctx(&me)?;
        let w4 = w.unsqueeze(2).ctx(&me)?;
        let b = self.inner.bias.as_ref().map(Param::tensor);
        let one = Axis {
            k: 1,
            stride: 1,
            padding: 0,
            output_padding: 0,
        };
        let axes = [one, self.inner.axis(self.inner.kernel)];
        let c = &self.inner.cfg;
        let y = transpose_conv(&me, &x4, &w4, b.as_ref(), axes, c.dilation, c.groups)?
            .squeeze(2)
            .ctx(&me)?;
        if unbatched {
            y.squeeze(0).ctx(&me)
        } else {
            Ok(y)
        }
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        self.inner.params()
    }

    fn spec(&self) -> ModuleSpec {
        self.inner.spec("ConvTranspose1d")
    }

    fn extra_repr(&self) -> String {
        self.inner.extra_repr(tuple1)
    }

    impl_as_any!();
}

impl Module for ConvTranspose2d {
    fn type_name(&self) -> &'static str {
        "ConvTranspose2d"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let me = self.repr();
        let (x, unbatched) = match x.rank() {
            4 => (x.clone(), false),
            3 => (x.unsqueeze(0).ctx(&me)?, true),
            _ => {
                return Err(Error::InputRank {
                    module: me,
                    expected: "4-D [N, C, H, W] (or unbatched 3-D [C, H, W])".into(),
                    shape: shape_str(x.dims()),
                });
            }
        };
        let w = self.inner.check(&me, &x)?;
        let b = self.inner.bias.as_ref().map(Param::tensor);
        let k = self.inner.kernel;
        let axes = [self.inner.axis(k), self.inner.axis(k)];
        let c = &self.inner.cfg;
        let y = transpose_conv(&me, &x, &w, b.as_ref(), axes, c.dilation, c.groups)?;
        if unbatched {
            y.squeeze(0).ctx(&me)
        } else {
            Ok(y)
        }
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        self.inner.params()
    }

    fn spec(&self) -> ModuleSpec {
        self.inner.spec("ConvTranspose2d")
    }

    fn extra_repr(&self) -> String {
        self.inner.extra_repr(tuple2)
    }

    impl_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn spread_and_crop() {
        let x = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu).unwrap();
        let s: Vec<Vec<f32>> = spread(&x, 1, 3).unwrap().to_vec2().unwrap();
        assert_eq!(s, vec![vec![1., 0., 0., 2., 0., 0., 3.]]);
        let c: Vec<Vec<f32>> = pad_or_crop(&x, 1, -1, 2).unwrap().to_vec2().unwrap();
        assert_eq!(c, vec![vec![2., 3., 0., 0.]]);
    }

    #[test]
    fn output_padding_must_be_below_stride_or_dilation() {
        let cfg = ConvTransposeConfig {
            stride: 2,
            output_padding: 2,
            ..Default::default()
        };
        let e = ConvTranspose2d::new(2, 2, 3, cfg).err().unwrap();
        assert_eq!(e.code(), "K0003");
        assert!(e.to_string().contains("output_padding"), "{e}");
    }
}
