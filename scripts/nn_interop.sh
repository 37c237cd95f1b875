#!/usr/bin/env bash
# torchvision interop check for ResNet-18: generates the files with real torch/torchvision,
# then runs the gated Rust test on them. Exits non-zero on any failure.
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
KILN_INTEROP_DIR="$(cd "$dir" && pwd)" cargo test --release --test nn_interop -- --nocapture
