//! The pickle writer: protocol 2, only the opcodes PyTorch's `weights_only` unpickler
//! accepts, laid out the way `torch.save` lays them out.
//!
//! Tensors become `_rebuild_tensor_v2(BINPERSID(('storage', <Class>Storage, key, location,
//! numel)), offset, size, stride, requires_grad, OrderedDict())` (`_rebuild_tensor_v3` with
//! `UntypedStorage` for uint16/32/64); parameters wrap that in `_rebuild_parameter`. Tensors
//! that share a storage name the same key, so views and tied weights stay shared. Output is
//! a pure function of the value: same value, same bytes.

use super::globals::{dtype_attr, storage_class};
use super::limits::MAX_DEPTH;
use super::ops::*;
use crate::error::{Error, Result};
use crate::io::value::{Dict, Dtype, Storage, TensorValue, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A pickled value and the storages its persistent ids name, in key order (`"0"`, `"1"`…).
pub struct Pickled {
    /// The pickle bytes (`data.pkl`).
    pub bytes: Vec<u8>,
    /// Storages by key index: key `i` is `storages[i]`.
    pub storages: Vec<Arc<Storage>>,
}

/// Pickles `value` with protocol 2.
///
/// # Errors
/// `K0003` for values nested deeper than [`MAX_DEPTH`].
pub fn pickle(value: &Value) -> Result<Pickled> {
    let mut w = Writer {
        out: Vec::with_capacity(4096),
        memo: HashMap::new(),
        storage_keys: HashMap::new(),
        storages: Vec::new(),
    };
    w.out.extend_from_slice(&[PROTO, 2]);
    w.value(value, 0)?;
    w.out.push(STOP);
    Ok(Pickled {
        bytes: w.out,
        storages: w.storages,
    })
}

struct Writer {
    out: Vec<u8>,
    /// Memoised globals and strings: text → memo index.
    memo: HashMap<String, u32>,
    storage_keys: HashMap<usize, usize>,
    storages: Vec<Arc<Storage>>,
}

const BATCH: usize = 1000;

impl Writer {
    fn put(&mut self, key: String) {
        let i = self.memo.len() as u32;
        self.memo.insert(key, i);
        if let Ok(b) = u8::try_from(i) {
            self.out.extend_from_slice(&[BINPUT, b]);
        } else {
            self.out.push(LONG_BINPUT);
            self.out.extend_from_slice(&i.to_le_bytes());
        }
    }

    fn get(&mut self, key: &str) -> bool {
        let Some(&i) = self.memo.get(key) else {
            return false;
        };
        if let Ok(b) = u8::try_from(i) {
            self.out.extend_from_slice(&[BINGET, b]);
        } else {
            self.out.push(LONG_BINGET);
            self.out.extend_from_slice(&i.to_le_bytes());
        }
        true
    }

    fn global(&mut self, module: &str, name: &str) {
        let key = format!("\u{0}g:{module}.{name}");
        if self.get(&key) {
            return;
        }
        self.out.push(GLOBAL);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.put(key);
    }

    fn str_(&mut self, s: &str) {
        self.out.push(BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A short string used repeatedly ('storage', 'cpu'): memoised like pickle does.
    fn memo_str(&mut self, s: &str) {
        let key = format!("\u{0}s:{s}");
        if !self.get(&key) {
            self.str_(s);
            self.put(key);
        }
    }

    fn int(&mut self, i: i64) {
        if let Ok(b) = u8::try_from(i) {
            self.out.extend_from_slice(&[BININT1, b]);
        } else if let Ok(h) = u16::try_from(i) {
            self.out.push(BININT2);
            self.out.extend_from_slice(&h.to_le_bytes());
        } else if let Ok(w) = i32::try_from(i) {
            self.out.push(BININT);
            self.out.extend_from_slice(&w.to_le_bytes());
        } else {
            // LONG1: shortest two's-complement little-endian form.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let top = bytes[n - 1];
                let next_sign = bytes[n - 2] & 0x80;
                if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.out.extend_from_slice(&[LONG1, n as u8]);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }

    fn tuple_of_ints(&mut self, v: &[usize]) {
        match v.len() {
            0 => self.out.push(EMPTY_TUPLE),
            1..=3 => {
                for &x in v {
                    self.int(x as i64);
                }
                self.out.push(TUPLE1 + (v.len() as u8 - 1));
            }
            _ => {
                self.out.push(MARK);
                for &x in v {
                    self.int(x as i64);
                }
                self.out.push(TUPLE);
            }
        }
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(EMPTY_TUPLE);
        self.out.push(REDUCE);
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(
                "value to save",
                format!("nesting deeper than {MAX_DEPTH}"),
                "at most MAX_DEPTH nested containers",
            ));
        }
        match v {
            Value::None => self.out.push(NONE),
            Value::Bool(b) => self.out.push(if *b { NEWTRUE } else { NEWFALSE }),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => {
                self.out.push(BINFLOAT);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Str(s) => self.str_(s),
            Value::Bytes(b) => {
                // Protocol 2 has no bytes opcode: _codecs.encode(<latin-1 str>, 'latin1').
                self.global("_codecs", "encode");
                let s: String = b.iter().map(|&c| char::from(c)).collect();
                self.str_(&s);
                self.memo_str("latin1");
                self.out.push(TUPLE2);
                self.out.push(REDUCE);
            }
            Value::List(items) => {
                self.out.push(EMPTY_LIST);
                for chunk in items.chunks(BATCH) {
                    if let [one] = chunk {
                        self.value(one, depth + 1)?;
                        self.out.push(APPEND);
                    } else {
                        self.out.push(MARK);
                        for x in chunk {
                            self.value(x, depth + 1)?;
                        }
                        self.out.push(APPENDS);
                    }
                }
            }
            Value::Tuple(items) => match items.len() {
                0 => self.out.push(EMPTY_TUPLE),
                1..=3 => {
                    for x in items {
                        self.value(x, depth + 1)?;
                    }
                    self.out.push(TUPLE1 + (items.len() as u8 - 1));
                }
                _ => {
                    self.out.push(MARK);
                    for x in items {
                        self.value(x, depth + 1)?;
                    }
                    self.out.push(TUPLE);
                }
            },
            Value::Dict(d) => self.dict(d, depth)?,
            Value::Tensor(t) => self.tensor(t)?,
            Value::DtypeObj(d) => self.global("torch", dtype_attr(*d)),
            Value::Object(o) => {
                return Err(Error::invalid(
                    "value to save",
                    format!(
                        "an inert {} record (from a structural read)",
                        o.class_path()
                    ),
                    "tensors, containers and scalars only: save the extracted state dict",
                ));
            }
            Value::DeviceObj(s) => {
                self.global("torch", "device");
                match s.split_once(':') {
                    Some((ty, idx)) if idx.parse::<i64>().is_ok() => {
                        self.memo_str(ty);
                        self.int(idx.parse::<i64>().unwrap_or(0));
                        self.out.push(TUPLE2);
                    }
                    _ => {
                        self.memo_str(s);
                        self.out.push(TUPLE1);
                    }
                }
                self.out.push(REDUCE);
            }
        }
        Ok(())
    }

    fn items(&mut self, entries: &[(Value, Value)], depth: usize) -> Result<()> {
        for chunk in entries.chunks(BATCH) {
            if let [(k, v)] = chunk {
                self.value(k, depth + 1)?;
                self.value(v, depth + 1)?;
                self.out.push(SETITEM);
            } else {
                self.out.push(MARK);
                for (k, v) in chunk {
                    self.value(k, depth + 1)?;
                    self.value(v, depth + 1)?;
                }
                self.out.push(SETITEMS);
            }
        }
        Ok(())
    }

    fn dict(&mut self, d: &Dict, depth: usize) -> Result<()> {
        if !d.ordered {
            self.out.push(EMPTY_DICT);
            return self.items(&d.entries, depth);
        }
        self.empty_ordered_dict();
        self.items(&d.entries, depth)?;
        if let Some(meta) = &d.metadata {
            // OrderedDict.__reduce__ state: {'_metadata': ...}, applied with BUILD.
            self.out.push(EMPTY_DICT);
            self.memo_str("_metadata");
            self.value(meta, depth + 1)?;
            self.out.push(SETITEM);
            self.out.push(BUILD);
        }
        Ok(())
    }

    fn tensor(&mut self, t: &TensorValue) -> Result<()> {
        let d = t.dtype();
        let v3 = storage_class(d).is_none();
        if t.is_parameter {
            self.global("torch._utils", "_rebuild_parameter");
        }
        self.global(
            "torch._utils",
            if v3 {
                "_rebuild_tensor_v3"
            } else {
                "_rebuild_tensor_v2"
            },
        );
        self.out.push(MARK);
        // The persistent id of the storage.
        let ptr = Arc::as_ptr(&t.storage) as usize;
        let key = match self.storage_keys.get(&ptr) {
            Some(&k) => k,
            None => {
                let k = self.storages.len();
                self.storage_keys.insert(ptr, k);
                self.storages.push(t.storage.clone());
                k
            }
        };
        self.out.push(MARK);
        self.memo_str("storage");
        match storage_class(d) {
            Some(class) => self.global("torch", class),
            None => self.global("torch.storage", "UntypedStorage"),
        }
        self.memo_str(&key.to_string());
        self.memo_str(&t.storage.location);
        // numel counts elements of the storage class (bytes for UntypedStorage).
        let numel = if v3 {
            t.storage.data.len()
        } else {
            t.storage.numel()
        };
        self.int(numel as i64);
        self.out.push(TUPLE);
        self.out.push(BINPERSID);
        self.int(t.offset as i64);
        self.tuple_of_ints(&t.shape);
        self.tuple_of_ints(&t.stride);
        // requires_grad of a parameter lives in _rebuild_parameter's own argument.
        let rg = t.requires_grad && !t.is_parameter;
        self.out.push(if rg { NEWTRUE } else { NEWFALSE });
        self.empty_ordered_dict();
        if v3 {
            self.global("torch", dtype_attr(d));
        }
        self.out.push(TUPLE);
        self.out.push(REDUCE);
        if t.is_parameter {
            self.out
                .push(if t.requires_grad { NEWTRUE } else { NEWFALSE });
            self.empty_ordered_dict();
            self.out.push(TUPLE3);
            self.out.push(REDUCE);
        }
        Ok(())
    }
}

/// The dtype of a storage as `torch.save` names its class (`FloatStorage`), for messages.
pub fn storage_class_name(d: Dtype) -> &'static str {
    storage_class(d).unwrap_or("UntypedStorage")
}
