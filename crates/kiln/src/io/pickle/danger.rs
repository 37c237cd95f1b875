//! Globals refused by name in every mode: modules and functions through which a pickle
//! runs code, reaches the file system, the network or the interpreter, or chains calls
//! (`getattr` gadgets). kiln never calls anything a pickle names; this list makes the
//! refusal explicit (`K0509`, naming the global) and marks them in `kiln inspect --globals`.
//!
//! A module entry covers its submodules (`os` covers `os.path`).

/// Modules whose every attribute is dangerous, with the reason shown to the user.
const MODULES: &[(&str, &str)] = &[
    ("os", "runs commands and touches the file system"),
    ("posix", "runs commands and touches the file system"),
    ("nt", "runs commands and touches the file system"),
    ("posixpath", "touches the file system"),
    ("ntpath", "touches the file system"),
    ("subprocess", "runs commands"),
    ("_posixsubprocess", "runs commands"),
    ("pty", "runs commands"),
    ("commands", "runs commands"),
    ("popen2", "runs commands"),
    ("platform", "runs commands"),
    ("multiprocessing", "starts processes"),
    ("threading", "starts threads"),
    ("_thread", "starts threads"),
    ("signal", "controls the process"),
    ("sys", "controls the interpreter"),
    ("importlib", "imports code"),
    ("imp", "imports code"),
    ("pkgutil", "imports code"),
    ("runpy", "runs code"),
    ("code", "runs code"),
    ("codeop", "compiles code"),
    ("types", "makes functions and code objects"),
    ("inspect", "reaches interpreter internals"),
    ("ctypes", "calls native code"),
    ("_ctypes", "calls native code"),
    ("cffi", "calls native code"),
    ("pickle", "unpickles more data without checks"),
    ("_pickle", "unpickles more data without checks"),
    ("cPickle", "unpickles more data without checks"),
    ("dill", "unpickles more data without checks"),
    ("cloudpickle", "unpickles more data without checks"),
    ("joblib", "unpickles more data without checks"),
    ("marshal", "loads code objects"),
    ("shelve", "unpickles more data without checks"),
    ("shutil", "touches the file system"),
    ("tempfile", "touches the file system"),
    ("glob", "touches the file system"),
    ("io", "opens files"),
    ("_io", "opens files"),
    ("socket", "opens network connections"),
    ("ssl", "opens network connections"),
    ("http", "opens network connections"),
    ("urllib", "opens network connections"),
    ("urllib2", "opens network connections"),
    ("requests", "opens network connections"),
    ("httplib", "opens network connections"),
    ("ftplib", "opens network connections"),
    ("smtplib", "opens network connections"),
    ("telnetlib", "opens network connections"),
    ("xmlrpc", "opens network connections"),
    ("asyncio", "runs code and opens connections"),
    ("webbrowser", "opens programs"),
    ("bdb", "runs code"),
    ("pdb", "runs code"),
    ("timeit", "runs code"),
    ("trace", "runs code"),
    ("profile", "runs code"),
    ("cProfile", "runs code"),
    ("doctest", "runs code"),
    ("unittest", "runs code"),
    ("distutils", "runs commands"),
    ("setuptools", "runs commands"),
    ("pip", "installs and runs code"),
    ("venv", "runs commands"),
    ("ensurepip", "installs and runs code"),
    ("IPython", "runs code"),
    (
        "operator",
        "calls attributes by name (attrgetter/methodcaller gadgets)",
    ),
    ("functools", "chains calls (partial/reduce gadgets)"),
    ("itertools", "chains calls"),
    ("copyreg", "registers constructors"),
    ("gc", "reaches interpreter internals"),
    ("weakref", "reaches interpreter internals"),
    ("torch.hub", "downloads and runs code"),
    ("torch.jit", "loads and runs TorchScript"),
    ("torch.package", "loads and runs packaged code"),
    (
        "torch.serialization",
        "loads more data (weights_only=False)",
    ),
    ("torch.ops", "calls native operators"),
    ("torch._C", "calls native code"),
    ("torch._dynamo", "compiles and runs code"),
    ("torch.utils.cpp_extension", "compiles native code"),
    ("numpy.testing", "runs code (runstring)"),
    ("numpy.f2py", "compiles native code"),
    ("numpy.distutils", "runs commands"),
    ("numpy.ctypeslib", "calls native code"),
];

/// Native functions inside a dangerous module that are plain element-wise math on the
/// tensor they are given (no file, process, interpreter or memory access): a pickle may
/// name them as references — `nn.TransformerEncoderLayer(activation="gelu")` pickles its
/// `activation` as `torch._C._nn.gelu` (`F.gelu`). kiln still never calls them.
const INERT_NATIVE: &[(&str, &str)] = &[("torch._C._nn", "gelu")];

/// Single functions that are dangerous in modules that are otherwise harmless.
const FUNCTIONS: &[(&str, &str, &str)] = &[
    ("torch", "load", "loads more data (weights_only=False)"),
    ("torch", "save", "writes files"),
    ("torch", "from_file", "reads files"),
    (
        "torch.storage",
        "_load_from_bytes",
        "loads more data (weights_only=False)",
    ),
    (
        "torch._utils",
        "_rebuild_device_tensor_from_numpy",
        "reaches numpy",
    ),
    ("numpy", "load", "unpickles more data (allow_pickle)"),
    ("numpy", "loadtxt", "reads files"),
    ("numpy", "fromfile", "reads files"),
    ("numpy", "save", "writes files"),
    ("numpy", "memmap", "maps files"),
    ("_codecs", "open", "opens files"),
    ("codecs", "open", "opens files"),
];

/// `builtins` names that are plain data types: calling them runs no code of the file's
/// choosing. Every other builtin (`eval`, `exec`, `compile`, `getattr`, `__import__`,
/// `open`, `print`, …) is dangerous.
const INERT_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "bytearray",
    "bytes",
    "dict",
    "list",
    "tuple",
    "int",
    "float",
    "complex",
    "str",
    "bool",
    "slice",
    "range",
    "object",
    "NoneType",
    "Ellipsis",
    "NotImplemented",
];

/// Why `module.name` is dangerous, or `None` when it is not on the list.
pub fn why_dangerous(module: &str, name: &str) -> Option<&'static str> {
    let module = match module {
        "__builtin__" => "builtins",
        m => m,
    };
    if module == "builtins" {
        return if INERT_BUILTINS.contains(&name) {
            None
        } else {
            Some(match name {
                "eval" | "exec" | "compile" | "execfile" => "runs code",
                "getattr" | "setattr" | "delattr" | "vars" | "globals" | "locals" => {
                    "reaches attributes by name (a getattr gadget)"
                }
                "__import__" | "reload" => "imports code",
                "open" | "file" | "input" | "raw_input" => "opens files",
                _ => "a builtin function that is not a plain data type",
            })
        };
    }
    if INERT_NATIVE.contains(&(module, name)) {
        return None;
    }
    // Dots in the name also reach further (`name = "path.join"`).
    if let Some(r) = MODULES.iter().find_map(|(m, why)| {
        let hit = module == *m
            || module
                .strip_prefix(m)
                .is_some_and(|rest| rest.starts_with('.'));
        hit.then_some(*why)
    }) {
        return Some(r);
    }
    FUNCTIONS
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|(_, _, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::why_dangerous;

    #[test]
    fn names() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("os.path", "join"),
            ("subprocess", "Popen"),
            ("builtins", "eval"),
            ("__builtin__", "exec"),
            ("builtins", "getattr"),
            ("builtins", "__import__"),
            ("builtins", "open"),
            ("builtins", "compile"),
            ("importlib", "import_module"),
            ("importlib.machinery", "SourceFileLoader"),
            ("pickle", "loads"),
            ("marshal", "loads"),
            ("runpy", "run_path"),
            ("sys", "modules"),
            ("shutil", "rmtree"),
            ("socket", "socket"),
            ("webbrowser", "open"),
            ("code", "interact"),
            ("pty", "spawn"),
            ("ctypes", "CDLL"),
            ("functools", "partial"),
            ("operator", "attrgetter"),
            ("torch.storage", "_load_from_bytes"),
            ("torch", "load"),
            ("torch._C", "_nn"),
            ("torch._C._nn", "gelu.__globals__"),
            ("torch._C._nn", "relu"),
            ("torch._C._jit", "import_ir_module"),
        ] {
            assert!(why_dangerous(m, n).is_some(), "{m}.{n}");
        }
        for (m, n) in [
            ("torch._utils", "_rebuild_tensor_v2"),
            ("collections", "OrderedDict"),
            ("builtins", "set"),
            ("torch.nn.modules.linear", "Linear"),
            ("__main__", "MyNet"),
            ("torchvision.models.resnet", "ResNet"),
            ("ossify", "x"),
            ("torch", "FloatStorage"),
            ("torch._C._nn", "gelu"),
        ] {
            assert!(why_dangerous(m, n).is_none(), "{m}.{n}");
        }
    }
}
