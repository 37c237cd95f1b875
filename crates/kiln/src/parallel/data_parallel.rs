//! `DataParallel`: PyTorch's `nn.DataParallel` — scatter the batch, run replicas in parallel
//! threads, gather the outputs, and let backward sum the gradients onto the wrapped module's
//! parameters.
//!
//! Replicas are rebuilt from the module's spec once and re-bound to the original parameters
//! on every forward (`Param::bind_to`), so an optimizer step or a freeze is always seen.
//! Replica 0 on `device_ids[0]` is the wrapped module itself, so its in-place buffer updates
//! (BatchNorm running statistics of the first chunk) are kept, exactly as PyTorch documents;
//! other replicas' buffer updates are discarded.
//!
//! ```
//! use kiln::nn::{Linear, Module};
//! use kiln::parallel::DataParallel;
//! let dp = DataParallel::new(Box::new(Linear::new(4, 2, true)?), &["cpu", "cpu"], None)?;
//! assert_eq!(dp.state_dict().keys().next(), Some("module.weight"));
//! # Ok::<(), kiln::Error>(())
//! ```

use super::scatter::chunk_sizes;
use crate::device::{DeviceSpec, device_name};
use crate::error::{Context, Error, Result};
use crate::nn::module::call_child;
use crate::nn::{Module, ModuleSpec, registry};
use crate::rng;
use candle_core::{Device, Tensor};
use std::sync::Mutex;

/// Wraps a module to run each batch split across several devices.
pub struct DataParallel {
    module: Box<dyn Module>,
    device_ids: Vec<DeviceSpec>,
    devices: Vec<Device>,
    output_device: Device,
    replicas: Mutex<Vec<Box<dyn Module>>>,
}

impl DataParallel {
    /// Wraps `module` for `device_ids` (e.g. `["cuda:0", "cuda:1"]`, or `["cpu", "cpu"]` for
    /// several CPU replicas); `output_device` defaults to `device_ids[0]`. The module's
    /// parameters must already be on `device_ids[0]` (as in PyTorch).
    ///
    /// # Errors
    /// `K0003` for an empty device list or parameters on another device; `K0303`/`K0304`
    /// for CUDA devices that are unavailable or do not exist.
    pub fn new(
        module: Box<dyn Module>,
        device_ids: &[&str],
        output_device: Option<&str>,
    ) -> Result<Self> {
        if device_ids.is_empty() {
            return Err(Error::invalid(
                "DataParallel device_ids",
                "[]",
                "at least one device",
            ));
        }
        let specs = device_ids
            .iter()
            .map(|d| d.parse::<DeviceSpec>())
            .collect::<Result<Vec<_>>>()?;
        let devices = specs
            .iter()
            .map(|s| s.resolve())
            .collect::<Result<Vec<_>>>()?;
        let output_device = match output_device {
            Some(d) => d.parse::<DeviceSpec>()?.resolve()?,
            None => devices[0].clone(),
        };
        for (name, p) in module.named_parameters() {
            if !p.device().same_device(&devices[0]) {
                return Err(Error::invalid(
                    "DataParallel module",
                    format!("parameter {name} on {}", device_name(&p.device())),
                    format!(
                        "all parameters on device_ids[0] = {} (call module.to_device first)",
                        specs[0]
                    ),
                ));
            }
        }
        Ok(DataParallel {
            module,
            device_ids: specs,
            devices,
            output_device,
            replicas: Mutex::new(Vec::new()),
        })
    }

    /// The wrapped module (PyTorch's `dp.module`).
    pub fn module(&self) -> &dyn Module {
        self.module.as_ref()
    }

    /// The wrapped module, mutably (to replace its head, say).
    pub fn module_mut(&mut self) -> &mut dyn Module {
        self.replicas
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.module.as_mut()
    }

    /// Unwraps the module.
    pub fn into_inner(self) -> Box<dyn Module> {
        self.module
    }

    /// The devices, in order.
    pub fn device_ids(&self) -> &[DeviceSpec] {
        &self.device_ids
    }

    /// Makes sure `n - 1` replicas exist (replica 0 is the module itself), built with a
    /// scratch generator so building them does not disturb kiln's RNG stream.
    fn ensure_replicas(&self, replicas: &mut Vec<Box<dyn Module>>, n: usize) -> Result<()> {
        if replicas.len() >= n.saturating_sub(1) {
            return Ok(());
        }
        let spec = self.module.spec();
        let saved = rng::replace(rng::Generator::new(0));
        let mut result = Ok(());
        while replicas.len() < n.saturating_sub(1) {
            match registry::build(&spec) {
                Ok(m) => replicas.push(m),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        rng::replace(saved);
        result
    }

    /// Points replica `r`'s parameters at the originals moved to `device`, copies buffers
    /// and training flags.
    fn bind(&self, replica: &dyn Module, device: &Device) -> Result<()> {
        let orig = self.module.named_parameters();
        let rep = replica.named_parameters();
        if orig.len() != rep.len() {
            return Err(Error::invalid(
                "DataParallel replica",
                format!("{} parameters", rep.len()),
                format!("{} parameters like the module", orig.len()),
            ));
        }
        for ((_, o), (_, r)) in orig.iter().zip(&rep) {
            r.bind_to(o, device)?;
        }
        for ((_, o), (_, r)) in self
            .module
            .named_buffers()
            .iter()
            .zip(replica.named_buffers())
        {
            r.replace(o.get().to_device(device).ctx("replicate buffer")?);
        }
        replica.set_training(self.module.training_flag().unwrap_or(true));
        for ((_, o), (_, r)) in self
            .module
            .named_modules()
            .iter()
            .zip(replica.named_modules())
        {
            if let Some(t) = o.training_flag() {
                r.set_training(t);
            }
        }
        Ok(())
    }
}

impl Module for DataParallel {
    fn type_name(&self) -> &'static str {
        "DataParallel"
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let batch = x.dims().first().copied().unwrap_or(0);
        let sizes = chunk_sizes(batch, self.devices.len());
        if sizes.len() <= 1 {
            let x = x.to_device(&self.devices[0]).ctx("DataParallel scatter")?;
            let y = call_child("module", self.module.as_ref(), &x)?;
            return y.to_device(&self.output_device).ctx("DataParallel gather");
        }
        let mut replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        self.ensure_replicas(&mut replicas, sizes.len())?;
        let mut chunks = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for (i, &s) in sizes.iter().enumerate() {
            let c = x
                .narrow(0, start, s)
                .and_then(|c| c.to_device(&self.devices[i]))
                .ctx("DataParallel scatter")?;
            chunks.push(c);
            start += s;
        }
        for (i, r) in replicas.iter().enumerate().take(sizes.len() - 1) {
            self.bind(r.as_ref(), &self.devices[i + 1])?;
        }
        let seeds: Vec<u64> = rng::with(|g| sizes.iter().map(|_| g.next_u64()).collect());
        let mut modules: Vec<&dyn Module> = vec![self.module.as_ref()];
        modules.extend(replicas.iter().map(|r| r.as_ref()));
        // Autocast is per thread: the replicas run under the caller's (PyTorch's
        // parallel_apply does the same).
        let amp = crate::amp::autocast::current();
        let outputs: Vec<Result<Tensor>> = std::thread::scope(|scope| {
            let handles: Vec<_> = modules
                .iter()
                .zip(&chunks)
                .zip(&seeds)
                .map(|((m, c), &seed)| {
                    scope.spawn(move || {
                        let _amp = crate::amp::autocast::enter(amp);
                        rng::manual_seed(seed);
                        call_child("module", *m, c)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Unsupported {
                            what: "a DataParallel replica thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut gathered = Vec::with_capacity(outputs.len());
        for o in outputs {
            gathered.push(
                o?.to_device(&self.output_device)
                    .ctx("DataParallel gather")?,
            );
        }
        Tensor::cat(&gathered, 0).ctx("DataParallel gather")
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("module".to_string(), self.module.as_ref())]
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut dyn Module> {
        (name == "module").then(|| self.module_mut())
    }

    fn replace_child(&mut self, name: &str, new: Box<dyn Module>) -> Result<Box<dyn Module>> {
        if name != "module" {
            return Err(wrapped(name));
        }
        self.replicas
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(std::mem::replace(&mut self.module, new))
    }

    fn get_submodule(&self, path: &str) -> Result<&dyn Module> {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        if first != "module" {
            return Err(wrapped(first));
        }
        if rest.is_empty() {
            Ok(self.module.as_ref())
        } else {
            self.module.get_submodule(rest)
        }
    }

    fn spec(&self) -> ModuleSpec {
        let ids: Vec<String> = self.device_ids.iter().map(|d| d.to_string()).collect();
        ModuleSpec::new("DataParallel")
            .with("device_ids", ids)
            .child("module", self.module.spec())
    }

    fn extra_repr(&self) -> String {
        let ids: Vec<String> = self.device_ids.iter().map(|d| d.to_string()).collect();
        format!("device_ids=[{}]", ids.join(", "))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn wrapped(attribute: &str) -> Error {
    Error::WrappedAttribute {
        wrapper: "DataParallel".into(),
        attribute: attribute.to_string(),
    }
}

/// Registry builder for whole-model files of a DataParallel model.
pub(crate) fn from_spec(
    spec: &ModuleSpec,
    mut children: Vec<(String, Box<dyn Module>)>,
) -> Result<Box<dyn Module>> {
    let inner = registry::take_child(&mut children, "DataParallel", "module")?;
    let ids: Vec<String> = spec
        .config
        .get("device_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec!["cpu".to_string()]);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    Ok(Box::new(DataParallel::new(inner, &refs, None)?))
}
