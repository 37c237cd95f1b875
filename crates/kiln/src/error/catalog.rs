//! The catalogue of error codes: what each means, why it happens and how to fix it.
//! `kiln explain CODE` prints an entry; `kiln explain --markdown` regenerates `docs/errors.md`.

/// One entry of the error catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    /// Stable code, e.g. `K0301`.
    pub code: &'static str,
    /// The `Error` variant's name.
    pub name: &'static str,
    /// One-line summary.
    pub title: &'static str,
    /// What happened and the usual cause (with the PyTorch message users know, if any).
    pub explanation: &'static str,
    /// The usual fix.
    pub hint: &'static str,
}

/// Looks up a code (case-insensitive, `k0301` works too).
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    CATALOG.iter().find(|c| c.code.eq_ignore_ascii_case(code))
}

macro_rules! entry {
    ($code:literal, $name:literal, $title:literal, $explanation:literal, $hint:literal) => {
        CodeInfo {
            code: $code,
            name: $name,
            title: $title,
            explanation: $explanation,
            hint: $hint,
        }
    };
}

/// All codes, in order.
pub static CATALOG: &[CodeInfo] = &[
    entry!(
        "K0001",
        "Backend",
        "a tensor operation failed in the backend",
        "candle (the tensor backend) refused an operation. kiln checks the classic mistakes before they reach the backend; this code is what remains, with what kiln was doing attached.",
        "read the operation named in the message; the backend's own error is the error's `source()` (CLI: --verbose prints it)"
    ),
    entry!(
        "K0002",
        "Io",
        "reading or writing a file failed",
        "The operating system refused a read, write, rename or fsync: missing file, no permission, full disk. kiln writes through a temporary file and renames it, so a failed write leaves the previous file intact.",
        "check the path, its permissions and the free space on the disk"
    ),
    entry!(
        "K0003",
        "InvalidArgument",
        "an argument has a value kiln cannot use",
        "A command-line option or API argument is out of range or inconsistent (batch size 0, negative learning rate, unknown model name).",
        "use a value in the range the message gives"
    ),
    entry!(
        "K0004",
        "OutOfMemory",
        "the device ran out of memory",
        "An allocation failed (PyTorch: CUDA out of memory. Tried to allocate 2.00 GiB). The batch is too large for the device, or another process holds its memory.",
        "use a smaller batch size, a smaller model or dtype (bf16), or pick a free GPU with CUDA_VISIBLE_DEVICES"
    ),
    entry!(
        "K0005",
        "Unsupported",
        "kiln does not implement this",
        "The operation, dtype or file feature is outside what kiln supports; the message names it.",
        "convert the input to a supported form (see the message), or open an issue"
    ),
    entry!(
        "K0101",
        "EmptyDataset",
        "the data set yields no batch",
        "The data set is empty, or drop_last=true with batch_size larger than the data set drops every sample (PyTorch: num_samples should be a positive integer value, but got num_samples=0).",
        "check where the data comes from; lower batch_size or set drop_last=false"
    ),
    entry!(
        "K0102",
        "RaggedBatch",
        "samples of different shapes in one batch",
        "A batch stacks its samples, so all must have one shape (PyTorch: stack expects each tensor to be equal size, but got [3, 93, 93] at entry 0 and [3, 89, 89] at entry 1).",
        "resize or crop every sample to one shape before batching"
    ),
    entry!(
        "K0103",
        "BadData",
        "a data file or data argument cannot be used",
        "The data source is malformed (wrong length, bad label file) or does not fit the model.",
        "check the data file named in the message"
    ),
    entry!(
        "K0104",
        "BadImage",
        "an image file cannot be decoded",
        "A file of an image folder (or another image source) is unreadable, truncated or not an image of the format its extension says. torchvision's ImageFolder raises PIL's error (UnidentifiedImageError, image file is truncated); kiln names the file.",
        "replace or delete the file named in the message, or open the source with skip_bad=true to skip bad images and count them"
    ),
    entry!(
        "K0105",
        "ImageTooLarge",
        "an image declares more pixels than the decoding limits",
        "The image's header announces dimensions whose decoded pixels would exceed kiln's limits; kiln refuses before decoding so a hostile or broken file cannot exhaust memory (PIL: DecompressionBombError).",
        "shrink the image, or raise SourceOptions::max_image_side / max_image_bytes if the size is genuine"
    ),
    entry!(
        "K0106",
        "CsvCell",
        "a CSV cell or line cannot be used",
        "A feature cell is not a number, the target is missing, a row has the wrong number of fields, or a line is longer than the bounded maximum; the message gives the 1-based line and column and the header name.",
        "fix the cell named in the message, or choose another target column"
    ),
    entry!(
        "K0107",
        "DataFormat",
        "a data-set file does not match its format",
        "An IDX (MNIST), CIFAR or tensors file has a bad magic number, dimensions that disagree with its length, or lacks the arrays its format requires; kiln checks the header against the file length before allocating.",
        "re-download or re-extract the data set; check that the directory is laid out as the archive unpacks"
    ),
    entry!(
        "K0108",
        "DataWorker",
        "a data loader worker failed",
        "A worker thread of DataLoader::workers(n) stopped without a kiln error (a panic in a data set or transform). Errors a worker returns keep their own codes; this code only reports the rest.",
        "run with workers(0) to see the failure in the main thread, and report it"
    ),
    entry!(
        "K0201",
        "ConvChannels",
        "conv input channels differ from in_channels",
        "A Conv2d layer built with in_channels=C got an input with another number of channels (PyTorch: Given groups=1, weight of size [6, 1, 5, 5], expected input[16, 3, 32, 32] to have 1 channels, but got 3 channels instead).",
        "set the layer's in_channels to the data's channel count, or convert the data (e.g. grayscale to RGB)"
    ),
    entry!(
        "K0202",
        "LinearInFeatures",
        "Linear in_features differs from the flattened input size",
        "The features reaching a Linear layer (after Flatten) are not in_features (PyTorch: mat1 and mat2 shapes cannot be multiplied (16x576 and 400x120)). The usual cause is a changed input resolution or conv stack.",
        "set in_features to the number the message gives (the actual flattened size)"
    ),
    entry!(
        "K0203",
        "InputRank",
        "an input has the wrong number of dimensions",
        "A layer expects e.g. [N, C, H, W] and got a tensor of another rank.",
        "reshape the input (add the batch dimension with unsqueeze(0), or the channel dimension)"
    ),
    entry!(
        "K0204",
        "BatchNormSingleValue",
        "BatchNorm in training mode with one value per channel",
        "Batch statistics need more than one value per channel (PyTorch: Expected more than 1 value per channel when training, got input size [1, C]). Usually the last batch of an epoch holds one sample.",
        "use drop_last=true, a batch size that does not leave a batch of 1, or model.eval() for inference"
    ),
    entry!(
        "K0205",
        "TargetOutOfBounds",
        "a class label outside [0, num_classes)",
        "cross-entropy takes class indices 0..C-1 (PyTorch: Target 5 is out of bounds / device-side assert triggered). Labels that start at 1, or a non-contiguous label set like 0, 1, 128, 255, cause it.",
        "remap the labels to 0..C-1 (subtract 1 if they start at 1; map sorted unique labels to their index), or raise num_classes"
    ),
    entry!(
        "K0206",
        "TargetShape",
        "targets of the wrong shape for the loss",
        "cross-entropy takes a 1-D tensor of class indices [N] (PyTorch: multi-target not supported / 0D or 1D target tensor expected); one-hot [N, C] or [N, 1] targets cause it. MSE needs input and target of one shape.",
        "for one-hot targets use argmax(1); for [N, 1] targets squeeze(1); for multi-label use a binary loss"
    ),
    entry!(
        "K0207",
        "NothingRequiresGrad",
        "backward on a value that depends on nothing trainable",
        "Every parameter the loss depends on is frozen (PyTorch: element 0 of tensors does not require grad and does not have a grad_fn).",
        "unfreeze at least one parameter (the head), or skip backward for this model"
    ),
    entry!(
        "K0208",
        "NormalizedShape",
        "LayerNorm input does not end in normalized_shape",
        "LayerNorm(normalized_shape) normalises over the input's last len(normalized_shape) dimensions, so they must equal normalized_shape (PyTorch: Given normalized_shape=[6], expected input with shape [*, 6], but got input of size[3, 4, 5]).",
        "set normalized_shape to the input's trailing dimensions, or reshape the input"
    ),
    entry!(
        "K0209",
        "EmbeddingIndex",
        "an embedding id outside [0, num_embeddings)",
        "Embedding looks up row `id` of its [num_embeddings, embedding_dim] weight; a negative id or one >= num_embeddings has no row (PyTorch: IndexError: index out of range in self). kiln checks every id before indexing, so no wrong row is ever returned.",
        "raise num_embeddings above the largest id, or remap the ids (e.g. a vocabulary with an unknown-token id)"
    ),
    entry!(
        "K0210",
        "IndexDtype",
        "ids or indices of a floating-point dtype",
        "Embedding ids must be an integer tensor (i64, u32, i32, i16 or u8); a float tensor of ids is usually a data-loading mistake (PyTorch: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int).",
        "convert the ids with ids.to_dtype(DType::I64) (PyTorch: ids.long())"
    ),
    entry!(
        "K0220",
        "SequenceShape",
        "an attention or recurrent layer got an input, mask or state of the wrong shape",
        "MultiheadAttention, the Transformer layers, LSTM and GRU check every tensor they are given against their configuration before computing: the query's last dimension must be embed_dim, key and value must agree, attn_mask must be (L, S) or (N*num_heads, L, S), key_padding_mask (N, S), initial states (num_layers*num_directions, N, hidden_size) (PyTorch: was expecting embedding dimension of 8, but got 6 / Expected hidden[0] size (1, 3, 20), got [1, 2, 20]). A swapped batch and sequence dimension (batch_first) is the usual cause.",
        "give the tensor the shape the message names, or build the layer with batch_first=true for (batch, seq, feature) inputs"
    ),
    entry!(
        "K0301",
        "DeviceMismatch",
        "a module's weights and its input are on different devices",
        "(PyTorch: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!) The model or the data was not moved.",
        "model.to_device(&device) once, and x.to_device(&device) for every batch (it returns a new tensor)"
    ),
    entry!(
        "K0302",
        "DtypeMismatch",
        "a module's weights and its input have different dtypes",
        "(PyTorch: Found dtype Double but expected Float) f64 data into an f32 model, or an f16 model given f32 data.",
        "convert the data to the model's dtype (x.to_dtype(F32), PyTorch x.float()) or the model to the data's"
    ),
    entry!(
        "K0303",
        "CudaUnavailable",
        "CUDA requested but not available",
        "A cuda device was asked for but this build has no CUDA support (kiln built without its `cuda` cargo feature), there is no driver or GPU, or CUDA_VISIBLE_DEVICES hides every GPU.",
        "use the CPU (`Device::Cpu`; CLI: --device cpu), or enable kiln's `cuda` feature on a machine with an NVIDIA driver"
    ),
    entry!(
        "K0304",
        "NoSuchDevice",
        "a device index that does not exist",
        "cuda:N was asked for but only N or fewer devices are visible (CUDA_VISIBLE_DEVICES renumbers them from 0).",
        "pick an index below the device count (kiln devices lists them); for files use map_location"
    ),
    entry!(
        "K0305",
        "Parse",
        "a device, dtype or other name does not parse",
        "Devices are written cpu, cuda or cuda:N; dtypes f64, f32, f16, bf16, i64, i32, i16, i8, u8, bool.",
        "use one of the spellings the message lists"
    ),
    entry!(
        "K0306",
        "WrappedAttribute",
        "an attribute of the wrapped model was asked of its wrapper",
        "DataParallel and DistributedDataParallel wrap the model (PyTorch: 'DataParallel' object has no attribute 'linear'). Their own children are just `module`.",
        "reach the inner model with .module() (PyTorch: net.module.linear)"
    ),
    entry!(
        "K0401",
        "StateDictMismatch",
        "strict load_state_dict found missing, unexpected or mismatched keys",
        "The state dict does not fit the model (PyTorch: Error(s) in loading state_dict for Net: Missing key(s) … Unexpected key(s) … size mismatch for fc.weight …). Usual causes: the `module.` prefix of DataParallel, a changed architecture, or a new head while fine-tuning.",
        "strip/add the `module.` prefix, load with strict=false to see the report, or skip the mismatched head keys when fine-tuning"
    ),
    entry!(
        "K0402",
        "Pattern",
        "a name pattern is invalid or matches nothing",
        "Selectors (glob `layer4.*` or regex `re:^fc\\.`) are compiled up front and must select at least one parameter, so a typo cannot silently freeze or train nothing.",
        "check the pattern against `kiln inspect` output of the model's parameter names"
    ),
    entry!(
        "K0403",
        "UnknownArchitecture",
        "a whole-model file names an unregistered architecture",
        "A whole-model file stores its architecture by name and spec (PyTorch pickles the class instead: Can't get attribute 'Net' on module '__main__'). The name is neither built in nor registered.",
        "link the crate that defines the architecture (a #[derive(Module)] struct registers itself) or register a builder with kiln::nn::registry::register before load_model; or build the model and load_state_dict"
    ),
    entry!(
        "K0404",
        "NoSuchModule",
        "the model has no submodule of that name",
        "replace/freeze/get by module path (e.g. `fc`, `layer4.1`) named a submodule the model lacks.",
        "use one of the submodule names the message lists"
    ),
    entry!(
        "K0405",
        "BadSpec",
        "a model spec cannot be turned into a model",
        "A whole-model file's architecture spec is missing a field, has a wrong type, or a version kiln does not know.",
        "write the file again with this version of kiln, or fix the spec the message names"
    ),
    entry!(
        "K0406",
        "ReplaceType",
        "a typed submodule was given a replacement of another type",
        "replace_submodule on a #[derive(Module)] field declared as a concrete layer type (e.g. `fc: Linear`) needs a module of that same type; a field declared `Box<dyn Module>` takes any module.",
        "build a replacement of the field's type, or declare the field as Box<dyn Module>"
    ),
    entry!(
        "K0407",
        "NoForward",
        "a derived module has no forward of its own",
        "#[derive(Module)] makes Module::forward call the struct's inherent `fn forward(&self, x: &Tensor) -> kiln::Result<Tensor>`; the struct has none, so the call came back to Module::forward.",
        "add `impl MyModel { fn forward(&self, x: &Tensor) -> kiln::Result<Tensor> { ... } }`"
    ),
    entry!(
        "K0408",
        "FrozenNotLoaded",
        "a frozen parameter was not loaded from the pretrained file",
        "Fine-tuning froze a parameter whose value did not come from the pretrained file (the file lacks the key, or its shape differs and cannot be adapted), so it would stay frozen at its random initialisation for the whole run.",
        "freeze fewer parameters (leave out the ones named), give a file that has them, or pass --allow-frozen-random (FinetuneConfig::allow_frozen_random) if a frozen random layer is intended"
    ),
    entry!(
        "K0501",
        "Truncated",
        "the file ends too early",
        "The file is shorter than its own structure says (PyTorch: unexpected EOF, expected N more bytes. The file might be corrupted). A copy or a write was interrupted.",
        "copy the file again; kiln's own writes are atomic, so the previous version of a kiln file is still valid"
    ),
    entry!(
        "K0502",
        "Corrupt",
        "the file's structure is damaged",
        "The zip directory, a CRC, an offset or a header is invalid (PyTorch: PytorchStreamReader failed reading zip archive: failed finding central directory).",
        "copy the file again or restore it from a backup"
    ),
    entry!(
        "K0503",
        "NotAModelFile",
        "the file is not a model file",
        "The file is neither a PyTorch zip or legacy file nor safetensors nor a kiln checkpoint directory.",
        "pass a .pt/.pth/.bin/.safetensors file or a checkpoint directory"
    ),
    entry!(
        "K0504",
        "UnsafeGlobal",
        "a pickle asks for a global outside the allow-list",
        "kiln's unpickler, like torch.load(weights_only=True), only builds tensors, containers and scalars; any other global could run code and is refused (PyTorch: Weights only load failed … Unsupported global).",
        "load only files from sources you trust; re-save the weights as a plain state dict (or safetensors) with PyTorch"
    ),
    entry!(
        "K0505",
        "Pickle",
        "the pickle stream is malformed or exceeds a limit",
        "An opcode is unknown, the stack or memo is inconsistent, or a size/depth limit is exceeded.",
        "the file is damaged or not a weights file; re-save it with torch.save(state_dict)"
    ),
    entry!(
        "K0506",
        "CudaStorage",
        "a CUDA-tagged file loaded where CUDA is not available",
        "The storages were saved from a GPU (tag cuda:N) and CUDA cannot be used here (PyTorch: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False).",
        "load with map_location=cpu (kiln: LoadOptions::map_location(\"cpu\"), CLI --map-location cpu)"
    ),
    entry!(
        "K0507",
        "Schema",
        "the file does not hold what was asked of it",
        "The file is valid but its content has another layout (e.g. a checkpoint dict where a state dict was expected, a key missing).",
        "inspect the file with `kiln inspect FILE` and pick the right key"
    ),
    entry!(
        "K0508",
        "ExpansionLimit",
        "reading the file would build more than its read budget",
        "A pickle may reference one object (a string, bytes, a dict, a list) many times through its memo; kiln builds a copy per reference, so a small hostile file could ask for terabytes. Every read has a budget on the bytes of objects it builds: max(64 MiB, 16 × the file size), tensor data in the file's own records not counted. Real weights files stay far below it.",
        "if the file comes from a source you trust, raise the budget: LoadOptions::max_expanded_bytes(bytes) (CLI: --max-expanded-bytes N); otherwise do not load it"
    ),
    entry!(
        "K0509",
        "DangerousGlobal",
        "a pickle names a global that runs code",
        "The pickle names a function or module through which unpickling would run code or reach the system (os.system, subprocess, builtins.eval/exec/getattr/__import__, importlib, pickle/marshal, runpy, socket…): the way malicious model files attack torch.load(weights_only=False). kiln refuses it by name in every mode, weights-only and structural; it never calls anything a pickle names, so nothing ran.",
        "do not use the file; list what it would import with `kiln inspect --globals FILE`, and get the weights from a trusted source (a safetensors file or a plain state dict)"
    ),
    entry!(
        "K0601",
        "EmptyParameterList",
        "an optimizer with no trainable parameter",
        "(PyTorch: optimizer got an empty parameter list) Every parameter is frozen, or the selection of a group matched only frozen ones.",
        "unfreeze at least the head before building the optimizer"
    ),
    entry!(
        "K0602",
        "DuplicateParameter",
        "a parameter in two parameter groups",
        "(PyTorch: some parameters appear in more than one parameter group) Two group patterns select the same parameter.",
        "make the group patterns disjoint (the first matching group should own a parameter)"
    ),
    entry!(
        "K0603",
        "OptimizerState",
        "loaded optimizer or scheduler state does not fit",
        "The saved state has another number of groups or parameters, or a state tensor of another shape (PyTorch: loaded state dict contains a parameter group that doesn't match the size of optimizer's group).",
        "build the optimizer with the same parameters and groups as when the state was saved"
    ),
    entry!(
        "K0701",
        "NoCheckpoint",
        "no checkpoint where one was required",
        "A resume from the last checkpoint or from a path was asked for (`Resume::Last` / `Resume::Path`; CLI: --resume last or a path) but no complete checkpoint exists there.",
        "use `Resume::Auto` (CLI: --resume auto) to start fresh when none exists, or point to the run's directory"
    ),
    entry!(
        "K0702",
        "ResumeMismatch",
        "a resume with a different configuration",
        "Resuming with another model, optimizer or hyper-parameters would not continue the same run; kiln refuses and names the first difference.",
        "resume with the checkpoint's settings (shown in the message), or start a new run in another directory"
    ),
    entry!(
        "K0703",
        "NonFiniteLoss",
        "the loss became NaN or infinite",
        "A training step produced a NaN or infinite loss: usually a learning rate too high for the model (the weights diverged), an input with NaN/inf values, or a log of zero in a custom loss. kiln stops before applying that step, so the last checkpoint and metrics.jsonl stay usable.",
        "lower the learning rate (or clip gradients), check the inputs for NaN/inf, and resume from the last checkpoint; to keep training through such steps use TrainerBuilder::on_nonfinite_loss(NonFinitePolicy::Continue) (CLI: --on-nan continue)"
    ),
    entry!(
        "K0704",
        "NonFiniteGradNorm",
        "gradient clipping met a NaN or infinite gradient norm",
        "clip_grad_norm with error_if_nonfinite (PyTorch's clip_grad_norm_(..., error_if_nonfinite=True)) found that the total norm of the gradients is NaN or infinite: some gradient holds NaN/inf, usually because the loss or the weights diverged. Scaling by such a norm would turn every gradient into NaN, so nothing was changed.",
        "lower the learning rate or the clipping threshold, check the inputs for NaN/inf, and resume from the last checkpoint; to clip anyway pass error_if_nonfinite = false"
    ),
    entry!(
        "K0730",
        "RunLocked",
        "another live run holds the output directory",
        "Each run directory (kiln train --out, TrainerBuilder::checkpoint_dir) is held by one live run at a time through an exclusive lock on its .kiln-run.lock file, which holds the holder's pid. Two runs writing one directory would interleave metrics.jsonl and each other's checkpoints, and a later resume would fail. The operating system releases the lock when its process exits, even by SIGKILL, so a lock file left by a killed run is taken over silently.",
        "wait for the run named by the pid to finish (or stop it), or train into another --out"
    ),
    entry!(
        "K0741",
        "LoraNoMatch",
        "LoRA target patterns matched no Linear or Conv2d layer",
        "--lora-targets (LoraConfig::target_modules) names the layers that get low-rank adapters, as PEFT's target_modules: an exact module path (fc1, layer4.1.conv2), a suffix after a dot (conv2 matches layer4.1.conv2), a glob (layer*.conv*) or a regex (re:^fc[12]$), matched against the paths of the model's Linear and Conv2d layers. A pattern that selects none of them would leave the model without adapters (PEFT: Target modules {...} not found in the base model).",
        "use a name from the listed layers (kiln inspect --tree FILE prints them), e.g. --lora-targets fc1 fc2"
    ),
    entry!(
        "K0742",
        "LoraConfig",
        "a LoRA setting or target layer that cannot be used",
        "LoRA needs a rank r >= 1, a finite lora_alpha > 0 (the update is scaled by alpha / r) and a lora_dropout in [0, 1). Only Linear and Conv2d layers without groups, dilation or padding='same' can be adapted, and a layer is adapted once.",
        "pass --lora-rank 8 --lora-alpha 16 (PEFT's usual values), a dropout such as 0.05, and target plain Linear/Conv2d layers"
    ),
    entry!(
        "K0743",
        "LoraAdapter",
        "a LoRA adapter directory that does not fit the model",
        "An adapter is a directory in PEFT's layout: adapter_config.json (peft_type LORA, r, lora_alpha, target_modules) and adapter_model.safetensors with base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r] for every target. A missing file, another peft_type, a missing or unexpected key, or a shape that disagrees with the base weight is refused before anything is changed.",
        "pass the directory kiln finetune --lora-rank wrote (runs/NAME/adapter) and the base model it was trained from"
    ),
    entry!(
        "K0801",
        "BackendNotBuilt",
        "a distributed backend that is not built in",
        "kiln was started under mpirun (or asked for the mpi/nccl backend; CLI: --distributed) but built without that cargo feature.",
        "enable kiln's `mpi` (or `nccl`) cargo feature, or run without the launcher"
    ),
    entry!(
        "K0802",
        "Distributed",
        "ranks disagree or a collective failed",
        "The processes of a distributed run must hold the same model and configuration; a rank that differs, or a failed all-reduce/broadcast, stops the run.",
        "start every rank with the same command line and the same kiln binary"
    ),
];

/// The whole catalogue as Markdown (what `kiln explain --markdown` prints and docs/errors.md holds).
pub fn markdown() -> String {
    let mut s = String::from(
        "# kiln error codes\n\nGenerated by `kiln explain --markdown`; do not edit by hand.\n\n| code | name | what |\n| --- | --- | --- |\n",
    );
    for c in CATALOG {
        s.push_str(&format!(
            "| [{0}](#{1}) | {2} | {3} |\n",
            c.code,
            c.code.to_lowercase(),
            c.name,
            c.title
        ));
    }
    for c in CATALOG {
        s.push_str(&format!(
            "\n## {}\n\n**{}** — {}\n\n{}\n\n**Fix:** {}\n",
            c.code, c.name, c.title, c.explanation, c.hint
        ));
    }
    s
}
