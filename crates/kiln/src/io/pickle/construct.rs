//! Constructors behind the allow-listed globals: tensors from persistent storages,
//! OrderedDicts (with `_metadata`), sets, bytes, devices; and the conversion of the object
//! arena into a [`Value`] tree with depth and size limits.

use super::globals::Global;
use super::limits::*;
use super::reader::{Id, Machine, Mode, Node};
use crate::error::{Error, Result};
use crate::io::object::ObjectOrigin;
use crate::io::value::{Dict, Dtype, Storage, TensorValue, Value, contiguous_stride};
use std::sync::Arc;

impl Machine<'_> {
    pub(super) fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>> {
        if items.len() % 2 != 0 {
            return Err(self.err("odd number of items for a dict"));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    /// The least a node costs as a `Value` (see `Machine::sizes`).
    pub(super) fn estimate(&self, n: &Node) -> u64 {
        let sum = |ids: &mut dyn Iterator<Item = Id>| -> u64 {
            ids.map(|i| self.sizes.get(i).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        };
        let own = (VALUE_COST
            + match n {
                Node::Str(s) => s.len(),
                Node::Bytes(b) => b.len(),
                Node::Tensor(t) => tensor_cost(t),
                _ => 0,
            }) as u64;
        let children = match n {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) => sum(&mut v.iter().copied()),
            Node::Dict { entries, .. } => sum(&mut entries.iter().flat_map(|&(k, v)| [k, v])),
            Node::Object(o) => sum(&mut o
                .args
                .iter()
                .copied()
                .chain(o.state)
                .chain(o.list_items.iter().copied())
                .chain(
                    o.kwargs
                        .iter()
                        .chain(&o.dict_items)
                        .flat_map(|&(k, v)| [k, v]),
                )),
            _ => 0,
        };
        own.saturating_add(children)
    }

    /// Refuses (`K0508`) a node whose conversion alone would pass the budget.
    pub(super) fn check_estimate(&self, est: u64) -> Result<()> {
        self.budget.check(
            est,
            &format_args!("an object of this pickle (built at byte {})", self.op_pos),
        )
    }

    /// Adds the estimates of `items`, just added to container `t`, to its estimate.
    pub(super) fn grow_estimate(&mut self, t: Id, items: &[Id]) -> Result<()> {
        let add = items
            .iter()
            .map(|&i| self.sizes.get(i).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        let est = self.sizes.get(t).copied().unwrap_or(0).saturating_add(add);
        self.check_estimate(est)?;
        if let Some(s) = self.sizes.get_mut(t) {
            *s = est;
        }
        Ok(())
    }

    pub(super) fn extend_list(&mut self, items: Vec<Id>) -> Result<()> {
        let t = self.top()?;
        match self.node_mut(t)? {
            Node::List(v) => {
                v.extend(items.iter().copied());
                self.grow_estimate(t, &items)
            }
            Node::Object(o) => {
                o.list_items.extend(items.iter().copied());
                self.grow_estimate(t, &items)
            }
            other => {
                let k = other.kind();
                Err(self.err(format!("can only append to lists, but got a {k}")))
            }
        }
    }

    pub(super) fn set_items(&mut self, pairs: Vec<(Id, Id)>) -> Result<()> {
        let t = self.top()?;
        match self.node_mut(t)? {
            Node::Dict { entries, .. } => {
                entries.extend(pairs.iter().copied());
                let flat: Vec<Id> = pairs.iter().flat_map(|&(k, v)| [k, v]).collect();
                self.grow_estimate(t, &flat)
            }
            Node::Object(o) => {
                o.dict_items.extend(pairs.iter().copied());
                let flat: Vec<Id> = pairs.iter().flat_map(|&(k, v)| [k, v]).collect();
                self.grow_estimate(t, &flat)
            }
            other => {
                let k = other.kind();
                Err(self.err(format!("can only set items of dicts, but got a {k}")))
            }
        }
    }

    /// Charges `bytes` for a copy this machine is about to make.
    pub(super) fn charge(&self, bytes: usize, what: &str) -> Result<()> {
        self.budget.charge(
            bytes as u64,
            &format_args!("{what} (at pickle byte {})", self.op_pos),
        )
    }

    fn items(&self, id: Id) -> Result<Vec<Id>> {
        match self.node(id)? {
            Node::Tuple(v) | Node::List(v) => {
                self.charge(v.len() * ID_COST, "a copy of a tuple")?;
                Ok(v.clone())
            }
            other => Err(self.err(format!("expected a tuple, got a {}", other.kind()))),
        }
    }

    fn int(&self, id: Id, what: &str) -> Result<i64> {
        match self.node(id)? {
            Node::Int(i) => Ok(*i),
            Node::Bool(b) => Ok(i64::from(*b)),
            other => Err(self.err(format!("{what}: expected an int, got a {}", other.kind()))),
        }
    }

    fn usize_of(&self, id: Id, what: &str) -> Result<usize> {
        let i = self.int(id, what)?;
        usize::try_from(i).map_err(|_| self.err(format!("{what}: negative value {i}")))
    }

    fn str_of(&self, id: Id, what: &str) -> Result<String> {
        match self.node(id)? {
            Node::Str(s) => {
                self.charge(s.len(), what)?;
                Ok(s.clone())
            }
            Node::Bytes(b) => {
                self.charge(b.len() * 2, what)?;
                Ok(b.iter().map(|&c| char::from(c)).collect())
            }
            other => Err(self.err(format!("{what}: expected a str, got a {}", other.kind()))),
        }
    }

    fn bool_of(&self, id: Id) -> Result<bool> {
        match self.node(id)? {
            Node::Bool(b) => Ok(*b),
            Node::Int(i) => Ok(*i != 0),
            Node::None => Ok(false),
            other => Err(self.err(format!("expected a bool, got a {}", other.kind()))),
        }
    }

    fn dims(&self, id: Id, what: &str) -> Result<Vec<usize>> {
        let items = self.items(id)?;
        if items.len() > MAX_RANK {
            return Err(self.err(format!(
                "{what} of rank {} exceeds MAX_RANK = {MAX_RANK}",
                items.len()
            )));
        }
        items.iter().map(|&i| self.usize_of(i, what)).collect()
    }

    /// The key of a plain persistent id (a str or an int, as pre-0.4 tar checkpoints write).
    pub(super) fn plain_pid(&self, pid: Id) -> Result<Option<String>> {
        Ok(match self.node(pid)? {
            Node::Str(s) => Some(s.clone()),
            Node::Int(i) => Some(i.to_string()),
            _ => None,
        })
    }

    pub(super) fn persistent(&mut self, pid: Id) -> Result<Arc<Storage>> {
        let items = match self.node(pid)? {
            Node::Tuple(v) => {
                self.charge(v.len() * ID_COST, "a persistent id")?;
                v.clone()
            }
            other => {
                return Err(self.err(format!(
                    "persistent id must be a tuple, got a {}",
                    other.kind()
                )));
            }
        };
        let [tag, ty, key, location, numel, rest @ ..] = items.as_slice() else {
            return Err(self.err(format!(
                "persistent id must be ('storage', type, key, location, numel), got {} items",
                items.len()
            )));
        };
        if self.str_of(*tag, "persistent id")? != "storage" {
            return Err(self.err("only persistent ids of storages are allowed"));
        }
        let dtype = match self.node(*ty)? {
            Node::Global(Global::StorageType(d)) => *d,
            Node::Global(Global::UntypedStorage) => Dtype::U8,
            other => {
                return Err(self.err(format!(
                    "persistent id: expected a storage class, got a {}",
                    other.kind()
                )));
            }
        };
        let key = self.str_of(*key, "storage key")?;
        let location = self.str_of(*location, "storage location")?;
        let numel = self.usize_of(*numel, "storage numel")?;
        let view = match rest.first() {
            Some(&v) if !matches!(self.node(v)?, Node::None) => {
                let vi = self.items(v)?;
                let [_, off, size, ..] = vi.as_slice() else {
                    return Err(self.err("bad storage view metadata"));
                };
                Some((
                    self.usize_of(*off, "view offset")?,
                    self.usize_of(*size, "view size")?,
                ))
            }
            _ => None,
        };
        let cache_key = match view {
            None => key.clone(),
            Some((o, s)) => format!("{key}@{o}+{s}"),
        };
        if let Some(s) = self.by_key.get(&cache_key) {
            if s.dtype != dtype {
                return Err(self.err(format!(
                    "storage '{key}' is named with two dtypes ({} and {})",
                    s.dtype.name(),
                    dtype.name()
                )));
            }
            return Ok(s.clone());
        }
        let s = self.storages.storage(&key, dtype, &location, numel, view)?;
        self.by_key.insert(cache_key, s.clone());
        Ok(s)
    }

    fn storage_as(&mut self, id: Id, dtype: Option<Dtype>) -> Result<Arc<Storage>> {
        let s = match self.node(id)? {
            Node::Storage(s) => s.clone(),
            other => {
                return Err(self.err(format!(
                    "tensor rebuild: expected a storage, got a {}",
                    other.kind()
                )));
            }
        };
        let Some(d) = dtype.filter(|d| *d != s.dtype) else {
            return Ok(s);
        };
        // An untyped (byte) storage viewed with the tensor's dtype (_rebuild_tensor_v3).
        let key = (Arc::as_ptr(&s) as usize, d);
        if let Some(t) = self.retyped.get(&key) {
            return Ok(t.clone());
        }
        if s.dtype != Dtype::U8 || s.data.len() % d.size() != 0 {
            return Err(self.err(format!(
                "storage of {} bytes ({}) cannot hold {} elements",
                s.data.len(),
                s.dtype.name(),
                d.name()
            )));
        }
        let t = Arc::new(Storage {
            dtype: d,
            location: s.location.clone(),
            data: s.data.clone(),
        });
        self.retyped.insert(key, t.clone());
        Ok(t)
    }

    fn tensor(
        &mut self,
        args: &[Id],
        dtype: Option<Dtype>,
        requires_grad: Option<Id>,
    ) -> Result<Node> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(self.err(format!(
                "tensor rebuild needs storage, offset, size, stride; got {} arguments",
                args.len()
            )));
        };
        let storage = self.storage_as(*storage, dtype)?;
        let offset = self.usize_of(*offset, "storage offset")?;
        let shape = self.dims(*size, "size")?;
        let stride = match self.node(*stride)? {
            Node::None => contiguous_stride(&shape),
            _ => self.dims(*stride, "stride")?,
        };
        if shape.len() != stride.len() {
            return Err(self.err(format!(
                "size has {} dims but stride has {}",
                shape.len(),
                stride.len()
            )));
        }
        shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err("tensor element count overflows"))?;
        let requires_grad = match requires_grad {
            Some(r) => self.bool_of(r)?,
            None => false,
        };
        let t = TensorValue {
            storage,
            offset,
            shape,
            stride,
            requires_grad,
            is_parameter: false,
        };
        t.check_bounds().map_err(|e| match e {
            Error::Schema { detail, .. } => self.err(detail),
            other => other,
        })?;
        Ok(Node::Tensor(t))
    }

    pub(super) fn call(&mut self, f: Id, args: Id) -> Result<Node> {
        self.call_as(f, args, ObjectOrigin::Call)
    }

    /// `f(*args)`: an allow-listed constructor, or (structural modes) an inert record.
    pub(super) fn call_as(&mut self, f: Id, args: Id, origin: ObjectOrigin) -> Result<Node> {
        if self.mode == Mode::Scan || matches!(self.node(f)?, Node::Global(Global::Class { .. })) {
            return self.inert_call(f, args, origin);
        }
        let g = match self.node(f)? {
            Node::Global(g) => g.clone(),
            other => {
                return Err(self.err(format!(
                    "can only call allow-listed globals, got a {}",
                    other.kind()
                )));
            }
        };
        let a = self.items(args)?;
        Ok(match g {
            Global::OrderedDict | Global::Counter => {
                let mut entries = Vec::new();
                if let Some(&src) = a.first() {
                    match self.node(src)? {
                        Node::Dict { entries: e, .. } => {
                            self.charge(e.len() * 2 * ID_COST, "a copy of a dict")?;
                            entries = e.clone();
                        }
                        Node::List(items) | Node::Tuple(items) => {
                            self.charge(items.len() * 2 * ID_COST, "a dict from pairs")?;
                            for &it in items {
                                let kv = self.items(it)?;
                                let [k, v] = kv.as_slice() else {
                                    return Err(self.err("OrderedDict item is not a pair"));
                                };
                                entries.push((*k, *v));
                            }
                        }
                        other => {
                            return Err(self.err(format!("OrderedDict from a {}", other.kind())));
                        }
                    }
                }
                Node::Dict {
                    entries,
                    ordered: g == Global::OrderedDict,
                    metadata: None,
                }
            }
            Global::Set | Global::FrozenSet => match a.first() {
                None => Node::Set(Vec::new()),
                Some(&src) => Node::Set(self.items(src)?),
            },
            Global::BytesType | Global::ByteArray => match a.as_slice() {
                [] => Node::Bytes(Vec::new()),
                [b] => match self.node(*b)? {
                    Node::Bytes(b) => {
                        self.charge(b.len(), "a copy of bytes")?;
                        Node::Bytes(b.clone())
                    }
                    Node::List(items) => {
                        self.charge(items.len() * (ID_COST + 1), "bytes from a list")?;
                        let items = items.clone();
                        let mut out = Vec::with_capacity(items.len());
                        for i in items {
                            let v = self.int(i, "bytes item")?;
                            out.push(u8::try_from(v).map_err(|_| self.err("byte out of range"))?);
                        }
                        Node::Bytes(out)
                    }
                    other => return Err(self.err(format!("bytes from a {}", other.kind()))),
                },
                [s, enc] => self.encode(*s, *enc)?,
                _ => return Err(self.err("bytes() with too many arguments")),
            },
            Global::Encode => {
                let [s, enc] = a.as_slice() else {
                    return Err(self.err("_codecs.encode needs (str, encoding)"));
                };
                self.encode(*s, *enc)?
            }
            Global::Size => match a.first() {
                None => Node::Tuple(Vec::new()),
                Some(&t) => Node::Tuple(self.items(t)?),
            },
            Global::Device => {
                let ty = match a.first() {
                    Some(&t) => self.str_of(t, "device type")?,
                    None => return Err(self.err("torch.device() needs a type")),
                };
                match a.get(1) {
                    Some(&i) if !matches!(self.node(i)?, Node::None) => {
                        Node::Device(format!("{ty}:{}", self.int(i, "device index")?))
                    }
                    _ => Node::Device(ty),
                }
            }
            Global::RebuildTensor => self.tensor(&a, None, None)?,
            Global::RebuildTensorV2 => {
                let rg = a.get(4).copied();
                self.tensor(&a, None, rg)?
            }
            Global::RebuildTensorV3 => {
                let d = match a.get(6).map(|&d| self.node(d)).transpose()? {
                    Some(Node::Global(Global::Dtype(d))) => *d,
                    _ => return Err(self.err("_rebuild_tensor_v3 needs a dtype argument")),
                };
                let rg = a.get(4).copied();
                self.tensor(&a, Some(d), rg)?
            }
            Global::RebuildParameter | Global::RebuildParameterWithState | Global::Parameter => {
                let Some(&data) = a.first() else {
                    return Err(self.err("Parameter needs a tensor"));
                };
                let mut t = match self.node(data)? {
                    Node::Tensor(t) => {
                        self.charge(tensor_cost(t), "a copy of a tensor")?;
                        t.clone()
                    }
                    other => {
                        return Err(
                            self.err(format!("Parameter of a {}, not a tensor", other.kind()))
                        );
                    }
                };
                t.requires_grad = match a.get(1) {
                    Some(&r) => self.bool_of(r)?,
                    None => true,
                };
                t.is_parameter = true;
                Node::Tensor(t)
            }
            Global::RebuildFromTypeV2 => {
                let [func, ty, fargs, ..] = a.as_slice() else {
                    return Err(self.err("_rebuild_from_type_v2 needs (func, type, args, state)"));
                };
                let param = match self.node(*ty)? {
                    Node::Global(Global::Parameter) => true,
                    Node::Global(Global::TensorClass) => false,
                    _ => {
                        return Err(Error::Unsupported {
                            what: format!("tensor subclasses in '{}'", self.path),
                        });
                    }
                };
                let mut n = self.call(*func, *fargs)?;
                if let Node::Tensor(t) = &mut n {
                    t.is_parameter |= param;
                }
                n
            }
            Global::TensorType(d) => Node::Tensor(TensorValue {
                storage: Arc::new(Storage {
                    dtype: d,
                    location: "cpu".into(),
                    data: crate::io::value::Bytes::Owned(Arc::new(Vec::new())),
                }),
                offset: LEGACY_PLACEHOLDER,
                shape: vec![0],
                stride: vec![1],
                requires_grad: false,
                is_parameter: false,
            }),
            Global::Class { .. }
            | Global::TensorClass
            | Global::StorageType(_)
            | Global::UntypedStorage
            | Global::Dtype(_) => {
                return Err(self.err(format!("{g:?} cannot be called")));
            }
        })
    }

    fn encode(&self, s: Id, enc: Id) -> Result<Node> {
        let s = self.str_of(s, "encode")?;
        let enc = self.str_of(enc, "encoding")?.to_ascii_lowercase();
        self.charge(s.len(), "encoded bytes")?;
        match enc.as_str() {
            "latin1" | "latin-1" | "iso-8859-1" => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).map_err(|_| self.err("non-latin-1 character")))
                .collect::<Result<Vec<u8>>>()
                .map(Node::Bytes),
            "utf-8" | "utf8" => Ok(Node::Bytes(s.into_bytes())),
            other => Err(self.err(format!("unsupported encoding '{other}'"))),
        }
    }

    /// The `_metadata` value of a BUILD state (a dict, or a tuple of dicts), if any; read in
    /// place (no copy of the state, which may be a shared dict referenced many times).
    fn metadata_of(&self, state: Id) -> Result<Option<Id>> {
        let find = |entries: &[(Id, Id)]| -> Result<Option<Id>> {
            let mut found = None;
            for &(k, v) in entries {
                if matches!(self.node(k)?, Node::Str(s) if s == "_metadata") {
                    found = Some(v);
                }
            }
            Ok(found)
        };
        match self.node(state)? {
            Node::Dict { entries, .. } => find(entries),
            Node::Tuple(parts) => {
                let mut found = None;
                for &part in parts {
                    if let Node::Dict { entries, .. } = self.node(part)? {
                        found = find(entries)?.or(found);
                    }
                }
                Ok(found)
            }
            Node::None => Ok(None),
            other => Err(self.err(format!("BUILD of a dict with a {}", other.kind()))),
        }
    }

    pub(super) fn build(&mut self, inst: Id, state: Id) -> Result<()> {
        if let Node::Object(_) = self.node(inst)? {
            self.grow_estimate(inst, &[state])?;
            if let Node::Object(o) = self.node_mut(inst)? {
                o.state = Some(state);
            }
            return Ok(());
        }
        if self.mode == Mode::Scan {
            return Ok(());
        }
        match self.node(inst)? {
            Node::Dict { .. } => {
                if let Some(v) = self.metadata_of(state)?
                    && let Node::Dict { metadata, .. } = self.node_mut(inst)?
                {
                    *metadata = Some(v);
                }
                Ok(())
            }
            // Legacy `torch.FloatTensor()` + BUILD (storage, offset, size, stride): `set_`.
            Node::Tensor(t) if t.offset == LEGACY_PLACEHOLDER => {
                let dtype = t.storage.dtype;
                let items = match self.node(state)? {
                    Node::Tuple(items) => {
                        self.charge(items.len() * ID_COST, "a legacy tensor")?;
                        items.clone()
                    }
                    other => {
                        return Err(
                            self.err(format!("BUILD of a legacy tensor with a {}", other.kind()))
                        );
                    }
                };
                let rebuilt = self.tensor(&items, Some(dtype), None)?;
                *self.node_mut(inst)? = rebuilt;
                Ok(())
            }
            // Parameter/Tensor state (hooks, python attributes): nothing kiln keeps.
            Node::Tensor(_) => Ok(()),
            other => Err(self.err(format!(
                "BUILD is only allowed on tensors and OrderedDicts, got a {}",
                other.kind()
            ))),
        }
    }

    pub(super) fn to_value(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!(
                "objects nested deeper than MAX_DEPTH = {MAX_DEPTH} (or a container that contains itself)"
            )));
        }
        *budget = budget.checked_sub(1).ok_or_else(|| {
            self.err(format!(
                "result larger than MAX_OUTPUT_NODES = {MAX_OUTPUT_NODES} (shared containers expanded)"
            ))
        })?;
        // Every node of the result is a copy: charge it (and its payload) before making it,
        // so a shared object referenced millions of times is refused early.
        let payload = match self.node(id)? {
            Node::Str(s) => s.len(),
            Node::Bytes(b) => b.len(),
            Node::Device(d) => d.len(),
            Node::Tensor(t) => tensor_cost(t),
            // Items are charged as they are made; a dict also builds a key index.
            Node::Dict { entries, .. } => entries.len() * 2 * ID_COST,
            _ => 0,
        };
        self.charge(VALUE_COST + payload, "the objects this pickle builds")?;
        let seq = |ids: &[Id], budget: &mut usize| -> Result<Vec<Value>> {
            ids.iter()
                .map(|&i| self.to_value(i, depth + 1, budget))
                .collect()
        };
        Ok(match self.node(id)? {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::BigInt => {
                return Err(self.err("integer does not fit in 64 bits"));
            }
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::List(v) | Node::Set(v) => Value::List(seq(v, budget)?),
            Node::Tuple(v) => Value::Tuple(seq(v, budget)?),
            Node::Dict {
                entries,
                ordered,
                metadata,
            } => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                // Python dict semantics: a repeated key replaces the value in place. Keys are
                // found by hash (str/int/bool/None keys), so large dicts stay linear.
                let mut index: std::collections::HashMap<KeyHash, usize> =
                    std::collections::HashMap::new();
                for (k, v) in entries {
                    let k = self.to_value(*k, depth + 1, budget)?;
                    let v = self.to_value(*v, depth + 1, budget)?;
                    let slot = match key_hash(&k) {
                        Some(h) => index.get(&h).copied().or_else(|| {
                            index.insert(h, out.len());
                            None
                        }),
                        None => out.iter().position(|(ek, _)| *ek == k),
                    };
                    match slot.and_then(|i| out.get_mut(i)) {
                        Some(e) => e.1 = v,
                        None => out.push((k, v)),
                    }
                }
                let metadata = match metadata {
                    Some(m) => Some(Box::new(self.to_value(*m, depth + 1, budget)?)),
                    None => None,
                };
                Value::Dict(Dict {
                    entries: out,
                    ordered: *ordered,
                    metadata,
                })
            }
            Node::Global(Global::Dtype(d)) => Value::DtypeObj(*d),
            Node::Global(Global::StorageType(d) | Global::TensorType(d))
                if self.types_as_dtypes =>
            {
                Value::DtypeObj(*d)
            }
            Node::Global(g) if self.mode != Mode::WeightsOnly => super::structural::bare_global(g),
            Node::Object(o) => {
                self.object_value(o, &mut |i| self.to_value(i, depth + 1, budget))?
            }
            Node::Global(g) => {
                return Err(Error::Unsupported {
                    what: format!("a bare {g:?} object in '{}'", self.path),
                });
            }
            Node::Storage(_) => {
                return Err(Error::Unsupported {
                    what: format!("a bare storage (not inside a tensor) in '{}'", self.path),
                });
            }
            Node::Tensor(t) if t.offset == LEGACY_PLACEHOLDER => Value::Tensor(TensorValue {
                offset: 0,
                ..t.clone()
            }),
            Node::Tensor(t) => Value::Tensor(t.clone()),
            Node::Device(d) => Value::DeviceObj(d.clone()),
        })
    }
}

/// Bytes charged for an object id copied out of the arena.
const ID_COST: usize = std::mem::size_of::<Id>();
/// Bytes charged for a node of the result.
const VALUE_COST: usize = std::mem::size_of::<Value>();

/// Bytes charged for a copy of a tensor (its shape and strides; the storage is shared).
fn tensor_cost(t: &TensorValue) -> usize {
    std::mem::size_of::<TensorValue>() + (t.shape.len() + t.stride.len()) * 8
}

/// The offset marking a legacy `torch.FloatTensor()` awaiting its BUILD (no real tensor
/// can have it: the bounds check refuses it).
const LEGACY_PLACEHOLDER: usize = usize::MAX;

/// A hashable form of the usual dict keys. Python's `1 == True`, so bools hash as ints.
#[derive(Hash, PartialEq, Eq)]
enum KeyHash {
    Str(String),
    Int(i64),
    None,
}

fn key_hash(k: &Value) -> Option<KeyHash> {
    match k {
        Value::Str(s) => Some(KeyHash::Str(s.clone())),
        Value::Int(i) => Some(KeyHash::Int(*i)),
        Value::Bool(b) => Some(KeyHash::Int(i64::from(*b))),
        Value::None => Some(KeyHash::None),
        _ => None,
    }
}
