//! kiln's one error type: every failure a user can cause is a variant with a stable code,
//! the values involved and a hint that says how to fix it.
//!
//! ```
//! let err = kiln::Error::EmptyDataset { name: "digits".into(), len: 0, batch_size: 32, drop_last: false };
//! assert_eq!(err.code(), "K0101");
//! assert!(err.hint().contains("data"));
//! ```

pub mod alloc;
mod catalog;
mod context;

pub use catalog::{CATALOG, CodeInfo, lookup, markdown};
pub use context::{Context, shape_str};

use std::path::PathBuf;

/// Result alias used throughout kiln.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error kiln reports. Each variant has a stable code (see [`Error::code`]) documented
/// in the catalogue (`kiln explain CODE`, `docs/errors.md`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---------------------------------------------------------------- K00xx general
    /// A tensor operation failed inside the backend; `op` says what kiln was doing.
    #[error("{op}: {source}")]
    Backend {
        op: String,
        #[source]
        source: candle_core::Error,
    },
    /// Reading or writing a file failed.
    #[error("{action} '{path}': {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An argument has a value kiln cannot use.
    #[error("invalid value for {what}: {value} ({expected})")]
    InvalidArgument {
        what: String,
        value: String,
        expected: String,
    },
    /// Allocation failed: the device ran out of memory.
    #[error("out of memory on {device}: tried to allocate {bytes} bytes ({human})")]
    OutOfMemory {
        device: String,
        bytes: u64,
        human: String,
    },
    /// A feature kiln does not implement (yet), named.
    #[error("unsupported: {what}")]
    Unsupported { what: String },

    // ---------------------------------------------------------------- K01xx data
    /// The data set is empty, or `drop_last` with a batch larger than the data leaves no batch.
    #[error(
        "data set '{name}' yields no batch: {len} samples, batch_size={batch_size}, drop_last={drop_last} (PyTorch: num_samples should be a positive integer value)"
    )]
    EmptyDataset {
        name: String,
        len: usize,
        batch_size: usize,
        drop_last: bool,
    },
    /// Samples of different shapes in one batch.
    #[error(
        "stack expects each sample to be equal size, but got {first} at entry 0 and {other} at entry {index}"
    )]
    RaggedBatch {
        first: String,
        other: String,
        index: usize,
    },
    /// A data file or data argument could not be used.
    #[error("bad data in {source_name}: {detail}")]
    BadData { source_name: String, detail: String },
    /// An image file that cannot be decoded (unreadable, truncated, not an image).
    #[error("cannot decode image '{path}': {detail}")]
    BadImage { path: String, detail: String },
    /// An image whose header declares more pixels than the decoding limits allow.
    #[error(
        "image '{path}' declares {width}x{height} pixels, over the limit of {max_side} pixels a side / {max_bytes} bytes decoded"
    )]
    ImageTooLarge {
        path: String,
        width: u64,
        height: u64,
        max_side: u32,
        max_bytes: u64,
    },
    /// A CSV cell (or line) that cannot be used, with its 1-based line and column.
    #[error("'{path}' line {line}, column {column} ('{header}'): {detail}")]
    CsvCell {
        path: String,
        line: u64,
        column: usize,
        header: String,
        detail: String,
    },
    /// A data-set file (IDX, CIFAR batch, tensors file) whose layout is not what its format says.
    #[error("'{path}' is not a valid {format} file: {detail}")]
    DataFormat {
        path: String,
        format: String,
        detail: String,
    },
    /// A loader worker thread failed without a kiln error (it panicked).
    #[error("data loader worker {worker} failed on batch {batch}: {detail}")]
    DataWorker {
        worker: usize,
        batch: usize,
        detail: String,
    },

    // ---------------------------------------------------------------- K02xx layers, shapes, losses
    /// Conv input channels differ from the layer's `in_channels`.
    #[error(
        "{module}: Given groups={groups}, weight of size {weight}, expected input {input} to have {expected} channels, but got {got} channels instead"
    )]
    ConvChannels {
        module: String,
        groups: usize,
        weight: String,
        input: String,
        expected: usize,
        got: usize,
    },
    /// A Linear layer's `in_features` differs from the (flattened) input size.
    #[error(
        "{module}: mat1 and mat2 shapes cannot be multiplied ({rows}x{got} and {in_features}x{out_features}): the input has {got} features per sample but the layer expects in_features={in_features}"
    )]
    LinearInFeatures {
        module: String,
        rows: usize,
        got: usize,
        in_features: usize,
        out_features: usize,
    },
    /// An input has the wrong number of dimensions for a layer.
    #[error("{module}: expected a {expected} input, got shape {shape}")]
    InputRank {
        module: String,
        expected: String,
        shape: String,
    },
    /// BatchNorm in training mode with a single value per channel.
    #[error(
        "{module}: Expected more than 1 value per channel when training, got input size {shape}"
    )]
    BatchNormSingleValue { module: String, shape: String },
    /// A class index target outside `[0, num_classes)`.
    #[error(
        "Target {target} is out of bounds: cross-entropy over {num_classes} classes needs labels in [0, {num_classes}); labels seen range from {min} to {max}{diagnosis}"
    )]
    TargetOutOfBounds {
        target: i64,
        num_classes: usize,
        min: i64,
        max: i64,
        diagnosis: String,
    },
    /// Targets of the wrong shape for a loss (one-hot, `[N,1]`, …).
    #[error("{loss}: {detail}: input shape {input}, target shape {target}")]
    TargetShape {
        loss: String,
        detail: String,
        input: String,
        target: String,
    },
    /// Backward was asked for a value that depends on nothing trainable.
    #[error(
        "backward: the loss does not depend on any parameter that requires grad ({frozen} frozen, {trainable} trainable parameters)"
    )]
    NothingRequiresGrad { frozen: usize, trainable: usize },
    /// A LayerNorm input whose trailing dimensions differ from `normalized_shape`.
    #[error(
        "{module}: Given normalized_shape={normalized_shape}, expected input with shape [*, {trailing}], but got input of size {shape}"
    )]
    NormalizedShape {
        module: String,
        normalized_shape: String,
        /// The expected trailing dims, comma separated (`4, 6`).
        trailing: String,
        shape: String,
    },
    /// An embedding id outside `[0, num_embeddings)`.
    #[error(
        "{module}: index out of range in self: id {id} at position {position} of ids {shape}, but num_embeddings={num_embeddings} (ids must be in [0, {num_embeddings}))"
    )]
    EmbeddingIndex {
        module: String,
        id: i64,
        position: usize,
        shape: String,
        num_embeddings: usize,
    },
    /// Ids (or class indices) of a non-integer dtype.
    #[error(
        "{module}: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got {dtype} instead"
    )]
    IndexDtype { module: String, dtype: String },
    /// An attention or recurrent layer's input, mask or state whose shape does not fit.
    #[error("{module}: {what} has shape {got}, but should be {expected}")]
    SequenceShape {
        module: String,
        /// Which argument (`query`, `key_padding_mask`, `h0`, …).
        what: String,
        got: String,
        expected: String,
    },

    // ---------------------------------------------------------------- K03xx devices and dtypes
    /// A module's weights and its input live on different devices.
    #[error(
        "{module}: Expected all tensors to be on the same device, but the weights are on {weights} and the input is on {input}"
    )]
    DeviceMismatch {
        module: String,
        weights: String,
        input: String,
    },
    /// A module's weights and its input have different float dtypes.
    #[error("{module}: Found dtype {input} but expected {weights} (the dtype of the weights)")]
    DtypeMismatch {
        module: String,
        weights: String,
        input: String,
    },
    /// CUDA was asked for but cannot be used here.
    #[error("CUDA device {requested} requested but CUDA is not available: {reason}")]
    CudaUnavailable { requested: String, reason: String },
    /// A device index that does not exist.
    #[error("device {requested} does not exist: {count} CUDA device(s) visible{visible}")]
    NoSuchDevice {
        requested: String,
        count: usize,
        visible: String,
    },
    /// A device or dtype string that does not parse.
    #[error("cannot parse '{text}' as a {what}; expected one of {expected}")]
    Parse {
        what: &'static str,
        text: String,
        expected: String,
    },
    /// An attribute of the wrapped module was asked of a wrapper (DataParallel, DDP).
    #[error("'{wrapper}' object has no attribute '{attribute}': the model is wrapped")]
    WrappedAttribute { wrapper: String, attribute: String },

    // ---------------------------------------------------------------- K04xx state dicts, keys, models
    /// Strict `load_state_dict` found missing, unexpected or mismatched keys.
    #[error("{message}")]
    StateDictMismatch {
        model: String,
        missing: Box<[String]>,
        unexpected: Box<[String]>,
        mismatched: Box<[String]>,
        message: String,
    },
    /// A name pattern (glob or regex) that does not compile or matches nothing.
    #[error("pattern '{pattern}' {problem}")]
    Pattern { pattern: String, problem: String },
    /// A whole-model file names an architecture that is not registered.
    #[error(
        "unknown architecture '{name}' in {path}: registered architectures are {registered} (PyTorch: Can't get attribute '{name}' on module '__main__')"
    )]
    UnknownArchitecture {
        name: String,
        path: String,
        registered: String,
    },
    /// A module path (e.g. `fc`, `layer4.1`) that the model does not have.
    #[error("{model} has no submodule '{name}'; submodules: {available}")]
    NoSuchModule {
        model: String,
        name: String,
        available: String,
    },
    /// A whole-model spec that cannot be turned into a model.
    #[error("bad model spec: {detail}")]
    BadSpec { detail: String },
    /// A typed child field was given a replacement of another module type.
    #[error(
        "{model}.{name} is a {expected} field; a {got} cannot replace it (PyTorch would allow any module there)"
    )]
    ReplaceType {
        model: String,
        name: String,
        expected: String,
        got: String,
    },
    /// A `#[derive(Module)]` struct without an inherent `forward`.
    #[error(
        "{model} has no inherent `fn forward(&self, x: &Tensor) -> kiln::Result<Tensor>`: #[derive(Module)] calls {model}::forward"
    )]
    NoForward { model: String },
    /// A frozen parameter that the pretrained file did not provide.
    #[error(
        "{count} frozen parameter(s) were not loaded from the pretrained file and would stay at their random initialisation: {names}"
    )]
    FrozenNotLoaded { names: String, count: usize },

    // ---------------------------------------------------------------- K05xx files and formats
    /// The file ends before the data it announces.
    #[error("'{path}': unexpected EOF: {detail}. The file might be truncated or corrupted")]
    Truncated { path: String, detail: String },
    /// The file's structure is damaged (zip directory, CRC, offsets).
    #[error("'{path}' is corrupted: {detail}")]
    Corrupt { path: String, detail: String },
    /// The file is not a model file kiln knows.
    #[error("'{path}' is not a model file kiln can read: {detail}")]
    NotAModelFile { path: String, detail: String },
    /// A pickle asked for a global outside the allow-list.
    #[error(
        "'{path}': refused to load: the pickle asks for global {global}, which is not on the weights-only allow-list (PyTorch: Weights only load failed … Unsupported global: GLOBAL {global})"
    )]
    UnsafeGlobal { path: String, global: String },
    /// A pickle names a global that runs code or reaches the system; refused in every mode.
    #[error(
        "'{path}': refused to read: the pickle names {global}, which {why}; nothing in the file was run"
    )]
    DangerousGlobal {
        path: String,
        /// `module.name`.
        global: String,
        /// What it would do.
        why: String,
    },
    /// The pickle stream is malformed or exceeds a safety limit.
    #[error("'{path}': bad pickle at byte {position}: {detail}")]
    Pickle {
        path: String,
        position: u64,
        detail: String,
    },
    /// A storage tagged for CUDA was loaded where CUDA is unavailable, without a map_location.
    #[error(
        "'{path}': Attempting to deserialize object on a CUDA device ({location}) but {reason}"
    )]
    CudaStorage {
        path: String,
        location: String,
        reason: String,
    },
    /// The file is readable but does not hold what was asked of it.
    #[error("'{path}': {detail}")]
    Schema { path: String, detail: String },
    /// Reading the file would build more objects than its read budget allows (a shared
    /// object referenced over and over, "billion laughs").
    #[error(
        "'{path}': refused to read: {what} needs more than the read budget of {limit} bytes ({human}) allows (max_expanded_bytes = max(64 MiB, 16 × file size) unless set)"
    )]
    ExpansionLimit {
        path: String,
        /// What was being built when the budget ran out.
        what: String,
        /// The budget in bytes.
        limit: u64,
        /// `limit` as KiB/MiB/GiB.
        human: String,
    },

    // ---------------------------------------------------------------- K06xx optimizers and schedulers
    /// An optimizer built with no trainable parameter.
    #[error("optimizer got an empty parameter list{detail}")]
    EmptyParameterList { detail: String },
    /// A parameter placed in two parameter groups.
    #[error(
        "some parameters appear in more than one parameter group: '{name}' is in groups {first} and {second}{detail}"
    )]
    DuplicateParameter {
        name: String,
        first: usize,
        second: usize,
        /// Why, when known (e.g. the two patterns that select it).
        detail: String,
    },
    /// Loaded optimizer or scheduler state does not fit the optimizer.
    #[error("cannot load optimizer state: {detail}")]
    OptimizerState { detail: String },

    // ---------------------------------------------------------------- K07xx checkpoints
    /// No checkpoint where one was required.
    #[error("no checkpoint found in '{dir}'{detail}")]
    NoCheckpoint { dir: String, detail: String },
    /// A resume with a configuration that differs from the checkpoint's.
    #[error("cannot resume: {field} differs: checkpoint has {checkpoint}, this run has {current}")]
    ResumeMismatch {
        field: String,
        checkpoint: String,
        current: String,
    },
    /// A training step's loss is NaN or infinite (the step was not applied).
    #[error(
        "loss is {loss} at step {step} (epoch {epoch}, batch {batch}) with learning rate {lr}: the step was not applied and training stopped"
    )]
    NonFiniteLoss {
        loss: f64,
        step: u64,
        epoch: usize,
        batch: usize,
        lr: String,
    },
    /// `clip_grad_norm` with `error_if_nonfinite` met a NaN or infinite total norm.
    #[error(
        "the total norm of order {norm_type} for gradients from `parameters` is non-finite ({norm}), so it cannot be clipped{at}"
    )]
    NonFiniteGradNorm {
        norm_type: f64,
        norm: f64,
        at: String,
    },
    /// Another live kiln run holds the directory's run lock.
    #[error("'{dir}' is in use by another kiln run (pid {pid}, lock file '{lock}')")]
    RunLocked {
        dir: PathBuf,
        pid: String,
        lock: PathBuf,
    },

    // ---------------------------------------------------------------- K074x LoRA adapters
    /// LoRA target patterns that select no Linear or Conv2d layer.
    #[error(
        "LoRA target pattern(s) {patterns} matched no Linear or Conv2d layer; the model's Linear/Conv2d layers are: {available}"
    )]
    LoraNoMatch {
        /// The patterns that matched nothing, quoted and comma-separated.
        patterns: String,
        /// Some of the layer names the patterns could select.
        available: String,
    },
    /// A LoRA setting or target layer kiln cannot adapt (rank 0, alpha, dropout, grouped
    /// convolution, a layer adapted twice).
    #[error("LoRA {what} is {got}; expected {expected}")]
    LoraConfig {
        what: String,
        got: String,
        expected: String,
    },
    /// An adapter directory or file that does not fit (PEFT layout, keys, shapes).
    #[error("LoRA adapter {path}: {detail}")]
    LoraAdapter { path: String, detail: String },

    // ---------------------------------------------------------------- K08xx distributed
    /// Started under a launcher (or asked for a backend) whose feature is not built in.
    #[error("distributed backend '{backend}' requested{launcher} but kiln was built without it")]
    BackendNotBuilt { backend: String, launcher: String },
    /// Ranks disagree (model, configuration) or a collective failed.
    #[error("distributed: {detail}")]
    Distributed { detail: String },
}

impl Error {
    /// The stable code of this error, e.g. `K0301`.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            Backend { .. } => "K0001",
            Io { .. } => "K0002",
            InvalidArgument { .. } => "K0003",
            OutOfMemory { .. } => "K0004",
            Unsupported { .. } => "K0005",
            EmptyDataset { .. } => "K0101",
            RaggedBatch { .. } => "K0102",
            BadData { .. } => "K0103",
            BadImage { .. } => "K0104",
            ImageTooLarge { .. } => "K0105",
            CsvCell { .. } => "K0106",
            DataFormat { .. } => "K0107",
            DataWorker { .. } => "K0108",
            ConvChannels { .. } => "K0201",
            LinearInFeatures { .. } => "K0202",
            InputRank { .. } => "K0203",
            BatchNormSingleValue { .. } => "K0204",
            TargetOutOfBounds { .. } => "K0205",
            TargetShape { .. } => "K0206",
            NothingRequiresGrad { .. } => "K0207",
            NormalizedShape { .. } => "K0208",
            EmbeddingIndex { .. } => "K0209",
            IndexDtype { .. } => "K0210",
            SequenceShape { .. } => "K0220",
            DeviceMismatch { .. } => "K0301",
            DtypeMismatch { .. } => "K0302",
            CudaUnavailable { .. } => "K0303",
            NoSuchDevice { .. } => "K0304",
            Parse { .. } => "K0305",
            WrappedAttribute { .. } => "K0306",
            StateDictMismatch { .. } => "K0401",
            Pattern { .. } => "K0402",
            UnknownArchitecture { .. } => "K0403",
            NoSuchModule { .. } => "K0404",
            BadSpec { .. } => "K0405",
            ReplaceType { .. } => "K0406",
            NoForward { .. } => "K0407",
            FrozenNotLoaded { .. } => "K0408",
            Truncated { .. } => "K0501",
            Corrupt { .. } => "K0502",
            NotAModelFile { .. } => "K0503",
            UnsafeGlobal { .. } => "K0504",
            Pickle { .. } => "K0505",
            CudaStorage { .. } => "K0506",
            Schema { .. } => "K0507",
            ExpansionLimit { .. } => "K0508",
            DangerousGlobal { .. } => "K0509",
            EmptyParameterList { .. } => "K0601",
            DuplicateParameter { .. } => "K0602",
            OptimizerState { .. } => "K0603",
            NoCheckpoint { .. } => "K0701",
            ResumeMismatch { .. } => "K0702",
            NonFiniteLoss { .. } => "K0703",
            NonFiniteGradNorm { .. } => "K0704",
            LoraNoMatch { .. } => "K0741",
            LoraConfig { .. } => "K0742",
            LoraAdapter { .. } => "K0743",
            RunLocked { .. } => "K0730",
            BackendNotBuilt { .. } => "K0801",
            Distributed { .. } => "K0802",
        }
    }

    /// A one-line fix for this error, with the values involved where they help.
    pub fn hint(&self) -> String {
        use Error::*;
        match self {
            LinearInFeatures {
                module,
                got,
                out_features,
                ..
            } => format!(
                "set {module} to Linear(in_features={got}, out_features={out_features}), or change the layers before it so they produce {got} features"
            ),
            ConvChannels {
                module, got, input, ..
            } => format!(
                "set {module}'s in_channels={got} to match the data (input {input}), or convert the data to the channels the layer expects"
            ),
            DeviceMismatch { weights, input, .. } => format!(
                "move the input with x.to_device({weights}) or the model with model.to_device({input}); both must be on one device"
            ),
            DtypeMismatch { weights, .. } => format!(
                "convert the input with x.to_dtype({weights}) (PyTorch: x.float()), or the model with model.to_dtype(...)"
            ),
            StateDictMismatch {
                unexpected,
                missing,
                ..
            } => {
                if unexpected.iter().any(|k| k.starts_with("module."))
                    && !missing.iter().any(|k| k.starts_with("module."))
                {
                    "the checkpoint's keys carry the DataParallel prefix 'module.': strip it (StateDict::strip_prefix(\"module.\"); CLI: kiln convert --strip-prefix module.)".into()
                } else if missing.iter().any(|k| k.starts_with("module."))
                    && !unexpected.iter().any(|k| k.starts_with("module."))
                {
                    "the model is wrapped (DataParallel) but the checkpoint is not: load into model.module(), or add the prefix with StateDict::add_prefix(\"module.\")".into()
                } else {
                    catalog::lookup(self.code())
                        .map(|c| c.hint.to_string())
                        .unwrap_or_default()
                }
            }
            UnknownArchitecture { registered, .. } => format!(
                "link the crate that defines it (a #[derive(Module)] struct registers itself), register a builder with kiln::nn::registry::register, or load the weights into a model you construct; registered: {registered}"
            ),
            ReplaceType { expected, name, .. } => format!(
                "build a {expected} for '{name}' (e.g. a new {expected} with other sizes), or declare the field as Box<dyn Module> to hold any module"
            ),
            NormalizedShape { shape, .. } => format!(
                "build the LayerNorm with normalized_shape equal to the input's trailing dimensions (input {shape}), or reshape the input"
            ),
            EmbeddingIndex {
                id, num_embeddings, ..
            } => format!(
                "id {id} does not fit num_embeddings={num_embeddings}: raise num_embeddings to at least {} or remap the ids to 0..{}",
                id.saturating_add(1).max(1),
                num_embeddings.saturating_sub(1)
            ),
            SequenceShape { what, expected, .. } => format!(
                "pass {what} with shape {expected}; the layer's batch_first decides whether inputs are (batch, seq, feature) or (seq, batch, feature)"
            ),
            RunLocked { pid, lock, .. } => format!(
                "wait for process {pid} to finish (or stop it), or train into another --out; a lock left by a run that was killed is taken over by the next run ('{}' itself is never deleted)",
                lock.display()
            ),
            NoSuchDevice { count, .. } => format!(
                "use one of cuda:0..cuda:{} or cpu; when loading a file, remap its storages with map_location",
                count.saturating_sub(1)
            ),
            _ => catalog::lookup(self.code())
                .map(|c| c.hint.to_string())
                .unwrap_or_default(),
        }
    }

    /// Wraps a backend error with what kiln was doing.
    pub fn backend(op: impl Into<String>, source: candle_core::Error) -> Self {
        Error::Backend {
            op: op.into(),
            source,
        }
    }

    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// An invalid argument.
    pub fn invalid(
        what: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// Whether this error comes from a bad command line or argument (CLI exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument { .. } | Error::Parse { .. } | Error::Pattern { .. }
        )
    }
}

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        // Out-of-memory and a few well-known backend failures get their own codes.
        let text = source.to_string();
        if let Some(bytes) = parse_oom_bytes(&text) {
            return Error::OutOfMemory {
                device: "device".into(),
                bytes,
                human: human_bytes(bytes),
            };
        }
        Error::Backend {
            op: "tensor operation".into(),
            source,
        }
    }
}

fn parse_oom_bytes(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("out of memory") && !lower.contains("memory allocation") {
        return None;
    }
    lower
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse::<u64>().ok())
        .max()
        .or(Some(0))
}

/// Formats a byte count as KiB/MiB/GiB for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_catalog_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CATALOG {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            assert!(
                !c.hint.is_empty() && !c.explanation.is_empty(),
                "{}",
                c.code
            );
        }
    }

    #[test]
    fn error_stays_below_clippys_result_large_err_threshold() {
        // clippy's `result_large_err` fires at 128 bytes on every function of a user's that
        // returns kiln::Result: the error must stay smaller (box the payload of a big variant).
        let size = std::mem::size_of::<Error>();
        assert!(size < 128, "kiln::Error is {size} bytes");
    }

    #[test]
    fn hint_names_module_prefix() {
        let e = Error::StateDictMismatch {
            model: "LeNet".into(),
            missing: vec!["fc.weight".into()].into(),
            unexpected: vec!["module.fc.weight".into()].into(),
            mismatched: Box::new([]),
            message: String::new(),
        };
        assert!(e.hint().contains("module."));
    }

    #[test]
    fn oom_text_is_recognised() {
        let e: Error =
            candle_core::Error::Msg("out of memory: failed to allocate 2147483648 bytes".into())
                .into();
        assert_eq!(e.code(), "K0004");
        assert!(e.to_string().contains("2147483648"));
        assert!(e.to_string().contains("2.00 GiB"));
    }
}
