//! `LSTM` and `GRU`: PyTorch's `nn.LSTM` / `nn.GRU` (stacked, bidirectional, `batch_first`,
//! inter-layer dropout, initial states, LSTM projections), with PyTorch's parameter names
//! (`weight_ih_l0`, `weight_hh_l0_reverse`, …), gate order and initialisation, and a
//! `lengths` argument with the semantics of `pack_padded_sequence(enforce_sorted=False)`.

use super::{Dropout, ModeFlag, check_input, impl_as_any, py_bool, py_float};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::functional::{sigmoid, tanh};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::{D, Tensor};

/// The options of [`LSTM`] and [`GRU`] besides `input_size` and `hidden_size`, with
/// PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    /// Stacked layers; default 1.
    pub num_layers: usize,
    /// `bias_ih_l*` / `bias_hh_l*`; default true.
    pub bias: bool,
    /// `(batch, seq, feature)` input and output (not the states); default false.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last (training mode); default 0.
    pub dropout: f64,
    /// A second, reversed direction per layer; default false.
    pub bidirectional: bool,
    /// LSTM only: project `h` to this size with `weight_hr_l*` (0 = no projection).
    pub proj_size: usize,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            proj_size: 0,
        }
    }
}

/// Which recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    pub(crate) fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }
}

/// The weights of one (layer, direction).
struct DirWeights {
    w_ih: Param,
    w_hh: Param,
    b_ih: Option<Param>,
    b_hh: Option<Param>,
    w_hr: Option<Param>,
    suffix: String,
}

/// The recurrence shared by [`LSTM`] and [`GRU`].
struct Rnn {
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    cfg: RnnConfig,
    dirs: Vec<DirWeights>,
    training: ModeFlag,
}

/// One LSTM step: `(h, c)` → `(h', c')` with PyTorch's gate order `i, f, g, o`; `gx` is
/// `W_ih x + b_ih` (`[B, 4H]`).
pub(crate) fn lstm_step(
    gx: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    w_hr: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let op = "LSTM step";
    let g = (gx + crate::nn::ops::linear(h, w_hh, b_hh)?).ctx(op)?;
    let ch = g.chunk(4, D::Minus1).ctx(op)?;
    let i = sigmoid(&ch[0])?;
    let f = sigmoid(&ch[1])?;
    let gg = tanh(&ch[2])?;
    let o = sigmoid(&ch[3])?;
    let c2 = ((f * c).ctx(op)? + (i * gg).ctx(op)?).ctx(op)?;
    let mut h2 = (o * tanh(&c2)?).ctx(op)?;
    if let Some(w) = w_hr {
        h2 = crate::nn::ops::linear(&h2, w, None)?;
    }
    Ok((h2, c2))
}

/// One GRU step with PyTorch's gates `r, z, n` and `n = tanh(W_in x + b_in + r ⊙ (W_hn h +
/// b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`; `gx` is `W_ih x + b_ih` (`[B, 3H]`).
pub(crate) fn gru_step(
    gx: &Tensor,
    h: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
) -> Result<Tensor> {
    let op = "GRU step";
    let gh = crate::nn::ops::linear(h, w_hh, b_hh)?;
    let x = gx.chunk(3, D::Minus1).ctx(op)?;
    let hh = gh.chunk(3, D::Minus1).ctx(op)?;
    let r = sigmoid(&(&x[0] + &hh[0]).ctx(op)?)?;
    let z = sigmoid(&(&x[1] + &hh[1]).ctx(op)?)?;
    let n = tanh(&(&x[2] + (r * &hh[2]).ctx(op)?).ctx(op)?)?;
    // (1 - z) n + z h = n + z (h - n)
    (&n + (z * (h - &n).ctx(op)?).ctx(op)?).ctx(op)
}

/// Blends a step into the running state for sequences that have ended: `m ⊙ new + (1 − m) ⊙
/// old` with `m` 1 for the batch rows still inside their length.
fn keep(m: Option<&(Tensor, Tensor)>, new: Tensor, old: &Tensor) -> Result<Tensor> {
    match m {
        None => Ok(new),
        Some((m, inv)) => (new.broadcast_mul(m).ctx("rnn lengths")?
            + old.broadcast_mul(inv).ctx("rnn lengths")?)
        .ctx("rnn lengths"),
    }
}

impl Rnn {
    fn new(cell: Cell, input_size: usize, hidden_size: usize, cfg: RnnConfig) -> Result<Self> {
        let name = cell.name();
        if input_size == 0 || hidden_size == 0 || cfg.num_layers == 0 {
            return Err(Error::invalid(
                format!("{name} sizes"),
                format!(
                    "input_size={input_size}, hidden_size={hidden_size}, num_layers={}",
                    cfg.num_layers
                ),
                "positive input_size, hidden_size and num_layers",
            ));
        }
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                format!("{name} dropout"),
                cfg.dropout,
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed",
            ));
        }
        if cfg.proj_size > 0 && cell != Cell::Lstm {
            return Err(Error::invalid(
                format!("{name} proj_size"),
                cfg.proj_size,
                "0: proj_size argument is only supported for LSTM, not RNN or GRU",
            ));
        }
        if cfg.proj_size >= hidden_size && cfg.proj_size > 0 {
            return Err(Error::invalid(
                "LSTM proj_size",
                cfg.proj_size,
                format!("proj_size has to be smaller than hidden_size={hidden_size}"),
            ));
        }
        let ndir = if cfg.bidirectional { 2 } else { 1 };
        let h_out = if cfg.proj_size > 0 {
            cfg.proj_size
        } else {
            hidden_size
        };
        let g = cell.gates() * hidden_size;
        let k = 1.0 / (hidden_size as f64).sqrt();
        let u =
            |dims: &[usize]| -> Result<Param> { Param::new(&init::uniform(dims, -k, k)?, true) };
        let mut dirs = Vec::new();
        for layer in 0..cfg.num_layers {
            let inp = if layer == 0 { input_size } else { h_out * ndir };
            for d in 0..ndir {
                let suffix = format!("_l{layer}{}", if d == 1 { "_reverse" } else { "" });
                let w_ih = u(&[g, inp])?;
                let w_hh = u(&[g, h_out])?;
                let (b_ih, b_hh) = if cfg.bias {
                    (Some(u(&[g])?), Some(u(&[g])?))
                } else {
                    (None, None)
                };
                let w_hr = if cfg.proj_size > 0 {
                    Some(u(&[cfg.proj_size, hidden_size])?)
                } else {
                    None
                };
                dirs.push(DirWeights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr,
                    suffix,
                });
            }
        }
        Ok(Rnn {
            cell,
            input_size,
            hidden_size,
            cfg,
            dirs,
            training: ModeFlag::default(),
        })
    }

    fn from_spec(cell: Cell, spec: &ModuleSpec) -> Result<Self> {
        let d = RnnConfig::default();
        Self::new(
            cell,
            spec.usize("input_size")?,
            spec.usize("hidden_size")?,
            RnnConfig {
                num_layers: spec.usize_or("num_layers", d.num_layers)?,
                bias: spec.bool_or("bias", d.bias)?,
                batch_first: spec.bool_or("batch_first", d.batch_first)?,
                dropout: spec.f64_or("dropout", d.dropout)?,
                bidirectional: spec.bool_or("bidirectional", d.bidirectional)?,
                proj_size: spec.usize_or("proj_size", d.proj_size)?,
            },
        )
    }

    fn ndir(&self) -> usize {
        if self.cfg.bidirectional { 2 } else { 1 }
    }

    fn h_out(&self) -> usize {
        if self.cfg.proj_size > 0 {
            self.cfg.proj_size
        } else {
            self.hidden_size
        }
    }

    fn extra_repr(&self) -> String {
        let mut s = format!("{}, {}", self.input_size, self.hidden_size);
        let c = &self.cfg;
        if c.proj_size != 0 {
            s += &format!(", proj_size={}", c.proj_size);
        }
        if c.num_layers != 1 {
            s += &format!(", num_layers={}", c.num_layers);
        }
        if !c.bias {
            s += ", bias=False";
        }
        if c.batch_first {
            s += ", batch_first=True";
        }
        if c.dropout != 0.0 {
            s += &format!(", dropout={}", py_float(c.dropout));
        }
        if c.bidirectional {
            s += &format!(", bidirectional={}", py_bool(true));
        }
        s
    }

    fn describe(&self) -> String {
        format!("{}({})", self.cell.name(), self.extra_repr())
    }

    fn params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        for d in &self.dirs {
            v.push((format!("weight_ih{}", d.suffix), d.w_ih.clone()));
            v.push((format!("weight_hh{}", d.suffix), d.w_hh.clone()));
            if let Some(b) = &d.b_ih {
                v.push((format!("bias_ih{}", d.suffix), b.clone()));
            }
            if let Some(b) = &d.b_hh {
                v.push((format!("bias_hh{}", d.suffix), b.clone()));
            }
            if let Some(w) = &d.w_hr {
                v.push((format!("weight_hr{}", d.suffix), w.clone()));
            }
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        let c = &self.cfg;
        let s = ModuleSpec::new(self.cell.name())
            .with("input_size", self.input_size)
            .with("hidden_size", self.hidden_size)
            .with("num_layers", c.num_layers)
            .with("bias", c.bias)
            .with("batch_first", c.batch_first)
            .with("dropout", c.dropout)
            .with("bidirectional", c.bidirectional);
        if self.cell == Cell::Lstm {
            s.with("proj_size", c.proj_size)
        } else {
            s
        }
    }

    fn shape_err(&self, what: &str, got: &[usize], expected: String) -> Error {
        Error::SequenceShape {
            module: self.describe(),
            what: what.to_string(),
            got: shape_str(got),
            expected,
        }
    }

    /// An initial state given by the caller, as `[L·D, B, size]`.
    fn state(
        &self,
        what: &str,
        s: &Tensor,
        batched: bool,
        b: usize,
        size: usize,
    ) -> Result<Tensor> {
        let ld = self.cfg.num_layers * self.ndir();
        let want: Vec<usize> = if batched {
            vec![ld, b, size]
        } else {
            vec![ld, size]
        };
        if s.dims() != want.as_slice() {
            return Err(self.shape_err(what, s.dims(), shape_str(&want)));
        }
        if batched {
            Ok(s.clone())
        } else {
            s.unsqueeze(1).ctx(what)
        }
    }

    /// The whole forward: `(output, h_n, c_n)` (`c_n` for the LSTM).
    fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let name = self.cell.name();
        let first = &self.dirs[0].w_ih.tensor();
        check_input(&self.describe(), x, first)?;
        let batched = match x.rank() {
            3 => true,
            2 => false,
            _ => {
                let l = if self.cfg.batch_first {
                    "(N, L, H_in)"
                } else {
                    "(L, N, H_in)"
                };
                return Err(self.shape_err(
                    "input",
                    x.dims(),
                    format!("{l} (batched) or (L, H_in) (unbatched)"),
                ));
            }
        };
        if x.dims()[x.rank() - 1] != self.input_size {
            return Err(self.shape_err(
                "input",
                x.dims(),
                format!(
                    "[..., {}] (input.size(-1) must be equal to input_size)",
                    self.input_size
                ),
            ));
        }
        // PyTorch's internal layout: (T, B, I).
        let x = if !batched {
            x.unsqueeze(1).ctx(name)?
        } else if self.cfg.batch_first {
            x.transpose(0, 1).ctx(name)?
        } else {
            x.clone()
        };
        let (t_all, b, _) = x.dims3().ctx(name)?;
        let (t, masks) = match lengths {
            None => (t_all, None),
            Some(l) => {
                let t = self.check_lengths(l, b, t_all)?;
                (t, Some(step_masks(l, t, &x)?))
            }
        };
        let x = if t < t_all {
            x.narrow(0, 0, t).ctx(name)?
        } else {
            x
        };
        let h_out = self.h_out();
        let ld = self.cfg.num_layers * self.ndir();
        let zeros = |size: usize| Tensor::zeros((ld, b, size), x.dtype(), x.device()).ctx(name);
        let h0 = match h0 {
            Some(h) => self.state(
                if self.cell == Cell::Lstm { "h0" } else { "hx" },
                h,
                batched,
                b,
                h_out,
            )?,
            None => zeros(h_out)?,
        };
        let c0 = match (self.cell, c0) {
            (Cell::Lstm, Some(c)) => Some(self.state("c0", c, batched, b, self.hidden_size)?),
            (Cell::Lstm, None) => Some(zeros(self.hidden_size)?),
            _ => None,
        };
        let mut layer_in = x;
        let (mut hn, mut cn) = (Vec::new(), Vec::new());
        for layer in 0..self.cfg.num_layers {
            let mut outs = Vec::new();
            for d in 0..self.ndir() {
                let idx = layer * self.ndir() + d;
                let h = h0.get(idx).ctx(name)?;
                let c = c0.as_ref().map(|c| c.get(idx)).transpose().ctx(name)?;
                let (o, h, c) =
                    self.direction(&self.dirs[idx], &layer_in, h, c, d == 1, masks.as_deref())?;
                outs.push(o);
                hn.push(h);
                cn.extend(c);
            }
            layer_in = if outs.len() == 1 {
                outs.remove(0)
            } else {
                Tensor::cat(&outs, D::Minus1).ctx(name)?
            };
            if layer + 1 < self.cfg.num_layers && self.training.get() && self.cfg.dropout > 0.0 {
                layer_in = Dropout::new(self.cfg.dropout)?.forward(&layer_in)?;
            }
        }
        let mut out = layer_in;
        let mut h_n = Tensor::stack(&hn, 0).ctx(name)?;
        let mut c_n = if cn.is_empty() {
            None
        } else {
            Some(Tensor::stack(&cn, 0).ctx(name)?)
        };
        if !batched {
            out = out.squeeze(1).ctx(name)?;
            h_n = h_n.squeeze(1).ctx(name)?;
            c_n = c_n.map(|c| c.squeeze(1)).transpose().ctx(name)?;
        } else if self.cfg.batch_first {
            out = out.transpose(0, 1).ctx(name)?;
        }
        Ok((out, h_n, c_n))
    }

    /// `lengths` must name every batch row with `1 ≤ len ≤ T`; returns `max(lengths)`, the
    /// output length (`pad_packed_sequence`'s default).
    fn check_lengths(&self, l: &[usize], b: usize, t: usize) -> Result<usize> {
        if l.len() != b {
            return Err(self.shape_err(
                "lengths",
                &[l.len()],
                format!("[{b}] (one length per batch row)"),
            ));
        }
        if let Some(bad) = l.iter().find(|&&v| v == 0 || v > t) {
            return Err(Error::invalid(
                format!("{} lengths", self.describe()),
                bad,
                format!(
                    "lengths between 1 and the sequence length {t} (PyTorch: Length of all samples has to be greater than 0)"
                ),
            ));
        }
        Ok(l.iter().copied().max().unwrap_or(t))
    }

    /// One direction of one layer over the whole sequence.
    fn direction(
        &self,
        w: &DirWeights,
        x: &Tensor,
        mut h: Tensor,
        mut c: Option<Tensor>,
        reverse: bool,
        masks: Option<&[(Tensor, Tensor)]>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let name = self.cell.name();
        let (t, b, i) = x.dims3().ctx(name)?;
        let w_ih = w.w_ih.tensor();
        let b_ih = w.b_ih.as_ref().map(Param::tensor);
        let gx = crate::nn::ops::linear(&x.reshape((t * b, i)).ctx(name)?, &w_ih, b_ih.as_ref())?
            .reshape((t, b, ()))
            .ctx(name)?;
        let w_hh = w.w_hh.tensor();
        let b_hh = w.b_hh.as_ref().map(Param::tensor);
        let w_hr = w.w_hr.as_ref().map(Param::tensor);
        let mut outs: Vec<Tensor> = Vec::with_capacity(t);
        let order: Vec<usize> = if reverse {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        };
        for s in order {
            let g = gx.get(s).ctx(name)?;
            let m = masks.and_then(|m| m.get(s));
            let h_new = match (&self.cell, &c) {
                (Cell::Lstm, Some(cc)) => {
                    let (h2, c2) = lstm_step(&g, &h, cc, &w_hh, b_hh.as_ref(), w_hr.as_ref())?;
                    c = Some(keep(m, c2, cc)?);
                    h2
                }
                _ => gru_step(&g, &h, &w_hh, b_hh.as_ref())?,
            };
            let out = match m {
                Some((mm, _)) => h_new.broadcast_mul(mm).ctx(name)?,
                None => h_new.clone(),
            };
            h = keep(m, h_new, &h)?;
            outs.push(out);
        }
        if reverse {
            outs.reverse();
        }
        Ok((Tensor::stack(&outs, 0).ctx(name)?, h, c))
    }
}

/// For each step `t`, `(m, 1 − m)` of shape `[B, 1]` with `m = 1` where `t < lengths[b]`.
fn step_masks(lengths: &[usize], t: usize, like: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
    let b = lengths.len();
    (0..t)
        .map(|s| {
            let m: Vec<f32> = lengths
                .iter()
                .map(|&l| if s < l { 1.0 } else { 0.0 })
                .collect();
            let inv: Vec<f32> = m.iter().map(|v| 1.0 - v).collect();
            let mk = |v: Vec<f32>| {
                Tensor::from_vec(v, (b, 1), &candle_core::Device::Cpu)
                    .and_then(|t| t.to_dtype(like.dtype()))
                    .and_then(|t| t.to_device(like.device()))
                    .ctx("rnn lengths")
            };
            Ok((mk(m)?, mk(inv)?))
        })
        .collect()
}

macro_rules! rnn_module {
    ($ty:ident, $cell:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty(Rnn);

        impl $ty {
            /// With PyTorch's defaults (one layer, bias, sequence-first, unidirectional).
            ///
            /// # Errors
            /// `K0003` for a zero size.
            pub fn new(input_size: usize, hidden_size: usize) -> Result<Self> {
                Self::with(input_size, hidden_size, RnnConfig::default())
            }

            /// With explicit options. Every weight and bias is drawn from
            /// `uniform(−1/√hidden_size, 1/√hidden_size)` (kiln's generator), as in PyTorch.
            ///
            /// # Errors
            /// `K0003` for a zero size or layer count, a dropout outside `[0, 1]`, or a
            /// `proj_size` PyTorch refuses.
            pub fn with(input_size: usize, hidden_size: usize, cfg: RnnConfig) -> Result<Self> {
                Ok($ty(Rnn::new($cell, input_size, hidden_size, cfg)?))
            }

            /// Rebuilds the layer from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a missing or mistyped config entry; as `with`.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Ok($ty(Rnn::from_spec($cell, spec)?))
            }

            /// `input_size`.
            pub fn input_size(&self) -> usize {
                self.0.input_size
            }

            /// `hidden_size`.
            pub fn hidden_size(&self) -> usize {
                self.0.hidden_size
            }

            /// The options.
            pub fn config(&self) -> RnnConfig {
                self.0.cfg
            }
        }

        impl Module for $ty {
            fn type_name(&self) -> &'static str {
                $cell.name()
            }

            /// The output sequence only (zero initial states).
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(self.0.run(x, None, None, None)?.0)
            }

            fn local_params(&self) -> Vec<(String, Param)> {
                self.0.params()
            }

            fn set_training(&self, training: bool) {
                self.0.training.set(training);
            }

            fn training_flag(&self) -> Option<bool> {
                Some(self.0.training.get())
            }

            fn spec(&self) -> ModuleSpec {
                self.0.spec()
            }

            fn extra_repr(&self) -> String {
                self.0.extra_repr()
            }

            impl_as_any!();
        }
    };
}

rnn_module!(
    LSTM,
    Cell::Lstm,
    "A multi-layer long short-term memory network (PyTorch's `nn.LSTM`): gates `i, f, g, o`, \
`c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')` (then `W_hr h'` with `proj_size`). Keys \
`weight_ih_l{k}` `[4H, in]`, `weight_hh_l{k}` `[4H, H_out]`, `bias_ih_l{k}`, `bias_hh_l{k}`, \
`weight_hr_l{k}`, with `_reverse` for the second direction, in PyTorch's order."
);

rnn_module!(
    GRU,
    Cell::Gru,
    "A multi-layer gated recurrent unit network (PyTorch's `nn.GRU`): gates `r, z, n` with \
`n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`. Keys \
`weight_ih_l{k}` `[3H, in]`, `weight_hh_l{k}` `[3H, H]`, `bias_ih_l{k}`, `bias_hh_l{k}` (and \
`_reverse`)."
);

impl LSTM {
    /// PyTorch's `forward(input, (h_0, c_0))` → `(output, (h_n, c_n))`, with `lengths` for
    /// padded batches.
    ///
    /// Shapes: input `(L, N, H_in)` (`(N, L, H_in)` with `batch_first`, `(L, H_in)`
    /// unbatched); `h_0`/`h_n` `(D·num_layers, N, H_out)`, `c_0`/`c_n`
    /// `(D·num_layers, N, hidden_size)` (no `N` unbatched; never batch-first); output
    /// `(L, N, D·H_out)`. Zero states when `state` is `None`.
    ///
    /// `lengths` (one per batch row, any order) does what `pack_padded_sequence(x, lengths,
    /// enforce_sorted=False)` → LSTM → `pad_packed_sequence` does: the output has
    /// `max(lengths)` steps and is zero past each row's length, `h_n`/`c_n` are taken at each
    /// row's last valid step, and the reverse direction starts at that step.
    ///
    /// # Errors
    /// `K0220` for an input, state or `lengths` of the wrong shape; `K0003` for a length of 0
    /// or longer than the sequence; `K0301`/`K0302` for another device or dtype.
    pub fn forward_with(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (h0, c0) = state.unzip();
        let (out, h, c) = self.0.run(x, h0, c0, lengths)?;
        let c = c.ok_or_else(|| Error::Unsupported {
            what: "LSTM without a cell state".into(),
        })?;
        Ok((out, (h, c)))
    }
}

impl GRU {
    /// PyTorch's `forward(input, h_0)` → `(output, h_n)`, with `lengths` for padded
    /// batches (see [`LSTM::forward_with`] for the shapes and the `lengths` semantics).
    ///
    /// # Errors
    /// As [`LSTM::forward_with`].
    pub fn forward_with(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let (out, h, _) = self.0.run(x, h0, None, lengths)?;
        Ok((out, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn keys_follow_pytorch() {
        let m = LSTM::with(
            3,
            4,
            RnnConfig {
                num_layers: 2,
                bidirectional: true,
                proj_size: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let sd = m.state_dict();
        let keys: Vec<&str> = sd.keys().collect();
        assert_eq!(
            &keys[..6],
            &[
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
                "weight_hr_l0",
                "weight_ih_l0_reverse"
            ]
        );
        assert_eq!(sd.get("weight_ih_l1").unwrap().dims(), &[16, 4]);
        assert_eq!(
            m.repr(),
            "LSTM(3, 4, proj_size=2, num_layers=2, bidirectional=True)"
        );
        assert_eq!(
            GRU::with(
                3,
                4,
                RnnConfig {
                    proj_size: 2,
                    ..Default::default()
                }
            )
            .err()
            .map(|e| e.code()),
            Some("K0003")
        );
    }

    #[test]
    fn wrong_state_shape_is_coded() {
        let m = GRU::new(3, 4).unwrap();
        let x = Tensor::zeros((5, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let h = Tensor::zeros((1, 3, 4), DType::F32, &Device::Cpu).unwrap();
        let e = m.forward_with(&x, Some(&h), None).unwrap_err();
        assert_eq!(e.code(), "K0220");
        assert!(
            e.to_string().contains("GRU(3, 4)") && e.to_string().contains("[1, 2, 4]"),
            "{e}"
        );
        let e = m.forward_with(&x, None, Some(&[5, 0])).unwrap_err();
        assert_eq!(e.code(), "K0003");
    }
}
