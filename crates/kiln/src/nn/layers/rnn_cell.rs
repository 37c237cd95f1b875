//! `LSTMCell` and `GRUCell`: one step of [`super::LSTM`] / [`super::GRU`] (PyTorch's
//! `nn.LSTMCell` / `nn.GRUCell`), keys `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.

use super::rnn::{Cell, gru_step, lstm_step};
use super::{ModeFlag, check_input, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::Tensor;

/// The weights of a cell.
struct CellWeights {
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    w_ih: Param,
    w_hh: Param,
    b_ih: Option<Param>,
    b_hh: Option<Param>,
    /// The `training` flag (a cell computes the same either way; kept like PyTorch's).
    training: ModeFlag,
}

impl CellWeights {
    fn new(cell: Cell, input_size: usize, hidden_size: usize, bias: bool) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::invalid(
                "RNN cell sizes",
                format!("input_size={input_size}, hidden_size={hidden_size}"),
                "positive sizes",
            ));
        }
        let g = cell.gates() * hidden_size;
        let k = 1.0 / (hidden_size as f64).sqrt();
        let u =
            |dims: &[usize]| -> Result<Param> { Param::new(&init::uniform(dims, -k, k)?, true) };
        Ok(CellWeights {
            cell,
            input_size,
            hidden_size,
            w_ih: u(&[g, input_size])?,
            w_hh: u(&[g, hidden_size])?,
            b_ih: if bias { Some(u(&[g])?) } else { None },
            b_hh: if bias { Some(u(&[g])?) } else { None },
            training: ModeFlag::default(),
        })
    }

    fn name(&self) -> &'static str {
        match self.cell {
            Cell::Lstm => "LSTMCell",
            Cell::Gru => "GRUCell",
        }
    }

    fn extra_repr(&self) -> String {
        let mut s = format!("{}, {}", self.input_size, self.hidden_size);
        if self.b_ih.is_none() {
            s += ", bias=False";
        }
        s
    }

    fn describe(&self) -> String {
        format!("{}({})", self.name(), self.extra_repr())
    }

    fn params(&self) -> Vec<(String, Param)> {
        let mut v = vec![
            ("weight_ih".to_string(), self.w_ih.clone()),
            ("weight_hh".to_string(), self.w_hh.clone()),
        ];
        if let Some(b) = &self.b_ih {
            v.push(("bias_ih".into(), b.clone()));
        }
        if let Some(b) = &self.b_hh {
            v.push(("bias_hh".into(), b.clone()));
        }
        v
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new(self.name())
            .with("input_size", self.input_size)
            .with("hidden_size", self.hidden_size)
            .with("bias", self.b_ih.is_some())
    }

    /// Checks the input (`[B, in]` or `[in]`) and a state; returns the batched input, the
    /// batch size and whether the input was batched.
    fn prepare(&self, x: &Tensor) -> Result<(Tensor, usize, bool)> {
        check_input(&self.describe(), x, &self.w_ih.tensor())?;
        let ok = matches!(x.rank(), 1 | 2) && x.dims()[x.rank() - 1] == self.input_size;
        if !ok {
            return Err(Error::SequenceShape {
                module: self.describe(),
                what: "input".into(),
                got: shape_str(x.dims()),
                expected: format!("(N, {0}) or ({0})", self.input_size),
            });
        }
        if x.rank() == 1 {
            Ok((x.unsqueeze(0).ctx(self.name())?, 1, false))
        } else {
            Ok((x.clone(), x.dims()[0], true))
        }
    }

    fn state(
        &self,
        what: &str,
        s: Option<&Tensor>,
        x: &Tensor,
        b: usize,
        batched: bool,
    ) -> Result<Tensor> {
        let Some(s) = s else {
            return Tensor::zeros((b, self.hidden_size), x.dtype(), x.device()).ctx(self.name());
        };
        let want: Vec<usize> = if batched {
            vec![b, self.hidden_size]
        } else {
            vec![self.hidden_size]
        };
        if s.dims() != want.as_slice() {
            return Err(Error::SequenceShape {
                module: self.describe(),
                what: what.into(),
                got: shape_str(s.dims()),
                expected: shape_str(&want),
            });
        }
        if batched {
            Ok(s.clone())
        } else {
            s.unsqueeze(0).ctx(self.name())
        }
    }

    fn gx(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.b_ih.as_ref().map(Param::tensor);
        crate::nn::ops::linear(x, &self.w_ih.tensor(), b.as_ref())
    }
}

fn unbatch(t: Tensor, batched: bool) -> Result<Tensor> {
    if batched {
        Ok(t)
    } else {
        t.squeeze(0).ctx("RNN cell")
    }
}

macro_rules! cell_module {
    ($ty:ident, $cell:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty(CellWeights);

        impl $ty {
            /// `(input_size, hidden_size, bias)`, weights from `uniform(±1/√hidden_size)`.
            ///
            /// # Errors
            /// `K0003` for a zero size.
            pub fn new(input_size: usize, hidden_size: usize, bias: bool) -> Result<Self> {
                Ok($ty(CellWeights::new($cell, input_size, hidden_size, bias)?))
            }

            /// Rebuilds the cell from its [`Module::spec`].
            ///
            /// # Errors
            /// `K0405` for a missing or mistyped config entry.
            pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
                Self::new(
                    spec.usize("input_size")?,
                    spec.usize("hidden_size")?,
                    spec.bool_or("bias", true)?,
                )
            }
        }

        impl Module for $ty {
            fn type_name(&self) -> &'static str {
                self.0.name()
            }
            fn local_params(&self) -> Vec<(String, Param)> {
                self.0.params()
            }
            /// One step from zero state: the new `h`.
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.step_h(x)
            }
            fn spec(&self) -> ModuleSpec {
                self.0.spec()
            }
            fn set_training(&self, training: bool) {
                self.0.training.set(training);
            }
            fn training_flag(&self) -> Option<bool> {
                Some(self.0.training.get())
            }
            fn extra_repr(&self) -> String {
                self.0.extra_repr()
            }
            impl_as_any!();
        }
    };
}

cell_module!(
    LSTMCell,
    Cell::Lstm,
    "One LSTM step (PyTorch's `nn.LSTMCell`): `(x, (h, c))` → `(h', c')`, gates `i, f, g, o`."
);

cell_module!(
    GRUCell,
    Cell::Gru,
    "One GRU step (PyTorch's `nn.GRUCell`): `(x, h)` → `h'`, gates `r, z, n`."
);

impl LSTMCell {
    /// PyTorch's `forward(input, (h_0, c_0))` → `(h_1, c_1)`; input `(N, in)` or `(in)`,
    /// states `(N, hidden)` or `(hidden)`, zeros when `None`.
    ///
    /// # Errors
    /// `K0220` for an input or state of the wrong shape.
    pub fn forward_with(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let (x, b, batched) = self.0.prepare(x)?;
        let (h0, c0) = state.unzip();
        let h = self.0.state("h_0", h0, &x, b, batched)?;
        let c = self.0.state("c_0", c0, &x, b, batched)?;
        let bh = self.0.b_hh.as_ref().map(Param::tensor);
        let (h, c) = lstm_step(
            &self.0.gx(&x)?,
            &h,
            &c,
            &self.0.w_hh.tensor(),
            bh.as_ref(),
            None,
        )?;
        Ok((unbatch(h, batched)?, unbatch(c, batched)?))
    }

    fn step_h(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with(x, None)?.0)
    }
}

impl GRUCell {
    /// PyTorch's `forward(input, h_0)` → `h_1`; shapes as [`LSTMCell::forward_with`].
    ///
    /// # Errors
    /// `K0220` for an input or state of the wrong shape.
    pub fn forward_with(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<Tensor> {
        let (x, b, batched) = self.0.prepare(x)?;
        let h = self.0.state("hx", h0, &x, b, batched)?;
        let bh = self.0.b_hh.as_ref().map(Param::tensor);
        let h = gru_step(&self.0.gx(&x)?, &h, &self.0.w_hh.tensor(), bh.as_ref())?;
        unbatch(h, batched)
    }

    fn step_h(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None)
    }
}
