#!/usr/bin/env python3
"""Writes PyTorch's pre-0.4 tar checkpoints to tests/fixtures/io/tar/, plus manifest.json:
for each file, the canonical description (scripts/io_describe.py) of what the real
`torch.load(path, weights_only=False)` returns, which kiln must reproduce bit for bit.

No PyTorch since 0.4 writes this format, so the files are written here exactly as torch
0.1-0.3's `_save` did (torch/serialization.py of v0.3.1): a PAX-format tar with the members
`sys_info`, `pickle`, `tensors` and `storages`, each a stream of protocol-2 pickles and raw
records. The reader side is today's `torch.serialization._legacy_load.legacy_load`, which
every fixture is loaded back with (and must load with).

- `sys_info`: pickle of {protocol_version: 1001, little_endian, type_sizes}.
- `pickle`: the object; tensors and storages as persistent ids `str(key)`, nn.Module
  classes as `(cls, source_file, source)` (here `(cls, None, None)`, as 0.3 wrote when it
  could not get the source).
- `tensors`: pickled count, then per tensor the pickle `(key, storage_key, tensor_type)`
  and raw `<i ndim`, 4 skipped bytes, `<ndim q` sizes, `<ndim q` strides, `<q offset`.
- `storages`: pickled count, then per storage the pickle `(key, location, storage_type)` and
  raw `<q numel` + the element bytes; then a pickled list of storage views
  `(key, root_key, offset, numel)`.

Run with the project's venv:  /work/main/.venv/bin/python scripts/gen_tar_fixtures.py
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import tarfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from io_describe import describe  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io", "tar")

STORAGE_CLASS = {
    torch.float64: torch.DoubleStorage,
    torch.float32: torch.FloatStorage,
    torch.float16: torch.HalfStorage,
    torch.bfloat16: torch.BFloat16Storage,
    torch.int64: torch.LongStorage,
    torch.int32: torch.IntStorage,
    torch.int16: torch.ShortStorage,
    torch.int8: torch.CharStorage,
    torch.uint8: torch.ByteStorage,
    torch.bool: torch.BoolStorage,
}
TENSOR_CLASS = {
    torch.float64: torch.DoubleTensor,
    torch.float32: torch.FloatTensor,
    torch.float16: torch.HalfTensor,
    torch.bfloat16: torch.BFloat16Tensor,
    torch.int64: torch.LongTensor,
    torch.int32: torch.IntTensor,
    torch.int16: torch.ShortTensor,
    torch.int8: torch.CharTensor,
    torch.uint8: torch.ByteTensor,
    torch.bool: torch.BoolTensor,
}


class Root:
    """A storage of the `storages` member: its element bytes and dtype."""

    def __init__(self, key, dtype, data, location="cpu"):
        self.key, self.dtype, self.data, self.location = key, dtype, data, location


class Saver:
    """torch 0.3's `_save`, with keys from a counter instead of `_cdata` addresses."""

    def __init__(self):
        self.next_key = 94_000_000_000_000
        self.roots = collections.OrderedDict()  # key -> Root
        self.views = []  # (key, root_key, offset, numel)
        self.tensors = collections.OrderedDict()  # key -> (storage_key, dtype, size, stride, offset)
        self.by_obj = {}  # id(tensor) -> key (objects kept alive in self.keep)
        self.keep = []
        self.classes = set()
        self.storage_of = {}  # data_ptr of an untyped storage -> root key

    def key(self):
        self.next_key += 16
        return self.next_key

    def root_for(self, t):
        s = t.untyped_storage()
        ptr = (s.data_ptr(), s.nbytes())
        if ptr not in self.storage_of:
            k = self.key()
            self.storage_of[ptr] = k
            self.roots[k] = Root(k, t.dtype, bytes(s.cpu()) if s.nbytes() else b"")
        return self.storage_of[ptr]

    def add_tensor(self, t, storage_key=None, offset=None):
        """Registers a plain tensor; `storage_key` overrides its storage (a view)."""
        if id(t) in self.by_obj:
            return self.by_obj[id(t)]
        k = self.key()
        sk = storage_key if storage_key is not None else self.root_for(t)
        off = t.storage_offset() if offset is None else offset
        self.tensors[k] = (sk, t.dtype, list(t.shape), list(t.stride()), off)
        self.by_obj[id(t)] = k
        self.keep.append(t)
        return k

    def add_view(self, root_tensor, elem_offset, numel):
        """A storage view of `root_tensor`'s storage: elements [offset, offset + numel)."""
        rk = self.root_for(root_tensor)
        k = self.key()
        self.views.append((k, rk, elem_offset, numel))
        return k

    def persistent_id(self, obj):
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            # Once per class (0.3's serialized_container_types): the class inside the
            # returned tuple, and later uses, pickle as plain globals.
            if obj in self.classes:
                return None
            self.classes.add(obj)
            # torch 0.3 saved the class's source file and source text when it could get
            # them, else None (and the loader then skips its source check): None here keeps
            # the fixture small.
            return (obj, None, None)
        if type(obj) is torch.Tensor:
            return str(self.add_tensor(obj))
        return None

    def member_pickle(self, obj):
        f = io.BytesIO()
        p = pickle.Pickler(f, protocol=2)
        p.persistent_id = self.persistent_id
        p.dump(obj)
        return f.getvalue()

    def member_tensors(self):
        f = io.BytesIO()
        pickle.dump(len(self.tensors), f, protocol=2)
        for k, (sk, dtype, size, stride, off) in self.tensors.items():
            pickle.dump((k, sk, TENSOR_CLASS[dtype]), f, protocol=2)
            ndim = len(size)
            f.write(struct.pack("<i", ndim) + b"\0\0\0\0")
            f.write(struct.pack(f"<{ndim}q", *size))
            f.write(struct.pack(f"<{ndim}q", *stride))
            f.write(struct.pack("<q", off))
        return f.getvalue()

    def member_storages(self):
        f = io.BytesIO()
        pickle.dump(len(self.roots), f, protocol=2)
        for k, r in self.roots.items():
            pickle.dump((k, r.location, STORAGE_CLASS[r.dtype]), f, protocol=2)
            es = torch.tensor([], dtype=r.dtype).element_size()
            f.write(struct.pack("<q", len(r.data) // es))
            f.write(r.data)
        pickle.dump(self.views, f, protocol=2)
        return f.getvalue()

    def write(self, obj, path, fmt=tarfile.PAX_FORMAT, pax=None):
        sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
        members = [("sys_info", pickle.dumps(sys_info, protocol=2)), ("pickle", self.member_pickle(obj))]
        members += [("tensors", self.member_tensors()), ("storages", self.member_storages())]
        with tarfile.open(path, "w", format=fmt, pax_headers=pax) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1_500_000_000
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))


def state_dict():
    g = torch.Generator().manual_seed(3)
    d = collections.OrderedDict()
    d["conv.weight"] = torch.randn(2, 1, 3, 3, generator=g)
    d["conv.bias"] = torch.randn(2, generator=g)
    d["fc.weight"] = torch.randn(3, 4, generator=g)
    d["fc.bias"] = torch.zeros(3)
    return d


def views(s):
    base = torch.arange(24, dtype=torch.float32)
    m = base.view(4, 6)
    d = collections.OrderedDict()
    d["base"] = base
    d["rows"] = m[1:3]  # offset 6 into the same storage
    d["transposed"] = m.t()  # strides (1, 6)
    d["strided"] = m[:, ::2]  # strides (6, 2)
    d["scalar"] = base[5]  # 0-dim at offset 5
    d["other"] = torch.tensor([[1.5, 2.5], [3.5, 4.5]], dtype=torch.float64).t()
    for v in d.values():
        s.add_tensor(v)
    return d


def dtypes():
    d = collections.OrderedDict()
    d["f64"] = torch.tensor([0.1, -1e300, 5e-324, float("nan")], dtype=torch.float64)
    d["f32"] = torch.tensor([0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e-40])
    d["f16"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8], dtype=torch.float16)
    d["bf16"] = torch.tensor([1.0, -3.0, 1e38], dtype=torch.bfloat16)
    d["i64"] = torch.tensor([-(2**63), 2**63 - 1, 0], dtype=torch.int64)
    d["i32"] = torch.tensor([-(2**31), 7], dtype=torch.int32)
    d["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    d["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    d["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    d["bool"] = torch.tensor([True, False, True])
    d["empty"] = torch.zeros(0, 3)
    return d


def storage_view(s):
    """Tensors on storage views: views of one root storage at element offsets."""
    root = torch.arange(10, dtype=torch.float32) * 0.5
    s.root_for(root)
    v1 = s.add_view(root, 2, 5)  # elements 2..7
    v2 = s.add_view(root, 6, 4)  # elements 6..10
    a, b, c = torch.empty(0), torch.empty(0), torch.empty(0)
    ka = s.key()
    s.tensors[ka] = (v1, torch.float32, [5], [1], 0)
    kb = s.key()
    s.tensors[kb] = (v1, torch.float32, [2, 2], [1, 2], 1)
    kc = s.key()
    s.tensors[kc] = (v2, torch.float32, [3], [1], 1)
    kr = s.key()
    s.tensors[kr] = (s.root_for(root), torch.float32, [10], [1], 0)
    for t, k in ((a, ka), (b, kb), (c, kc), (root, kr)):
        s.by_obj[id(t)] = k
        s.keep.append(t)
    return collections.OrderedDict([("view", a), ("view_strided", b), ("second_view", c), ("root", root)])


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    made = []

    def add(name, build, **kw):
        s = Saver()
        obj = build(s)
        s.write(obj, os.path.join(OUT, name), **kw)
        made.append(name)

    add("state_dict.tar", lambda s: state_dict())
    add("state_dict_gnu.tar", lambda s: state_dict(), fmt=tarfile.GNU_FORMAT)
    add("state_dict_pax.tar", lambda s: state_dict(), pax={"comment": "a global PAX header"})
    add("views.tar", views)
    add("dtypes.tar", lambda s: {"dtypes": dtypes(), "epoch": 7, "name": "tar", "t": (1, 2.5, None)})
    add("storage_view.tar", storage_view)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    add("sequential.tar", lambda s: net)

    manifest = {"torch_version": torch.__version__, "files": {}}
    for name in made:
        loaded = torch.load(os.path.join(OUT, name), map_location="cpu", weights_only=False)
        if isinstance(loaded, torch.nn.Module):
            x = torch.linspace(-1, 1, 8).reshape(2, 4)
            manifest["files"][name] = {
                "module_state_dict": describe(loaded.state_dict()),
                "input": describe(x),
                "output": describe(loaded(x).detach()),
            }
        else:
            manifest["files"][name] = describe(loaded)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, sort_keys=True)
    print(f"wrote {len(made)} fixtures to {os.path.normpath(OUT)} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
