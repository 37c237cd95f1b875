#!/usr/bin/env python3
"""Hostile .pt files made with real pickle/torch, the shapes of `tests/hostile_files.rs`
(issue 17), for a live check of kiln against what PyTorch itself writes and reads:

  amp_str.pt, amp_bytes.pt, amp_dict.pt   one 1 MiB str / bytes / dict referenced 2^21 times
                                          through the memo (t = (t, t), 21 levels)
  amp_list.pt                             a flat list of 4 Mi references to one 1 MiB str
  dup_data_pkl.pt, dup_storage.pt         two records with one name (torch reads the last)
  name_mismatch.pt                        a local header naming another file
  crc_flip.pt                             one flipped byte in a storage record

    python scripts/gen_hostile_fixtures.py --out /tmp/hostile [--kiln target/debug/kiln]

With --kiln, runs `kiln inspect --verify` on each file (under a 2 GiB address-space limit)
and prints kiln's verdict beside torch.load's. Not run in CI (needs torch); the Rust tests
build the same shapes by hand.
"""

import argparse
import io
import os
import resource
import subprocess
import sys
import time
import zipfile

import torch

MIB = 1 << 20


def doubling(base, levels=21):
    t = base
    for _ in range(levels):
        t = (t, t)
    return t


def save(obj, path):
    torch.save(obj, path)
    return path


def rewrite(path, records):
    """A zip of (name, bytes) records, STORED, duplicates allowed (zipfile warns)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in records:
                z.writestr(name, data)
    return path


def records_of(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def make(out):
    os.makedirs(out, exist_ok=True)
    s = "a" * MIB
    files = {
        "amp_str.pt": save(doubling(s), os.path.join(out, "amp_str.pt")),
        "amp_bytes.pt": save(doubling(b"\xab" * MIB), os.path.join(out, "amp_bytes.pt")),
        "amp_dict.pt": save(doubling({"k": s}), os.path.join(out, "amp_dict.pt")),
        "amp_list.pt": save([s] * (4 << 20), os.path.join(out, "amp_list.pt")),
    }
    good = save({"w": torch.arange(16, dtype=torch.float32)}, os.path.join(out, "good.pt"))
    recs = records_of(good)
    pkl = next(n for n, _ in recs if n.endswith("/data.pkl"))
    st = next(n for n, _ in recs if n.endswith("/data/0"))
    other_pkl = io.BytesIO()
    torch.save({"w": 7}, other_pkl)
    other = dict(records_of(other_pkl))
    other_pkl_bytes = next(d for n, d in other.items() if n.endswith("/data.pkl"))
    files["dup_data_pkl.pt"] = rewrite(
        os.path.join(out, "dup_data_pkl.pt"), recs + [(pkl, other_pkl_bytes)]
    )
    files["dup_storage.pt"] = rewrite(
        os.path.join(out, "dup_storage.pt"),
        recs + [(st, torch.full((16,), 9.0).numpy().tobytes())],
    )
    # Local header name differs from the central directory: patch the first local name.
    b = bytearray(open(good, "rb").read())
    i = b.index(st.encode())  # first occurrence: the local header
    b[i + len(st) - 1 : i + len(st)] = b"9"
    p = os.path.join(out, "name_mismatch.pt")
    open(p, "wb").write(b)
    files["name_mismatch.pt"] = p
    # One flipped byte in the storage record's data.
    b = bytearray(open(good, "rb").read())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo(st)
    hdr = b[info.header_offset : info.header_offset + 30]
    extra_len = int.from_bytes(hdr[28:30], "little")
    start = info.header_offset + 30 + len(st.encode()) + extra_len
    b[start + 5] ^= 0x40
    p = os.path.join(out, "crc_flip.pt")
    open(p, "wb").write(b)
    files["crc_flip.pt"] = p
    return files


def limit_as():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def check(files, kiln):
    for name, path in files.items():
        t = time.perf_counter()
        r = subprocess.run(
            [kiln, "inspect", "--verify", path],
            capture_output=True,
            text=True,
            preexec_fn=limit_as,
        )
        dt = time.perf_counter() - t
        first = (r.stderr.strip().splitlines() or ["ok"])[0][:140]
        verdict = "ok" if r.returncode == 0 else first
        t = time.perf_counter()
        try:
            torch.load(path)
            tv = "ok"
        except Exception as e:  # noqa: BLE001 - reporting what torch says
            tv = f"{type(e).__name__}: {str(e)[:80]}"
        tt = time.perf_counter() - t
        print(f"{name:18} {os.path.getsize(path):>9} B  kiln {dt:6.3f} s {verdict}")
        print(f"{'':18} {'':>9}    torch {tt:5.3f} s {tv}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--kiln", help="path of the kiln binary: run the live check")
    a = ap.parse_args()
    files = make(a.out)
    print(f"torch {torch.__version__}: wrote {len(files)} files to {a.out}", file=sys.stderr)
    if a.kiln:
        check(files, a.kiln)


if __name__ == "__main__":
    main()
