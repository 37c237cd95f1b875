#!/usr/bin/env bash
# Creates ./.venv with real PyTorch from PyPI (torch, torchvision, safetensors, numpy) for the
# interop checks, unless it already works. Prints the python path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
py=./.venv/bin/python
if ! [ -x "$py" ] || ! "$py" -c "import torch, torchvision, safetensors, numpy" 2>/dev/null; then
    echo "setting up .venv with torch from PyPI (about a minute)…" >&2
    python3 -m venv .venv >&2
    "$py" -m pip install -q --disable-pip-version-check --index-url https://pypi.org/simple \
        torch torchvision safetensors numpy >&2
fi
"$py" -c "import torch; print('torch', torch.__version__)" >&2
echo "$py"
