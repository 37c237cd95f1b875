"""Writes tests/fixtures/tensorboard/: an event file made by real torch.utils.tensorboard
(SummaryWriter.add_scalar, and the three hparams summaries of summary.hparams written the way
add_hparams writes them), and a JSON file of what was logged. tests/tensorboard.rs reads the
file with kiln's reader and re-encodes every event with kiln's encoder, byte for byte.

Run: .venv/bin/python scripts/gen_tensorboard_fixture.py
"""

import glob
import json
import os
import shutil
import tempfile

import tensorboard
import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tensorboard")

SCALARS = [
    # (tag, value, step): a step of 0 is left out of the event (proto3 default), large steps
    # need multi-byte varints, values are rounded to float32.
    ("train/loss", 2.302585092994046, 1),
    ("lr-SGD", 0.03, 1),
    ("train/loss", 0.1234567, 300),
    ("lr-SGD/pg2", 1e-05, 300),
    ("test_acc", 0.9722222222222222, 90),
    ("epoch", 2.0, 0),
    ("seconds", 123456.789, 2**40),
]

HPARAMS = {
    "model": "mlp",
    "epochs": 2,
    "lr": 0.05,
    "momentum": 0.0,
    "optimizer": "sgd",
    "scheduler/kind": "cosine",
    "classes": "[0,1,2]",
    "empty": "",
}
METRICS = ["test_acc", "test_loss", "train_acc", "train_loss"]


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    w = SummaryWriter(tmp)
    for tag, value, step in SCALARS:
        w.add_scalar(tag, value, step)
    exp, ssi, sei = hparams(HPARAMS, {m: 0.0 for m in METRICS})
    fw = w._get_file_writer()
    fw.add_summary(exp)
    fw.add_summary(ssi)
    fw.add_summary(sei, 7)
    w.close()
    (path,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
    shutil.copy(path, os.path.join(OUT, "torch.tfevents"))
    shutil.rmtree(tmp)
    with open(os.path.join(OUT, "torch.json"), "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "tensorboard": tensorboard.__version__,
                "scalars": SCALARS,
                "hparams": list(HPARAMS.items()),
                "metrics": METRICS,
            },
            f,
            indent=1,
        )
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
