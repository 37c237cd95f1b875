//! The pickle reader: a small stack machine for protocols 2–5 (and the binary opcodes of
//! protocol 1) that builds a [`Value`] from allow-listed constructors only.
//!
//! Objects live in an arena addressed by index, so a container put in the memo and mutated
//! later (as the pickler does) is seen mutated wherever it is referenced. Every read is
//! bounds-checked, every size checked, and nothing recurses deeper than
//! [`super::limits::MAX_DEPTH`].

use super::globals::Global;
use super::limits::*;
use super::ops::*;
use crate::error::{Error, Result};
use crate::io::budget::Budget;
use crate::io::object::ObjectOrigin;
use crate::io::value::{Dtype, Storage, TensorValue, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Supplies the storage behind a persistent id `('storage', type, key, location, numel)`.
pub trait StorageSource {
    /// The storage `key` holding `numel` elements of `dtype`, saved at `location`. Called once
    /// per distinct key; the reader shares the result between all tensors that name it.
    ///
    /// # Errors
    /// Whatever the source reports (missing record, wrong size, refused location).
    fn storage(
        &mut self,
        key: &str,
        dtype: Dtype,
        location: &str,
        numel: usize,
        view: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>>;

    /// The object behind a persistent id that is a plain key (a str or an int): PyTorch's
    /// pre-0.4 tar checkpoints pickle each tensor and storage as `str(key)` of a record in
    /// their `tensors` or `storages` member ([`crate::io::torch_tar`]). `None` (the default):
    /// such ids are not allowed here.
    ///
    /// # Errors
    /// Whatever the source reports (an unknown key).
    fn keyed(&mut self, key: &str) -> Result<Option<Keyed>> {
        let _ = key;
        Ok(None)
    }
}

/// What [`StorageSource::keyed`] resolves a plain-key persistent id to.
#[derive(Clone, Debug)]
pub enum Keyed {
    /// A storage.
    Storage(Arc<Storage>),
    /// A tensor.
    Tensor(TensorValue),
}

pub(super) type Id = usize;

/// What the reader builds from a pickle's globals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Only allow-listed constructors (like `torch.load(weights_only=True)`); any other
    /// global is refused (`K0504`).
    #[default]
    WeightsOnly,
    /// Allow-listed globals are built as in `WeightsOnly`; any other class or function that
    /// is not dangerous becomes an inert [`crate::io::object::PyObject`] record (class path,
    /// arguments, state), never imported or called. Dangerous globals are refused (`K0509`).
    Structural,
    /// Records every global and builds nothing (no constructor, no storage): for
    /// [`scan_globals`].
    Scan,
}

/// An inert object in the arena (see [`crate::io::object::PyObject`]).
#[derive(Clone, Debug)]
pub(super) struct ObjNode {
    pub(super) module: String,
    pub(super) name: String,
    pub(super) origin: crate::io::object::ObjectOrigin,
    pub(super) args: Vec<Id>,
    pub(super) kwargs: Vec<(Id, Id)>,
    pub(super) state: Option<Id>,
    pub(super) list_items: Vec<Id>,
    pub(super) dict_items: Vec<(Id, Id)>,
}

#[derive(Clone, Debug)]
pub(super) enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Set(Vec<Id>),
    Dict {
        entries: Vec<(Id, Id)>,
        ordered: bool,
        metadata: Option<Id>,
    },
    Global(Global),
    Storage(Arc<Storage>),
    Tensor(TensorValue),
    Device(String),
    Object(Box<ObjNode>),
}

impl Node {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Set(_) => "set",
            Node::Dict { .. } => "dict",
            Node::Global(_) => "global",
            Node::Storage(_) => "storage",
            Node::Tensor(_) => "Tensor",
            Node::Device(_) => "torch.device",
            Node::Object(_) => "object",
        }
    }
}

/// What [`unpickle`] returns: the value and where the pickle's STOP opcode ended.
#[derive(Debug)]
pub struct Unpickled {
    /// The object.
    pub value: Value,
    /// Bytes consumed, STOP included (for streams of consecutive pickles).
    pub end: usize,
}

/// Reads one pickle from the start of `data`. `path` names the file in errors.
///
/// # Errors
/// `K0501` when the data ends early, `K0504` for a global outside the allow-list, `K0505`
/// for malformed data or an exceeded limit, plus whatever `storages` reports.
pub fn unpickle(data: &[u8], storages: &mut dyn StorageSource, path: &str) -> Result<Unpickled> {
    let budget = Budget::new(path, data.len() as u64, None);
    unpickle_with(data, storages, path, &budget)
}

/// [`unpickle`] charging what it builds to `budget` (shared by all reads of one file).
///
/// # Errors
/// As [`unpickle`], plus `K0508` when the objects built exceed the budget.
pub fn unpickle_with(
    data: &[u8],
    storages: &mut dyn StorageSource,
    path: &str,
    budget: &Budget,
) -> Result<Unpickled> {
    unpickle_mode(data, storages, path, budget, Mode::WeightsOnly)
}

/// [`unpickle_with`] in a chosen [`Mode`] (`Mode::Scan` is [`scan_globals`]'s).
///
/// # Errors
/// As [`unpickle_with`]; in `Mode::Structural`, `K0509` for a dangerous global instead of
/// `K0504` for any global off the allow-list.
pub fn unpickle_mode(
    data: &[u8],
    storages: &mut dyn StorageSource,
    path: &str,
    budget: &Budget,
    mode: Mode,
) -> Result<Unpickled> {
    let mut m = Machine::new(data, storages, path, budget, mode);
    let root = m.run()?;
    let mut budget = MAX_OUTPUT_NODES;
    let value = m.to_value(root, 0, &mut budget)?;
    Ok(Unpickled { value, end: m.pos })
}

/// Every global one pickle names, in first-use order and without duplicates, and where its
/// STOP ended; builds nothing and calls nothing (dangerous globals are listed, not refused).
///
/// # Errors
/// `K0501`/`K0505` for malformed data, `K0508` past the budget.
pub fn scan_globals(
    data: &[u8],
    path: &str,
    budget: &Budget,
) -> Result<(Vec<(String, String)>, usize)> {
    let mut none = NoSource;
    let mut m = Machine::new(data, &mut none, path, budget, Mode::Scan);
    m.run()?;
    Ok((std::mem::take(&mut m.seen), m.pos))
}

/// Reads one record pickle of a pre-0.4 tar checkpoint (`(key, location, storage_type)`,
/// `(key, storage_key, tensor_type)`) in the structural mode, with bare storage and tensor
/// classes given as [`Value::DtypeObj`] of their dtype.
///
/// # Errors
/// As [`unpickle_mode`] in `Mode::Structural`.
pub fn unpickle_record(data: &[u8], path: &str, budget: &Budget) -> Result<Unpickled> {
    let mut none = NoSource;
    let mut m = Machine::new(data, &mut none, path, budget, Mode::Structural);
    m.types_as_dtypes = true;
    let root = m.run()?;
    let mut nodes = MAX_OUTPUT_NODES;
    let value = m.to_value(root, 0, &mut nodes)?;
    Ok(Unpickled { value, end: m.pos })
}

struct NoSource;

impl StorageSource for NoSource {
    fn storage(
        &mut self,
        key: &str,
        _: Dtype,
        _: &str,
        _: usize,
        _: Option<(usize, usize)>,
    ) -> Result<Arc<Storage>> {
        Err(Error::Unsupported {
            what: format!("reading storage '{key}' while scanning globals"),
        })
    }
}

impl<'a> Machine<'a> {
    fn new(
        data: &'a [u8],
        storages: &'a mut dyn StorageSource,
        path: &'a str,
        budget: &'a Budget,
        mode: Mode,
    ) -> Self {
        Machine {
            budget,
            data,
            pos: 0,
            op_pos: 0,
            path,
            nodes: Vec::new(),
            sizes: Vec::new(),
            stack: Vec::new(),
            metastack: Vec::new(),
            memo: Memo::default(),
            storages,
            by_key: HashMap::new(),
            retyped: HashMap::new(),
            mode,
            seen: Vec::new(),
            seen_set: std::collections::HashSet::new(),
            types_as_dtypes: false,
        }
    }
}

pub(super) struct Machine<'a> {
    pub(super) budget: &'a Budget,
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) op_pos: usize,
    pub(super) path: &'a str,
    pub(super) nodes: Vec<Node>,
    /// What converting each node to a `Value` will at least cost (children as they were
    /// when added: containers only grow, so this never overestimates). Lets a container
    /// that references one big object millions of times be refused as soon as it is built,
    /// before any copy is made.
    pub(super) sizes: Vec<u64>,
    pub(super) stack: Vec<Id>,
    pub(super) metastack: Vec<Vec<Id>>,
    pub(super) memo: Memo,
    pub(super) storages: &'a mut dyn StorageSource,
    pub(super) by_key: HashMap<String, Arc<Storage>>,
    pub(super) retyped: HashMap<(usize, Dtype), Arc<Storage>>,
    pub(super) mode: Mode,
    /// Globals named so far (`Mode::Scan`).
    pub(super) seen: Vec<(String, String)>,
    pub(super) seen_set: std::collections::HashSet<(String, String)>,
    /// Bare storage and tensor classes (`torch.FloatStorage`) become their dtype
    /// ([`unpickle_record`]).
    pub(super) types_as_dtypes: bool,
}

/// The memo: picklers number entries 0, 1, 2…, so keys near the end of a dense table go in
/// it (an index, no hashing: a file of 140k tensors makes millions of memo look-ups); far
/// keys go in a map, so a hostile key cannot make the table large.
#[derive(Default)]
pub(super) struct Memo {
    dense: Vec<Id>,
    sparse: HashMap<u64, Id>,
    count: usize,
}

/// A free slot of the dense memo table.
const EMPTY: Id = Id::MAX;
/// How far past its end the dense table grows for one key.
const DENSE_STEP: u64 = 1 << 10;

impl Memo {
    fn len(&self) -> usize {
        self.count
    }

    fn get(&self, key: u64) -> Option<Id> {
        match usize::try_from(key).ok().and_then(|k| self.dense.get(k)) {
            Some(&id) if id != EMPTY => Some(id),
            _ => self.sparse.get(&key).copied(),
        }
    }

    /// Stores `id` under `key`; the number of dense slots added.
    fn insert(&mut self, key: u64, id: Id) -> usize {
        let len = self.dense.len() as u64;
        if key < len {
            if let Some(slot) = self.dense.get_mut(key as usize) {
                if *slot != EMPTY {
                    *slot = id;
                } else if let Some(old) = self.sparse.get_mut(&key) {
                    // Stored before the table grew over it.
                    *old = id;
                } else {
                    *slot = id;
                    self.count += 1;
                }
            }
            return 0;
        }
        if key < len + DENSE_STEP && key < MAX_MEMO as u64 && !self.sparse.contains_key(&key) {
            let new_len = key as usize + 1;
            let grown = new_len - self.dense.len();
            self.dense.resize(new_len, EMPTY);
            if let Some(slot) = self.dense.get_mut(key as usize) {
                *slot = id;
            }
            self.count += 1;
            return grown;
        }
        if self.sparse.insert(key, id).is_none() {
            self.count += 1;
        }
        0
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

impl Machine<'_> {
    pub(super) fn err(&self, detail: impl Into<String>) -> Error {
        Error::Pickle {
            path: self.path.to_string(),
            position: self.op_pos as u64,
            detail: detail.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        match end.and_then(|e| self.data.get(self.pos..e).map(|s| (s, e))) {
            Some((s, e)) => {
                self.pos = e;
                Ok(s)
            }
            None => Err(Error::Truncated {
                path: self.path.to_string(),
                detail: format!(
                    "pickle data ends at byte {}, an opcode at byte {} needs {} more bytes",
                    self.data.len(),
                    self.op_pos,
                    n
                ),
            }),
        }
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn u32le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest
            .iter()
            .take(1 << 16)
            .position(|&b| b == b'\n')
            .ok_or_else(|| {
                if rest.len() < 1 << 16 {
                    Error::Truncated {
                        path: self.path.to_string(),
                        detail: format!(
                            "pickle data ends at byte {} inside a text argument",
                            self.data.len()
                        ),
                    }
                } else {
                    self.err("text argument longer than 64 KiB")
                }
            })?;
        let bytes = self.take(n + 1)?;
        let s = bytes.get(..n).unwrap_or(&[]);
        String::from_utf8(s.to_vec()).map_err(|_| self.err("text argument is not UTF-8"))
    }

    fn sized(&mut self, n: u64) -> Result<Vec<u8>> {
        let n = to_usize(n);
        if n > MAX_STRING_LEN {
            return Err(self.err(format!(
                "string of {n} bytes exceeds the limit MAX_STRING_LEN = {MAX_STRING_LEN}"
            )));
        }
        Ok(self.take(n)?.to_vec())
    }

    pub(super) fn alloc(&mut self, n: Node) -> Result<Id> {
        if self.nodes.len() >= MAX_OBJECTS {
            return Err(self.err(format!("more than MAX_OBJECTS = {MAX_OBJECTS} objects")));
        }
        let est = self.estimate(&n);
        self.check_estimate(est)?;
        self.nodes.push(n);
        self.sizes.push(est);
        Ok(self.nodes.len() - 1)
    }

    fn push(&mut self, n: Node) -> Result<()> {
        let id = self.alloc(n)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id> {
        self.stack
            .pop()
            .ok_or_else(|| self.err("stack underflow (pop from an empty stack)"))
    }

    pub(super) fn top(&self) -> Result<Id> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err("stack underflow (empty stack)"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let prev = self
            .metastack
            .pop()
            .ok_or_else(|| self.err("MARK expected but none is open"))?;
        Ok(std::mem::replace(&mut self.stack, prev))
    }

    pub(super) fn node(&self, id: Id) -> Result<&Node> {
        self.nodes
            .get(id)
            .ok_or_else(|| self.err("dangling object reference"))
    }

    pub(super) fn node_mut(&mut self, id: Id) -> Result<&mut Node> {
        let e = self.err("dangling object reference");
        self.nodes.get_mut(id).ok_or(e)
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && self.memo.get(key).is_none() {
            return Err(self.err(format!("memo exceeds MAX_MEMO = {MAX_MEMO} entries")));
        }
        let grown = self.memo.insert(key, top);
        if grown > 0 {
            self.charge(grown * std::mem::size_of::<Id>(), "the memo")?;
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let id = self
            .memo
            .get(key)
            .ok_or_else(|| self.err(format!("memo key {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn run(&mut self) -> Result<Id> {
        loop {
            self.op_pos = self.pos;
            let op = self.byte()?;
            match op {
                PROTO => {
                    let p = self.byte()?;
                    if p > HIGHEST_PROTOCOL {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                FRAME => {
                    self.u64le()?;
                }
                STOP => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                MARK => {
                    if self.metastack.len() >= MAX_MARK_DEPTH {
                        return Err(self.err(format!(
                            "MARKs nested deeper than MAX_MARK_DEPTH = {MAX_MARK_DEPTH}"
                        )));
                    }
                    let s = std::mem::take(&mut self.stack);
                    self.metastack.push(s);
                }
                POP => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                NONE => self.push(Node::None)?,
                NEWTRUE => self.push(Node::Bool(true))?,
                NEWFALSE => self.push(Node::Bool(false))?,
                INT => {
                    let l = self.line()?;
                    let n = match l.as_str() {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        s => Node::Int(
                            s.trim()
                                .parse()
                                .map_err(|_| self.err(format!("bad INT '{s}'")))?,
                        ),
                    };
                    self.push(n)?;
                }
                LONG => {
                    let l = self.line()?;
                    let s = l.trim().trim_end_matches('L');
                    let n = s.parse().map(Node::Int).unwrap_or(Node::BigInt);
                    self.push(n)?;
                }
                BININT => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Node::Int(v.into()))?;
                }
                BININT1 => {
                    let v = self.byte()?;
                    self.push(Node::Int(v.into()))?;
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Node::Int(v.into()))?;
                }
                LONG1 | LONG4 => {
                    let n = if op == LONG1 {
                        usize::from(self.byte()?)
                    } else {
                        let n = i32::from_le_bytes(self.arr()?);
                        usize::try_from(n).map_err(|_| self.err("LONG4 with negative size"))?
                    };
                    if n > MAX_LONG_BYTES {
                        return Err(self.err(format!(
                            "integer of {n} bytes exceeds MAX_LONG_BYTES = {MAX_LONG_BYTES}"
                        )));
                    }
                    let bytes = self.take(n)?.to_vec();
                    self.push(decode_long(&bytes))?;
                }
                FLOAT => {
                    let l = self.line()?;
                    let v: f64 = l
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad FLOAT '{l}'")))?;
                    self.push(Node::Float(v))?;
                }
                BINFLOAT => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Node::Float(v))?;
                }
                SHORT_BINSTRING | BINSTRING => {
                    let n = if op == SHORT_BINSTRING {
                        u64::from(self.byte()?)
                    } else {
                        let n = i32::from_le_bytes(self.arr()?);
                        u64::try_from(n).map_err(|_| self.err("BINSTRING with negative size"))?
                    };
                    let b = self.sized(n)?;
                    // Python 2 `str`: UTF-8 when it is, else latin-1 (what
                    // `torch.load(..., encoding='latin1')` does).
                    let s = match String::from_utf8(b) {
                        Ok(s) => s,
                        Err(e) => e.into_bytes().iter().map(|&c| char::from(c)).collect(),
                    };
                    self.push(Node::Str(s))?;
                }
                SHORT_BINUNICODE | BINUNICODE | BINUNICODE8 => {
                    let n = match op {
                        SHORT_BINUNICODE => u64::from(self.byte()?),
                        BINUNICODE => u64::from(self.u32le()?),
                        _ => self.u64le()?,
                    };
                    let b = self.sized(n)?;
                    let s = match String::from_utf8(b) {
                        Ok(s) => s,
                        // Lone surrogates (Python's "surrogatepass"): keep what can be kept.
                        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    };
                    self.push(Node::Str(s))?;
                }
                SHORT_BINBYTES | BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                    let n = match op {
                        SHORT_BINBYTES => u64::from(self.byte()?),
                        BINBYTES => u64::from(self.u32le()?),
                        _ => self.u64le()?,
                    };
                    let b = self.sized(n)?;
                    self.push(Node::Bytes(b))?;
                }
                STRING | UNICODE | PERSID => {
                    return Err(self.err(format!(
                        "protocol-0 text opcode {:?} is not supported (torch.save writes protocol 2)",
                        char::from(op)
                    )));
                }
                EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
                EMPTY_LIST => self.push(Node::List(Vec::new()))?,
                EMPTY_DICT => self.push(Node::Dict {
                    entries: Vec::new(),
                    ordered: false,
                    metadata: None,
                })?,
                EMPTY_SET => self.push(Node::Set(Vec::new()))?,
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow building a tuple"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items))?;
                }
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                DICT => {
                    let items = self.pop_mark()?;
                    let entries = self.pairs(items)?;
                    self.push(Node::Dict {
                        entries,
                        ordered: false,
                        metadata: None,
                    })?;
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items))?;
                }
                APPEND => {
                    let item = self.pop()?;
                    self.extend_list(vec![item])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                ADDITEMS => {
                    let items = self.pop_mark()?;
                    let t = self.top()?;
                    match self.node_mut(t)? {
                        Node::Set(v) => {
                            v.extend(items.iter().copied());
                            self.grow_estimate(t, &items)?;
                        }
                        other => {
                            let k = other.kind();
                            return Err(self.err(format!("ADDITEMS on a {k}, not a set")));
                        }
                    }
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                GET => {
                    let l = self.line()?;
                    let k = l
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad GET '{l}'")))?;
                    self.memo_get(k)?;
                }
                BINGET => {
                    let k = self.byte()?;
                    self.memo_get(k.into())?;
                }
                LONG_BINGET => {
                    let k = self.u32le()?;
                    self.memo_get(k.into())?;
                }
                PUT => {
                    let l = self.line()?;
                    let k = l
                        .trim()
                        .parse()
                        .map_err(|_| self.err(format!("bad PUT '{l}'")))?;
                    self.memo_put(k)?;
                }
                BINPUT => {
                    let k = self.byte()?;
                    self.memo_put(k.into())?;
                }
                LONG_BINPUT => {
                    let k = self.u32le()?;
                    self.memo_put(k.into())?;
                }
                MEMOIZE => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    self.push(Node::Global(g))?;
                }
                INST if self.mode != Mode::WeightsOnly => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    let f = self.alloc(Node::Global(g))?;
                    let items = self.pop_mark()?;
                    let args = self.alloc(Node::Tuple(items))?;
                    let r = self.call(f, args)?;
                    self.push(r)?;
                }
                OBJ if self.mode != Mode::WeightsOnly => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.err("OBJ needs a class"));
                    }
                    let f = items.remove(0);
                    let args = self.alloc(Node::Tuple(items))?;
                    let r = self.call(f, args)?;
                    self.push(r)?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (self.node(module)?, self.node(name)?)
                    else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    let (module, name) = (module.clone(), name.clone());
                    let g = self.global(&module, &name)?;
                    self.push(Node::Global(g))?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let r = self.call(f, args)?;
                    self.push(r)?;
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let r = self.call_as(cls, args, ObjectOrigin::NewObj)?;
                    self.push(r)?;
                }
                NEWOBJ_EX => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let mut r = self.call_as(cls, args, ObjectOrigin::NewObj)?;
                    if let Node::Object(o) = &mut r
                        && let Some(Node::Dict { entries, .. }) = self.nodes.get(kwargs)
                    {
                        o.kwargs = entries.clone();
                    }
                    self.push(r)?;
                }
                BUILD => {
                    let state = self.pop()?;
                    let inst = self.top()?;
                    self.build(inst, state)?;
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    if self.mode != Mode::WeightsOnly
                        && let Some(class) = self.module_pid(pid)?
                    {
                        // Legacy whole-module files: ('module', cls, file, source).
                        self.stack.push(class);
                    } else if self.mode == Mode::Scan {
                        self.push(Node::None)?;
                    } else if let Some(key) = self.plain_pid(pid)? {
                        let n = match self.storages.keyed(&key)? {
                            Some(Keyed::Storage(s)) => Node::Storage(s),
                            Some(Keyed::Tensor(t)) => Node::Tensor(t),
                            None => {
                                return Err(self.err(format!(
                                    "persistent id must be a tuple, got the key {key:?}"
                                )));
                            }
                        };
                        self.push(n)?;
                    } else {
                        let s = self.persistent(pid)?;
                        self.push(Node::Storage(s))?;
                    }
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err(
                        self.err("out-of-band buffers (pickle protocol 5) are not supported")
                    );
                }
                other => {
                    return Err(self.err(format!("unknown opcode 0x{other:02x}")));
                }
            }
        }
    }
}

/// Decodes Python's two's-complement little-endian long.
fn decode_long(bytes: &[u8]) -> Node {
    if bytes.is_empty() {
        return Node::Int(0);
    }
    let neg = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let fill = if neg { 0xff } else { 0 };
    if bytes.len() > 8 {
        // Fits only when the extra high bytes are sign extension.
        let (low, high) = bytes.split_at(8);
        let low_neg = low.last().is_some_and(|b| b & 0x80 != 0);
        if high.iter().any(|&b| b != fill) || low_neg != neg {
            return Node::BigInt;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(low);
        return Node::Int(i64::from_le_bytes(a));
    }
    let mut a = [fill; 8];
    if let Some(dst) = a.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    Node::Int(i64::from_le_bytes(a))
}
