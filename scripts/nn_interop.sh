#!/usr/bin/env bash
# torchvision interop check for ResNet-18: generates the files with real torch/torchvision,
# then runs the gated Rust test on them; then checks that model files written by `kiln train`
# load into the PyTorch twins. Exits non-zero on any failure.
#
# Python: $KILN_PYTHON, else ./.venv/bin/python (needs torch, torchvision, safetensors).
# Files go to $KILN_INTEROP_DIR (default target/interop, not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${KILN_PYTHON:-./.venv/bin/python}"
if ! [ -x "$py" ]; then
    echo "error: no Python at '$py'; set KILN_PYTHON or create ./.venv with torch, torchvision, safetensors" >&2
    exit 2
fi
dir="${KILN_INTEROP_DIR:-target/interop}"
"$py" scripts/gen_resnet_interop.py "$dir"
KILN_INTEROP_DIR="$(cd "$dir" && pwd)" cargo test --release --test nn_interop -- --include-ignored --nocapture
# What `kiln train` writes loads into the PyTorch twins (strict) and predicts about as kiln said.
for arch in lenet mlp; do
    cargo run --release --quiet -- train --model "$arch" --epochs 3 --quiet --out "$dir/train-$arch"
    "$py" scripts/check_model_file.py "$dir/train-$arch" "$arch"
done
