//! What `#[derive(Module)]` expands to: one trait, [`ModuleField`], that every allowed field
//! type implements (a module, `Vec<M>`, `Option<M>`, `Box<dyn Module>`, [`Param`],
//! `Option<Param>`, [`Buffer`]), the rebuild context of whole-model files, the
//! `#[module(skip)]` probes and the registration record. Reached as `kiln::__private`; not
//! API of its own.

use super::param::{Buffer, Param};
use super::spec::{ModuleSpec, NamedSpec};
use super::{Module, registry};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::any::TypeId;
use std::cell::RefCell;
use std::marker::PhantomData;

pub use inventory;

/// The outcome of [`ModuleField::replace_field`].
pub enum Replaced {
    /// The field was a child: the old module, or why the new one does not fit.
    Done(Result<Box<dyn Module>>),
    /// The field holds no child under that name (a `Param`, an empty `Option`).
    NotAChild(Box<dyn Module>),
}

/// A field of a `#[derive(Module)]` struct. Implemented for every type a field may have; a
/// field of any other type is a compile error unless marked `#[module(skip)]`.
pub trait ModuleField {
    /// Adds the field's own parameters (a `Param` field) under `name`.
    fn collect_params(&self, _name: &str, _out: &mut Vec<(String, Param)>) {}
    /// Adds the field's own buffers (a `Buffer` field) under `name`.
    fn collect_buffers(&self, _name: &str, _out: &mut Vec<(String, Buffer)>) {}
    /// Adds the field as a child module under `name`.
    fn collect_children<'a>(&'a self, _name: &str, _out: &mut Vec<(String, &'a dyn Module)>) {}
    /// The field as a mutable child, if it is one.
    fn field_mut(&mut self) -> Option<&mut dyn Module> {
        None
    }
    /// Replaces the child held by the field.
    fn replace_field(&mut self, _owner: &str, _name: &str, new: Box<dyn Module>) -> Replaced {
        Replaced::NotAChild(new)
    }
    /// Describes the field in the owner's spec (a child spec, or a tensor's shape).
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec);
    /// Rebuilds the field from a spec and its built children (whole-model files).
    ///
    /// # Errors
    /// `K0405` when the spec lacks the field or holds another type.
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self>
    where
        Self: Sized;
}

fn replace_typed<T: Module>(
    slot: &mut T,
    owner: &str,
    name: &str,
    new: Box<dyn Module>,
) -> Result<Box<dyn Module>> {
    let got = new.type_name();
    match T::from_boxed(new) {
        Ok(m) => Ok(Box::new(std::mem::replace(slot, m))),
        Err(_) => Err(Error::ReplaceType {
            model: owner.to_string(),
            name: name.to_string(),
            expected: slot.type_name().to_string(),
            got: got.to_string(),
        }),
    }
}

fn rebuild_typed<T: Module>(ctx: &RebuildCtx<'_>, name: &str, m: Box<dyn Module>) -> Result<T> {
    let got = m.type_name();
    T::from_boxed(m).map_err(|_| Error::BadSpec {
        detail: format!(
            "{}: child '{name}' is a {got}, not the {} the type declares",
            ctx.owner,
            std::any::type_name::<T>()
        ),
    })
}

impl<T: Module> ModuleField for T {
    fn collect_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Module)>) {
        out.push((name.to_string(), self));
    }
    fn field_mut(&mut self) -> Option<&mut dyn Module> {
        Some(self)
    }
    fn replace_field(&mut self, owner: &str, name: &str, new: Box<dyn Module>) -> Replaced {
        Replaced::Done(replace_typed(self, owner, name, new))
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        spec.children.push(NamedSpec {
            name: name.to_string(),
            module: self.spec(),
        });
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        let m = ctx.take_child(name)?;
        rebuild_typed(ctx, name, m)
    }
}

impl<T: Module> ModuleField for Option<T> {
    fn collect_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Module)>) {
        if let Some(m) = self {
            out.push((name.to_string(), m));
        }
    }
    fn field_mut(&mut self) -> Option<&mut dyn Module> {
        self.as_mut().map(|m| m as &mut dyn Module)
    }
    fn replace_field(&mut self, owner: &str, name: &str, new: Box<dyn Module>) -> Replaced {
        match self {
            Some(m) => Replaced::Done(replace_typed(m, owner, name, new)),
            None => Replaced::NotAChild(new),
        }
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        if let Some(m) = self {
            m.add_to_spec(name, spec);
        }
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        match ctx.take_child_opt(name) {
            Some(m) => rebuild_typed(ctx, name, m).map(Some),
            None => Ok(None),
        }
    }
}

impl ModuleField for Box<dyn Module> {
    fn collect_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Module)>) {
        out.push((name.to_string(), self.as_ref()));
    }
    fn field_mut(&mut self) -> Option<&mut dyn Module> {
        Some(self.as_mut())
    }
    fn replace_field(&mut self, _owner: &str, _name: &str, new: Box<dyn Module>) -> Replaced {
        Replaced::Done(Ok(std::mem::replace(self, new)))
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        spec.children.push(NamedSpec {
            name: name.to_string(),
            module: self.spec(),
        });
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        ctx.take_child(name)
    }
}

const PARAMS_KEY: &str = "__params";
const BUFFERS_KEY: &str = "__buffers";

fn tensor_entry(t: &Tensor, extra: (&str, bool)) -> Value {
    serde_json::json!({
        "shape": t.dims(),
        "dtype": crate::device::dtype_name(t.dtype()),
        extra.0: extra.1,
    })
}

fn add_tensor_spec(spec: &mut ModuleSpec, group: &str, name: &str, entry: Value) {
    let slot = spec
        .config
        .entry(group.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(m) = slot {
        m.insert(name.to_string(), entry);
    }
}

impl ModuleField for Param {
    fn collect_params(&self, name: &str, out: &mut Vec<(String, Param)>) {
        out.push((name.to_string(), self.clone()));
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        let entry = tensor_entry(&self.detached(), ("requires_grad", self.requires_grad()));
        add_tensor_spec(spec, PARAMS_KEY, name, entry);
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        let (t, requires_grad) = ctx.tensor(PARAMS_KEY, name, "requires_grad")?;
        Param::new(&t, requires_grad)
    }
}

impl ModuleField for Option<Param> {
    fn collect_params(&self, name: &str, out: &mut Vec<(String, Param)>) {
        if let Some(p) = self {
            p.collect_params(name, out);
        }
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        if let Some(p) = self {
            p.add_to_spec(name, spec);
        }
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        if ctx.has_tensor(PARAMS_KEY, name) {
            Param::rebuild(ctx, name).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl ModuleField for Buffer {
    fn collect_buffers(&self, name: &str, out: &mut Vec<(String, Buffer)>) {
        out.push((name.to_string(), self.clone()));
    }
    fn add_to_spec(&self, name: &str, spec: &mut ModuleSpec) {
        let entry = tensor_entry(&self.get(), ("persistent", self.persistent()));
        add_tensor_spec(spec, BUFFERS_KEY, name, entry);
    }
    fn rebuild(ctx: &mut RebuildCtx<'_>, name: &str) -> Result<Self> {
        let (t, persistent) = ctx.tensor(BUFFERS_KEY, name, "persistent")?;
        Ok(if persistent {
            Buffer::new(t)
        } else {
            Buffer::non_persistent(t)
        })
    }
}

/// A spec being turned back into a derived struct: its config and built children.
pub struct RebuildCtx<'a> {
    owner: &'static str,
    spec: &'a ModuleSpec,
    children: Vec<(String, Box<dyn Module>)>,
}

impl<'a> RebuildCtx<'a> {
    /// The context for rebuilding `owner` from `spec` and its built `children`.
    pub fn new(
        owner: &'static str,
        spec: &'a ModuleSpec,
        children: Vec<(String, Box<dyn Module>)>,
    ) -> Self {
        RebuildCtx {
            owner,
            spec,
            children,
        }
    }

    fn take_child(&mut self, name: &str) -> Result<Box<dyn Module>> {
        registry::take_child(&mut self.children, self.owner, name)
    }

    fn take_child_opt(&mut self, name: &str) -> Option<Box<dyn Module>> {
        let i = self.children.iter().position(|(n, _)| n == name)?;
        Some(self.children.remove(i).1)
    }

    fn has_tensor(&self, group: &str, name: &str) -> bool {
        self.spec
            .config
            .get(group)
            .and_then(|g| g.get(name))
            .is_some()
    }

    /// A zero tensor of the recorded shape and dtype (the file's weights are loaded into it
    /// afterwards) and the recorded flag (`requires_grad` / `persistent`).
    fn tensor(&self, group: &str, name: &str, flag: &str) -> Result<(Tensor, bool)> {
        let bad = |what: &str| Error::BadSpec {
            detail: format!("{}: tensor '{name}' {what}", self.owner),
        };
        let e = self
            .spec
            .config
            .get(group)
            .and_then(|g| g.get(name))
            .ok_or_else(|| bad("is missing from the spec"))?;
        let shape: Vec<usize> = e
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("has no shape"))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("has a shape that is not a list of sizes"))?;
        let dtype = e
            .get("dtype")
            .and_then(Value::as_str)
            .map(crate::device::parse_dtype)
            .transpose()?
            .unwrap_or(DType::F32);
        let elems = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elems.is_none_or(|n| n > (1 << 34)) {
            return Err(bad("declares an impossible size"));
        }
        let t = Tensor::zeros(shape, dtype, &Device::Cpu)
            .map_err(|e| Error::backend(format!("rebuild {}.{name}", self.owner), e))?;
        let flag = e.get(flag).and_then(Value::as_bool).unwrap_or(true);
        Ok((t, flag))
    }

    /// The value the spec recorded for a `#[module(skip)]` field.
    pub fn skip_value(&self, name: &str) -> Option<&Value> {
        self.spec.config.get(name)
    }

    /// Fails when the spec has children no field took.
    ///
    /// # Errors
    /// `K0405` naming them.
    pub fn finish(self) -> Result<()> {
        if self.children.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.children.iter().map(|(n, _)| n.as_str()).collect();
        Err(Error::BadSpec {
            detail: format!(
                "{}: the spec has children no field holds: {names:?}",
                self.owner
            ),
        })
    }
}

/// Probes a `#[module(skip)]` field's type: serde-serialisable configuration is kept in the
/// spec, otherwise `Default` rebuilds it, otherwise rebuilding needs a registered builder.
pub struct SkipProbe<T>(PhantomData<T>);

impl<T> SkipProbe<T> {
    /// A probe for `T`.
    pub fn new() -> Self {
        SkipProbe(PhantomData)
    }
}

impl<T> Default for SkipProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Skip fields that serde can write and read back.
pub trait SkipViaSerde<T> {
    /// The field's value for the spec.
    fn skip_to_json(&self, v: &T) -> Option<Value>;
    /// The field's value from the spec.
    ///
    /// # Errors
    /// `K0405` when the spec lacks it or it does not deserialise.
    fn skip_from_json(&self, ctx: &RebuildCtx<'_>, name: &str) -> Result<T>;
}

impl<T: Serialize + DeserializeOwned> SkipViaSerde<T> for &&SkipProbe<T> {
    fn skip_to_json(&self, v: &T) -> Option<Value> {
        serde_json::to_value(v).ok()
    }
    fn skip_from_json(&self, ctx: &RebuildCtx<'_>, name: &str) -> Result<T> {
        let v = ctx.skip_value(name).ok_or_else(|| Error::BadSpec {
            detail: format!("{}: configuration '{name}' is missing", ctx.owner),
        })?;
        serde_json::from_value(v.clone()).map_err(|e| Error::BadSpec {
            detail: format!("{}: configuration '{name}': {e}", ctx.owner),
        })
    }
}

/// Skip fields rebuilt with `Default`.
pub trait SkipViaDefault<T> {
    /// Nothing is stored.
    fn skip_to_json(&self, v: &T) -> Option<Value>;
    /// `T::default()`.
    ///
    /// # Errors
    /// Never.
    fn skip_from_json(&self, ctx: &RebuildCtx<'_>, name: &str) -> Result<T>;
}

impl<T: Default> SkipViaDefault<T> for &SkipProbe<T> {
    fn skip_to_json(&self, _v: &T) -> Option<Value> {
        None
    }
    fn skip_from_json(&self, _ctx: &RebuildCtx<'_>, _name: &str) -> Result<T> {
        Ok(T::default())
    }
}

/// Skip fields that can be neither stored nor defaulted.
pub trait SkipViaNothing<T> {
    /// Nothing is stored.
    fn skip_to_json(&self, v: &T) -> Option<Value>;
    /// Always an error naming the field.
    ///
    /// # Errors
    /// `K0405`.
    fn skip_from_json(&self, ctx: &RebuildCtx<'_>, name: &str) -> Result<T>;
}

impl<T> SkipViaNothing<T> for SkipProbe<T> {
    fn skip_to_json(&self, _v: &T) -> Option<Value> {
        None
    }
    fn skip_from_json(&self, ctx: &RebuildCtx<'_>, name: &str) -> Result<T> {
        Err(Error::BadSpec {
            detail: format!(
                "{}: #[module(skip)] field '{name}' ({}) is neither serde-serialisable nor Default, so a whole-model file cannot rebuild it; derive Serialize/Deserialize or Default for it, or register a builder with kiln::nn::registry::register",
                ctx.owner,
                std::any::type_name::<T>()
            ),
        })
    }
}

/// A derived type's whole-model builder, collected at link time.
pub struct Registration {
    /// The class name stored in specs.
    pub name: &'static str,
    /// Spec + built children → the module.
    pub build: registry::BuildFn,
}

impl Registration {
    /// A registration record.
    pub const fn new(name: &'static str, build: registry::BuildFn) -> Self {
        Registration { name, build }
    }
}

inventory::collect!(Registration);

thread_local! {
    static ACTIVE_FORWARDS: RefCell<Vec<(usize, TypeId)>> = const { RefCell::new(Vec::new()) };
}

/// Detects a derived `forward` that comes back to itself (no inherent `forward`).
pub struct ForwardGuard {
    key: (usize, TypeId),
}

impl ForwardGuard {
    /// Marks `this`'s forward as running on this thread.
    ///
    /// # Errors
    /// `K0407` when it is already running (the struct has no inherent `forward`).
    pub fn enter<T: 'static>(this: &T, class: &str) -> Result<Self> {
        let key = (this as *const T as usize, TypeId::of::<T>());
        ACTIVE_FORWARDS.with(|a| {
            let mut a = a.borrow_mut();
            if a.contains(&key) {
                return Err(Error::NoForward {
                    model: class.to_string(),
                });
            }
            a.push(key);
            Ok(ForwardGuard { key })
        })
    }
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        ACTIVE_FORWARDS.with(|a| {
            let mut a = a.borrow_mut();
            if let Some(i) = a.iter().rposition(|k| *k == self.key) {
                a.remove(i);
            }
        });
    }
}
