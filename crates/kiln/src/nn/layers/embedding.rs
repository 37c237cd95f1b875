//! `Embedding`: a lookup table of `num_embeddings` rows of size `embedding_dim`, PyTorch's
//! `nn.Embedding` (dense gradients; `max_norm`, `scale_grad_by_freq` and `sparse` are not
//! implemented).

use super::{check_placement, impl_as_any};
use crate::error::{Context, Error, Result, shape_str};
use crate::nn::{Module, ModuleSpec, Param, init};
use candle_core::{DType, Tensor};

/// Rows of `weight [num_embeddings, embedding_dim]` looked up by integer ids of any shape:
/// ids `[*]` → output `[*, embedding_dim]`. Initialised `N(0, 1)` from kiln's seeded
/// generator; with `padding_idx` that row is zero at initialisation and never receives a
/// gradient (its forward value is whatever the row holds, as in PyTorch). State-dict key
/// `weight`.
///
/// Ids may be `i64`, `i32`, `i16`, `u32` or `u8`. Every id is checked before indexing: an id
/// outside `[0, num_embeddings)` is error `K0209` (never a silent row 0).
///
/// ```
/// use kiln::nn::{Embedding, Module};
/// use candle_core::{Device, Tensor};
/// let emb = Embedding::with_padding(10, 4, Some(0))?;
/// let ids = Tensor::new(&[[1i64, 0, 9], [3, 3, 0]], &Device::Cpu)?;
/// assert_eq!(emb.forward(&ids)?.dims(), &[2, 3, 4]);
/// let bad = Tensor::new(&[1i64, 10], &Device::Cpu)?;
/// assert_eq!(emb.forward(&bad).unwrap_err().code(), "K0209");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Embedding {
    weight: Param,
    num_embeddings: usize,
    embedding_dim: usize,
    padding_idx: Option<usize>,
}

impl Embedding {
    /// `Embedding(num_embeddings, embedding_dim)`, weight `N(0, 1)`.
    ///
    /// # Errors
    /// `K0003` for a zero size.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Result<Self> {
        Self::with_padding(num_embeddings, embedding_dim, None)
    }

    /// `Embedding(num_embeddings, embedding_dim, padding_idx)`; a negative `padding_idx`
    /// counts from the end, as in PyTorch.
    ///
    /// # Errors
    /// `K0003` for a zero size or a `padding_idx` outside `[-num_embeddings, num_embeddings)`
    /// (PyTorch: Padding_idx must be within num_embeddings).
    pub fn with_padding(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<i64>,
    ) -> Result<Self> {
        if num_embeddings == 0 || embedding_dim == 0 {
            return Err(Error::invalid(
                "Embedding size",
                format!("({num_embeddings}, {embedding_dim})"),
                "num_embeddings >= 1 and embedding_dim >= 1",
            ));
        }
        let pad = resolve_padding(padding_idx, num_embeddings)?;
        let mut w = init::normal(&[num_embeddings, embedding_dim], 1.0)?;
        if let Some(p) = pad {
            w = zero_row(&w, p)?;
        }
        let mut e = Self::from_tensor(w, None)?;
        e.padding_idx = pad;
        Ok(e)
    }

    /// An embedding with the given weight `[num_embeddings, embedding_dim]` (PyTorch's
    /// `Embedding.from_pretrained(..., freeze=False)`); the `padding_idx` row is kept as given.
    ///
    /// # Errors
    /// `K0003` for a weight that is not 2-D or a bad `padding_idx`.
    pub fn from_tensor(weight: Tensor, padding_idx: Option<i64>) -> Result<Self> {
        let (num_embeddings, embedding_dim) = weight.dims2().map_err(|_| {
            Error::invalid(
                "Embedding weight shape",
                shape_str(weight.dims()),
                "a 2-D [num_embeddings, embedding_dim] tensor",
            )
        })?;
        let pad = resolve_padding(padding_idx, num_embeddings)?;
        Ok(Embedding {
            weight: Param::new(&weight, true)?,
            num_embeddings,
            embedding_dim,
            padding_idx: pad,
        })
    }

    /// Rebuilds the layer from its [`Module::spec`].
    ///
    /// # Errors
    /// `K0405` for a missing or mistyped config entry; as [`Embedding::with_padding`].
    pub fn from_spec(spec: &ModuleSpec) -> Result<Self> {
        let pad = match spec.config.get("padding_idx") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| Error::BadSpec {
                detail: "Embedding: config 'padding_idx' is not an integer".into(),
            })?),
        };
        Self::with_padding(
            spec.usize("num_embeddings")?,
            spec.usize("embedding_dim")?,
            pad,
        )
    }

    /// The weight parameter `[num_embeddings, embedding_dim]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// `num_embeddings`.
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }

    /// `embedding_dim`.
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// `padding_idx`, made non-negative.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    fn describe(&self) -> String {
        format!("Embedding({})", self.extra_repr())
    }

    /// The ids as `i64`, flattened, each checked against `num_embeddings`.
    fn checked_ids(&self, ids: &Tensor) -> Result<Vec<i64>> {
        if !matches!(
            ids.dtype(),
            DType::I64 | DType::I32 | DType::I16 | DType::U32 | DType::U8
        ) {
            return Err(Error::IndexDtype {
                module: self.describe(),
                dtype: format!(
                    "{} ({})",
                    crate::device::torch_dtype_word(ids.dtype()),
                    crate::device::dtype_name(ids.dtype())
                ),
            });
        }
        let flat: Vec<i64> = ids
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::I64))
            .and_then(|t| t.to_vec1())
            .ctx("Embedding ids")?;
        if let Some((position, &id)) = flat
            .iter()
            .enumerate()
            .find(|(_, id)| **id < 0 || **id >= self.num_embeddings as i64)
        {
            return Err(Error::EmbeddingIndex {
                module: self.describe(),
                id,
                position,
                shape: shape_str(ids.dims()),
                num_embeddings: self.num_embeddings,
            });
        }
        Ok(flat)
    }
}

fn resolve_padding(padding_idx: Option<i64>, n: usize) -> Result<Option<usize>> {
    let Some(p) = padding_idx else {
        return Ok(None);
    };
    let ni = n as i64;
    if p >= ni || p < -ni {
        return Err(Error::invalid(
            "Embedding padding_idx",
            p,
            format!("a value in [-{n}, {n}) (PyTorch: Padding_idx must be within num_embeddings)"),
        ));
    }
    Ok(Some(if p < 0 { (p + ni) as usize } else { p as usize }))
}

/// `w` with row `row` set to zero.
fn zero_row(w: &Tensor, row: usize) -> Result<Tensor> {
    let n = w.dims()[0];
    let mask: Vec<f32> = (0..n).map(|i| if i == row { 0.0 } else { 1.0 }).collect();
    let mask = Tensor::from_vec(mask, (n, 1), w.device())
        .and_then(|m| m.to_dtype(w.dtype()))
        .ctx("Embedding padding_idx")?;
    w.broadcast_mul(&mask).ctx("Embedding padding_idx")
}

impl Module for Embedding {
    fn type_name(&self) -> &'static str {
        "Embedding"
    }

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let w = self.weight.tensor();
        check_placement(
            &self.describe(),
            (&w.device().location(), w.dtype()),
            (&ids.device().location(), w.dtype()),
        )?;
        let flat = self.checked_ids(ids)?;
        let mut out_dims = ids.dims().to_vec();
        out_dims.push(self.embedding_dim);
        // Checked above: every id is in 0..num_embeddings, so it fits in u32 when the table
        // itself is addressable.
        let idx: Vec<u32> = flat.iter().map(|&i| i as u32).collect();
        let len = idx.len();
        let idx = Tensor::from_vec(idx, len, w.device()).ctx("Embedding ids")?;
        let rows = w.index_select(&idx, 0).ctx("Embedding")?;
        let rows = match self.padding_idx {
            Some(p) if flat.contains(&(p as i64)) => {
                // Padding positions read the detached table: same value, no gradient.
                let pad: Vec<u8> = flat.iter().map(|&i| u8::from(i == p as i64)).collect();
                let pad = Tensor::from_vec(pad, (len, 1), w.device())
                    .and_then(|m| m.broadcast_as((len, self.embedding_dim)))
                    .ctx("Embedding padding_idx")?;
                let frozen = w.detach().index_select(&idx, 0).ctx("Embedding")?;
                pad.where_cond(&frozen, &rows)
                    .ctx("Embedding padding_idx")?
            }
            _ => rows,
        };
        rows.reshape(out_dims).ctx("Embedding reshape")
    }

    fn local_params(&self) -> Vec<(String, Param)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn spec(&self) -> ModuleSpec {
        ModuleSpec::new("Embedding")
            .with("num_embeddings", self.num_embeddings)
            .with("embedding_dim", self.embedding_dim)
            .with("padding_idx", self.padding_idx)
    }

    fn extra_repr(&self) -> String {
        let mut s = format!("{}, {}", self.num_embeddings, self.embedding_dim);
        if let Some(p) = self.padding_idx {
            s.push_str(&format!(", padding_idx={p}"));
        }
        s
    }

    impl_as_any!();
}
