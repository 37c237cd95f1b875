"""Canonical JSON description of a loaded object, shared by gen_io_fixtures.py and
interop_check.py. kiln's tests produce the same description from a kiln Value
(tests/common/describe.rs), so the two can be compared exactly: nesting, container types,
scalars (floats by bit pattern) and every tensor's dtype, shape, stride, offset, flags,
storage sharing and element bytes (hex).
"""

import collections
import struct

import torch

DTYPES = {
    torch.float64: "f64",
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "bool",
    torch.uint16: "u16",
    torch.uint32: "u32",
    torch.uint64: "u64",
    torch.float8_e4m3fn: "f8_e4m3fn",
    torch.float8_e5m2: "f8_e5m2",
    torch.float8_e4m3fnuz: "f8_e4m3fnuz",
    torch.float8_e5m2fnuz: "f8_e5m2fnuz",
    torch.complex64: "c64",
    torch.complex128: "c128",
}


def tensor_bytes(t):
    t = t.detach().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


class Describer:
    def __init__(self, hex_limit=None):
        self.storages = {}
        self.hex_limit = hex_limit

    def tensor(self, t):
        s = t.untyped_storage()
        key = s.data_ptr() if s.nbytes() > 0 else ("empty", id(s))
        if key not in self.storages:
            self.storages[key] = len(self.storages)
        data = tensor_bytes(t)
        d = {
            "dtype": DTYPES[t.dtype],
            "shape": list(t.shape),
            "stride": list(t.stride()),
            "offset": t.storage_offset(),
            "requires_grad": bool(t.requires_grad),
            "param": isinstance(t, torch.nn.Parameter),
            "storage": self.storages[key],
            "storage_bytes": s.nbytes(),
        }
        if self.hex_limit is not None and len(data) > self.hex_limit:
            import hashlib

            d["sha256"] = hashlib.sha256(data).hexdigest()
        else:
            d["hex"] = data.hex()
        return {"tensor": d}

    def __call__(self, x):
        if x is None:
            return {"none": None}
        if isinstance(x, bool):
            return {"bool": x}
        if isinstance(x, int):
            return {"int": x}
        if isinstance(x, float):
            return {"float": "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]}
        if isinstance(x, str):
            return {"str": x}
        if isinstance(x, (bytes, bytearray)):
            return {"bytes": bytes(x).hex()}
        if isinstance(x, torch.Tensor):
            return self.tensor(x)
        if isinstance(x, torch.dtype):
            return {"dtype_obj": DTYPES[x]}
        if isinstance(x, torch.device):
            return {"device": str(x)}
        if isinstance(x, (tuple, torch.Size)):
            return {"tuple": [self(v) for v in x]}
        if isinstance(x, list):
            return {"list": [self(v) for v in x]}
        if isinstance(x, (set, frozenset)):
            return {"list": [self(v) for v in sorted(x)]}
        if isinstance(x, dict):
            kind = "OrderedDict" if isinstance(x, collections.OrderedDict) else "dict"
            d = {kind: [[self(k), self(v)] for k, v in x.items()]}
            meta = getattr(x, "_metadata", None)
            if meta is not None:
                d["metadata"] = self(meta)
            return d
        raise TypeError(f"cannot describe {type(x)}")


def describe(x, hex_limit=None):
    return Describer(hex_limit)(x)
