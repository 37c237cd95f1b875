#!/usr/bin/env python3
"""Writes tests/fixtures/data/: small data sources made with the real tools (PIL-written
PNG/JPEG image folders, CSV tables, MNIST IDX files, CIFAR python and binary batches, a
torch.save tensors file) and torchvision's outputs for the transforms kiln mirrors.

Run with the project's venv: `/work/main/.venv/bin/python scripts/gen_transform_fixtures.py`.
Deterministic: numpy's generator is seeded; versions are recorded in versions.json.
"""
import gzip, json, os, pickle, shutil, struct, sys, tempfile

import numpy as np
import PIL
from PIL import Image
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")
rng = np.random.default_rng(1234)


def wipe(p):
    if os.path.isdir(p):
        shutil.rmtree(p)
    os.makedirs(p)


def f32(name, t):
    """Raw little-endian f32 (C order) + shape in the manifest."""
    a = t.detach().contiguous().numpy().astype("<f4")
    with open(os.path.join(OUT, "transforms", name + ".f32"), "wb") as f:
        f.write(a.tobytes())
    return {"file": name + ".f32", "shape": list(a.shape)}


def smooth_rgb(h, w):
    y, x = np.mgrid[0:h, 0:w]
    r = 127 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255.0 * x / max(w - 1, 1)
    b = 255.0 * y / max(h - 1, 1)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def transforms_fixtures():
    d = os.path.join(OUT, "transforms")
    wipe(d)
    Image.fromarray(smooth_rgb(37, 53)).save(os.path.join(d, "src.png"))
    Image.fromarray(smooth_rgb(37, 53)).save(os.path.join(d, "src.jpg"), quality=90)
    pil = Image.open(os.path.join(d, "src.png")).convert("RGB")
    x = F.to_tensor(pil)  # [3, 37, 53] in [0, 1]
    jpg = F.to_tensor(Image.open(os.path.join(d, "src.jpg")).convert("RGB"))
    gray_pil = F.to_tensor(Image.open(os.path.join(d, "src.png")).convert("L"))
    m = {
        "to_tensor_png": f32("to_tensor_png", x),
        "to_tensor_jpg": f32("to_tensor_jpg", jpg),
        "pil_gray_png": f32("pil_gray_png", gray_pil),
        "resize_20": f32("resize_20", T.Resize(20)(x)),
        "resize_30x17": f32("resize_30x17", T.Resize((30, 17))(x)),
        "resize_80": f32("resize_80", T.Resize(80)(x)),
        "center_crop_24": f32("center_crop_24", T.CenterCrop(24)(x)),
        "center_crop_20x50": f32("center_crop_20x50", T.CenterCrop((20, 50))(x)),
        "center_crop_41": f32("center_crop_41", T.CenterCrop(41)(x)),
        "hflip": f32("hflip", T.RandomHorizontalFlip(p=1.0)(x)),
        "normalize": f32("normalize", T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(x)),
        "grayscale_1": f32("grayscale_1", T.Grayscale(1)(x)),
        "grayscale_3": f32("grayscale_3", T.Grayscale(3)(x)),
        "brightness_1.3": f32("brightness_1.3", F.adjust_brightness(x, 1.3)),
        "contrast_0.7": f32("contrast_0.7", F.adjust_contrast(x, 0.7)),
        "saturation_1.5": f32("saturation_1.5", F.adjust_saturation(x, 1.5)),
        "hue_0.2": f32("hue_0.2", F.adjust_hue(x, 0.2)),
        "imagenet_eval_32": f32(
            "imagenet_eval_32",
            T.Compose([T.Resize(36), T.CenterCrop(32), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(x),
        ),
    }
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1, sort_keys=True)


def image_folder():
    root = os.path.join(OUT, "imagefolder")
    wipe(root)
    plan = {"train": {"cat": 3, "dog": 2, "bird": 2}, "val": {"cat": 1, "dog": 1, "bird": 1}}
    for split, classes in plan.items():
        for c, n in classes.items():
            os.makedirs(os.path.join(root, split, c))
            for k in range(n):
                h, w = 10 + k, 12 + 2 * k
                img = Image.fromarray(smooth_rgb(h, w))
                ext = ["png", "jpg", "bmp"][k % 3]
                img.save(os.path.join(root, split, c, f"img{k}.{ext}"))
            # not an image: ignored by the extension filter
            with open(os.path.join(root, split, c, "notes.txt"), "w") as f:
                f.write("not an image\n")
    ds = torchvision.datasets.ImageFolder(os.path.join(root, "train"))
    val = torchvision.datasets.ImageFolder(os.path.join(root, "val"))
    first_png = [i for i, (p, _) in enumerate(ds.samples) if p.endswith(".png")][0]
    x = F.to_tensor(ds.loader(ds.samples[first_png][0]))
    expect = {
        "classes": ds.classes,
        "class_to_idx": ds.class_to_idx,
        "train": [[os.path.relpath(p, root), l] for p, l in ds.samples],
        "val": [[os.path.relpath(p, root), l] for p, l in val.samples],
        "png_index": first_png,
        "png_shape": list(x.shape),
        "png_sum": float(x.double().sum()),
    }
    with open(os.path.join(OUT, "imagefolder.json"), "w") as f:
        json.dump(expect, f, indent=1)


def csv_tables():
    with open(os.path.join(OUT, "table.csv"), "w") as f:
        f.write("sepal,petal,target,width\n")
        names = ["versicolor", "setosa", "virginica"]
        for i in range(12):
            f.write(f"{i * 0.5:.2f},{(i % 4) * 1.25:.2f},{names[i % 3]},{i - 3}\n")
    with open(os.path.join(OUT, "regression.csv"), "w") as f:
        f.write("x1,x2,y\n")
        for i in range(10):
            f.write(f"{i},{i * i},{0.5 * i + 0.25:.3f}\n")


def idx_bytes(arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def mnist():
    d = os.path.join(OUT, "mnist")
    wipe(d)
    tr_x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    tr_y = (np.arange(20) * 7 % 10).astype(np.uint8)
    te_x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    te_y = (np.arange(6) % 10).astype(np.uint8)
    # train gzipped, test raw: both spellings are read.
    with gzip.GzipFile(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb", mtime=0) as f:
        f.write(idx_bytes(tr_x))
    with gzip.GzipFile(os.path.join(d, "train-labels-idx1-ubyte.gz"), "wb", mtime=0) as f:
        f.write(idx_bytes(tr_y))
    with open(os.path.join(d, "t10k-images-idx3-ubyte"), "wb") as f:
        f.write(idx_bytes(te_x))
    with open(os.path.join(d, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_bytes(te_y))
    # torchvision's own reader on the same bytes (it wants MNIST/raw with unzipped names).
    with tempfile.TemporaryDirectory() as t:
        raw = os.path.join(t, "MNIST", "raw")
        os.makedirs(raw)
        for name, a in [("train-images-idx3-ubyte", tr_x), ("train-labels-idx1-ubyte", tr_y),
                        ("t10k-images-idx3-ubyte", te_x), ("t10k-labels-idx1-ubyte", te_y)]:
            with open(os.path.join(raw, name), "wb") as f:
                f.write(idx_bytes(a))
        tv = torchvision.datasets.MNIST(t, train=True, download=False, transform=T.ToTensor())
        x0, y0 = tv[3]
        expect = {"train_labels": [int(v) for v in tv.targets], "classes": tv.classes,
                  "sample3_sum": float(x0.double().sum()), "sample3_label": int(y0),
                  "test_labels": [int(v) for v in te_y]}
    with open(os.path.join(OUT, "mnist.json"), "w") as f:
        json.dump(expect, f, indent=1)


def cifar():
    names10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    py = os.path.join(OUT, "cifar-10-batches-py")
    bn = os.path.join(OUT, "cifar-10-batches-bin")
    wipe(py)
    wipe(bn)
    expect = {"train_labels": [], "test_labels": [], "train_sums": [], "test_sums": []}
    for b in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 3)]
        key = "test" if b == "test_batch" else "train"
        expect[key + "_labels"] += labels
        expect[key + "_sums"] += [int(r.astype(np.int64).sum()) for r in data]
        with open(os.path.join(py, b), "wb") as f:
            # protocol 2 as the published batches (made by Python 2) use
            pickle.dump({"batch_label": b, "labels": labels, "data": data,
                         "filenames": [f"{b}_{i}.png" for i in range(3)]}, f, protocol=2)
        with open(os.path.join(bn, b + ".bin"), "wb") as f:
            for l, row in zip(labels, data):
                f.write(bytes([l]) + row.tobytes())
    with open(os.path.join(py, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": names10, "num_cases_per_batch": 3, "num_vis": 3072}, f, protocol=2)
    with open(os.path.join(bn, "batches.meta.txt"), "w") as f:
        f.write("\n".join(names10) + "\n\n")
    with open(os.path.join(OUT, "cifar10.json"), "w") as f:
        json.dump(expect, f, indent=1)

    c100 = os.path.join(OUT, "cifar-100-python")
    wipe(c100)
    e100 = {}
    for split, n in [("train", 5), ("test", 2)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        coarse = [v // 5 for v in fine]
        e100[split + "_labels"] = fine
        e100[split + "_sums"] = [int(r.astype(np.int64).sum()) for r in data]
        with open(os.path.join(c100, split), "wb") as f:
            pickle.dump({b"filenames": [b"x.png"] * n, b"batch_label": b"b", b"fine_labels": fine,
                         b"coarse_labels": coarse, b"data": data}, f, protocol=4)
    with open(os.path.join(c100, "meta"), "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"super{i:02d}" for i in range(20)]}, f, protocol=4)
    with open(os.path.join(OUT, "cifar100.json"), "w") as f:
        json.dump(e100, f, indent=1)


def tensors_file():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 2, 3, generator=g)
    torch.save({"inputs": x, "labels": torch.arange(8) % 3}, os.path.join(OUT, "tensors_cls.pt"))
    torch.save({"inputs": x, "targets": x.sum((1, 2))[:, None] * 2}, os.path.join(OUT, "tensors_reg.pt"))
    with open(os.path.join(OUT, "tensors.json"), "w") as f:
        json.dump({"inputs": x.flatten().tolist(), "reg_targets": (x.sum((1, 2)) * 2).tolist()}, f)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    transforms_fixtures()
    image_folder()
    csv_tables()
    mnist()
    cifar()
    tensors_file()
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"python": sys.version.split()[0], "torch": torch.__version__,
                   "torchvision": torchvision.__version__, "pillow": PIL.__version__,
                   "numpy": np.__version__, "generator": "scripts/gen_transform_fixtures.py"}, f, indent=1)
    print("wrote", os.path.normpath(OUT))
