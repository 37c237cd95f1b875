#!/usr/bin/env python3
"""Converts scikit-learn's digits data set into kiln's embedded binary `data/digits.bin`.

Source: `sklearn/datasets/data/digits.csv.gz` from the scikit-learn package on PyPI
(BSD-3-Clause), which is the test set of the UCI "Optical Recognition of Handwritten Digits"
data set: 1,797 images of 8x8 pixels with values 0..16, 10 classes.

Usage: python scripts/make_digits.py [path/to/digits.csv.gz] [out/digits.bin]
Without a path the file is taken from the installed scikit-learn. Only the standard library
is needed to convert; the output is byte-for-byte deterministic.

Format (all integers little-endian):
    magic     8 bytes  b"KDIGITS1"
    n         u32      number of images (1797)
    rows      u32      8
    cols      u32      8
    classes   u32      10
    crc32     u32      CRC-32 (zlib) of the payload below
    payload   n*rows*cols u8 pixels (row-major, image after image), then n u8 labels
"""
import csv
import gzip
import os
import struct
import sys
import zlib


def default_source():
    import sklearn.datasets  # only to locate the file

    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else default_source()
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.bin"
    )
    pixels = bytearray()
    labels = bytearray()
    with gzip.open(src, "rt") as f:
        for row in csv.reader(f):
            if not row:
                continue
            values = [int(float(v)) for v in row]
            if len(values) != 65:
                raise SystemExit(f"expected 65 columns, got {len(values)}")
            img, label = values[:64], values[64]
            if not all(0 <= v <= 16 for v in img) or not 0 <= label <= 9:
                raise SystemExit(f"value out of range in row {len(labels)}")
            pixels.extend(img)
            labels.append(label)
    n = len(labels)
    payload = bytes(pixels) + bytes(labels)
    header = b"KDIGITS1" + struct.pack("<5I", n, 8, 8, 10, zlib.crc32(payload) & 0xFFFFFFFF)
    with open(out, "wb") as f:
        f.write(header + payload)
    counts = [labels.count(c) for c in range(10)]
    print(f"wrote {out}: {n} images, per class {counts}, crc32 {zlib.crc32(payload):08x}")


if __name__ == "__main__":
    main()
