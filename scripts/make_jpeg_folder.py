#!/usr/bin/env python3
"""Writes an ImageFolder of JPEGs for `kiln bench data` (and by hand: any image-folder test):
DIR/train/<class>/<i>.jpg, photo-like content (smooth gradients plus noise, so the JPEGs have
realistic sizes), PIL quality 90, ImageNet's typical 500x375 by default.

    python scripts/make_jpeg_folder.py DIR [--classes 2] [--per-class 200] [--size 500x375]
"""

import argparse
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--size", default="500x375")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for c in range(a.classes):
        d = os.path.join(a.dir, "train", f"class{c}")
        os.makedirs(d, exist_ok=True)
        for i in range(a.per_class):
            f = rng.uniform(0.005, 0.05, size=3)
            p = rng.uniform(0, 6.3, size=3)
            img = np.stack([127 + 100 * np.sin(f[k] * (xx + (k + 1) * yy) + p[k]) for k in range(3)], -1)
            img += rng.normal(0, 12, size=img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                os.path.join(d, f"{i:04d}.jpg"), quality=90)
    print(f"wrote {a.classes * a.per_class} JPEGs ({w}x{h}) under {a.dir}/train")


if __name__ == "__main__":
    main()
