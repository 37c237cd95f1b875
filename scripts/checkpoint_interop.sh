#!/usr/bin/env bash
# Checkpoint interop with real PyTorch: PyTorch recipe checkpoints resumed by kiln (first step
# compared), kiln checkpoints loaded by PyTorch's model, optimizer and scheduler.
# Python: $KILN_PYTHON, else ./.venv/bin/python. Files: $KILN_INTEROP_DIR (target/interop/ckpt).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${KILN_PYTHON:-./.venv/bin/python}"
dir="${KILN_INTEROP_DIR:-target/interop}/ckpt"
mkdir -p "$dir"
"$py" scripts/checkpoint_interop.py gen "$dir"
KILN_INTEROP_DIR="$(cd "$dir" && pwd)" cargo test --release --test checkpoint_interop -- --include-ignored --nocapture
"$py" scripts/checkpoint_interop.py check "$dir"
