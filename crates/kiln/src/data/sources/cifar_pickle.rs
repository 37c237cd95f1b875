//! A small pickle reader for CIFAR's python batches: dicts, lists, strings, bytes, ints and
//! numpy `uint8` arrays (`numpy.core.multiarray._reconstruct` + `BUILD`), protocols 2–4,
//! from Python 2 (`BINSTRING`) or 3 (`BINBYTES`, `_codecs.encode`). kiln's own pickle reader
//! (`io::pickle`) is PyTorch's weights-only allow-list and has no numpy arrays, hence this
//! one. It executes nothing: the only globals accepted are listed in [`ALLOWED`]; anything
//! else is a `K0107` error naming the global.
//!
//! Limitation: the memo holds copies, so a list that is memoized and then appended to reads
//! back empty through a later `BINGET`; CIFAR's batches never do that.

use crate::error::{Error, Result};
use std::rc::Rc;

/// The globals a CIFAR batch needs.
pub const ALLOWED: &[&str] = &[
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
    "_codecs.encode",
];

/// Most values on the stack or memo (a CIFAR batch needs about 30 000).
const MAX_ITEMS: usize = 1 << 22;

/// A value of the pickle.
#[derive(Clone, Debug)]
pub enum PVal {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str` (Python 3).
    Str(Rc<str>),
    /// `bytes` or a Python 2 `str`.
    Bytes(Rc<Vec<u8>>),
    /// `list`.
    List(Vec<PVal>),
    /// `tuple`.
    Tuple(Vec<PVal>),
    /// `dict`, in insertion order.
    Dict(Vec<(PVal, PVal)>),
    /// An allow-listed global.
    Global(&'static str),
    /// A numpy dtype (`"u1"`).
    Dtype(String),
    /// A numpy array: shape, dtype, raw bytes.
    Array {
        /// Shape.
        shape: Vec<usize>,
        /// dtype string (`"u1"`).
        dtype: String,
        /// Raw bytes, C order.
        data: Rc<Vec<u8>>,
    },
    Mark,
}

impl PVal {
    /// The text of a `str` or (Python 2) byte string.
    pub fn text(&self) -> Option<String> {
        match self {
            PVal::Str(s) => Some(s.to_string()),
            PVal::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    /// The value of key `key` in a dict (string or bytes keys).
    pub fn get(&self, key: &str) -> Option<&PVal> {
        let PVal::Dict(items) = self else { return None };
        items
            .iter()
            .find(|(k, _)| k.text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a str,
    stack: Vec<PVal>,
    memo: std::collections::HashMap<u32, PVal>,
}

impl Vm<'_> {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::DataFormat {
            path: self.path.to_string(),
            format: "CIFAR python batch (pickle)".into(),
            detail: format!("at byte {}: {}", self.pos, detail.into()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err(format!("the file ends inside a {n}-byte field")));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn pop(&mut self) -> Result<PVal> {
        self.stack
            .pop()
            .ok_or_else(|| self.err("pop from an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<PVal>> {
        let Some(m) = self.stack.iter().rposition(|v| matches!(v, PVal::Mark)) else {
            return Err(self.err("no MARK on the stack"));
        };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn push(&mut self, v: PVal) -> Result<()> {
        if self.stack.len() >= MAX_ITEMS {
            return Err(self.err("too many values on the stack"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn top(&mut self) -> Result<&mut PVal> {
        let p = self.pos;
        self.stack.last_mut().ok_or_else(|| Error::DataFormat {
            path: String::new(),
            format: "CIFAR python batch (pickle)".into(),
            detail: format!("at byte {p}: empty stack"),
        })
    }

    fn memo_put(&mut self, k: u32) -> Result<()> {
        if self.memo.len() >= MAX_ITEMS {
            return Err(self.err("memo too large"));
        }
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.err("memoize an empty stack"))?;
        self.memo.insert(k, v);
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<PVal> {
        let full = format!("{module}.{name}");
        ALLOWED
            .iter()
            .find(|g| **g == full)
            .map(|g| PVal::Global(g))
            .ok_or_else(|| self.err(format!("global {full} is not one a CIFAR batch uses")))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("unterminated line"));
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn reduce(&self, f: PVal, args: PVal) -> Result<PVal> {
        let PVal::Tuple(args) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        match f {
            PVal::Global(g) if g.ends_with("_reconstruct") => Ok(PVal::Array {
                shape: vec![0],
                dtype: String::new(),
                data: Rc::new(Vec::new()),
            }),
            PVal::Global("numpy.dtype") => match args.first().and_then(|a| a.text()) {
                Some(d) => Ok(PVal::Dtype(d)),
                None => Err(self.err("numpy.dtype without a type string")),
            },
            PVal::Global("_codecs.encode") => match args.first() {
                Some(PVal::Str(s)) => {
                    let bytes: Option<Vec<u8>> =
                        s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                    bytes
                        .map(|b| PVal::Bytes(Rc::new(b)))
                        .ok_or_else(|| self.err("_codecs.encode of a non-latin-1 string"))
                }
                _ => Err(self.err("_codecs.encode without a string")),
            },
            other => Err(self.err(format!("cannot call {other:?}"))),
        }
    }

    fn build(&self, obj: PVal, state: PVal) -> Result<PVal> {
        match obj {
            PVal::Array { .. } => {
                let PVal::Tuple(s) = state else {
                    return Err(self.err("ndarray state is not a tuple"));
                };
                let (Some(PVal::Tuple(shape)), Some(PVal::Dtype(dtype)), Some(fortran), Some(raw)) =
                    (s.get(1), s.get(2), s.get(3), s.get(4))
                else {
                    return Err(
                        self.err("ndarray state is not (version, shape, dtype, fortran, data)")
                    );
                };
                if matches!(fortran, PVal::Bool(true)) {
                    return Err(self.err("Fortran-ordered arrays are not supported"));
                }
                let shape = shape
                    .iter()
                    .map(|d| match d {
                        PVal::Int(v) if *v >= 0 => Ok(*v as usize),
                        _ => Err(self.err("bad array dimension")),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let data = match raw {
                    PVal::Bytes(b) => b.clone(),
                    _ => return Err(self.err("array data is not a byte string")),
                };
                Ok(PVal::Array {
                    shape,
                    dtype: dtype.clone(),
                    data,
                })
            }
            PVal::Dtype(d) => Ok(PVal::Dtype(d)),
            other => Err(self.err(format!("BUILD on {other:?}"))),
        }
    }

    fn run(&mut self) -> Result<PVal> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                0x95 => {
                    self.u64()?;
                } // FRAME
                b'.' => return self.pop(),
                b'(' => self.push(PVal::Mark)?,
                b'N' => self.push(PVal::None)?,
                0x88 => self.push(PVal::Bool(true))?,
                0x89 => self.push(PVal::Bool(false))?,
                b'}' => self.push(PVal::Dict(Vec::new()))?,
                b']' => self.push(PVal::List(Vec::new()))?,
                b')' => self.push(PVal::Tuple(Vec::new()))?,
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(PVal::Int(v))?
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]) as i64;
                    self.push(PVal::Int(v))?
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(PVal::Int(v))?
                }
                0x8a => {
                    // LONG1
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    if n > 8 {
                        return Err(self.err("integer wider than 64 bits"));
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(PVal::Int(v))?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(PVal::Float(f64::from_be_bytes(a)))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(PVal::Str(s.into()))?
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e => {
                    // SHORT_BINSTRING, BINSTRING, SHORT_BINBYTES, BINBYTES, BINBYTES8
                    let n = match op {
                        b'U' | b'C' => self.u8()? as usize,
                        0x8e => self.u64()? as usize,
                        _ => self.u32()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(PVal::Bytes(Rc::new(b)))?
                }
                b'c' => {
                    let m = self.line()?;
                    let n = self.line()?;
                    let g = self.global(&m, &n)?;
                    self.push(g)?
                }
                0x93 => {
                    let n = self.pop()?.text();
                    let m = self.pop()?.text();
                    let (Some(m), Some(n)) = (m, n) else {
                        return Err(self.err("STACK_GLOBAL without strings"));
                    };
                    let g = self.global(&m, &n)?;
                    self.push(g)?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?
                }
                b'h' | b'j' => {
                    let k = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v = self
                        .memo
                        .get(&k)
                        .cloned()
                        .ok_or_else(|| self.err(format!("memo key {k} unset")))?;
                    self.push(v)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(PVal::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("TUPLEn on a short stack"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(PVal::Tuple(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        PVal::List(l) => l.push(v),
                        _ => return Err(self.err("APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        PVal::List(l) => l.extend(items),
                        _ => return Err(self.err("APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        PVal::Dict(d) => d.push((k, v)),
                        _ => return Err(self.err("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd count"));
                    }
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top()? {
                        PVal::Dict(d) => d.extend(pairs),
                        _ => return Err(self.err("SETITEMS on a non-dict")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    let v = self.build(obj, state)?;
                    self.push(v)?
                }
                other => return Err(self.err(format!("opcode 0x{other:02x} is not supported"))),
            }
        }
    }
}

/// Reads one pickled value.
///
/// # Errors
/// `K0107` for a malformed pickle, an unsupported opcode or a global outside [`ALLOWED`].
pub fn unpickle(data: &[u8], path: &str) -> Result<PVal> {
    Vm {
        data,
        pos: 0,
        path,
        stack: Vec::new(),
        memo: Default::default(),
    }
    .run()
}
