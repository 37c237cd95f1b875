#!/usr/bin/env bash
# Creates ./.venv with real PyTorch from PyPI (torch, torchvision, safetensors, numpy) for the
# interop checks, unless it already works, and tensorboard (pinned: tests/tensorboard.rs reads
# kiln's event files with its EventAccumulator) unless that version is there. Prints the python
# path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
py=./.venv/bin/python
tensorboard_version=2.21.0
if ! [ -x "$py" ] || ! "$py" -c "import torch, torchvision, safetensors, numpy" 2>/dev/null; then
    echo "setting up .venv with torch from PyPI (about a minute)…" >&2
    python3 -m venv .venv >&2
    "$py" -m pip install -q --disable-pip-version-check --index-url https://pypi.org/simple \
        torch torchvision safetensors numpy >&2
fi
if ! "$py" -c "import tensorboard, sys; sys.exit(tensorboard.__version__ != '$tensorboard_version')" 2>/dev/null; then
    "$py" -m pip install -q --disable-pip-version-check --index-url https://pypi.org/simple \
        "tensorboard==$tensorboard_version" >&2
fi
"$py" -c "import torch; print('torch', torch.__version__)" >&2
echo "$py"
