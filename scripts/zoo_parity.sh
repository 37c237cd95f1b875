#!/usr/bin/env bash
# torchvision model-zoo parity (tests/zoo_parity.rs): generates the fixtures once with real
# torch/torchvision into $KILN_ZOO_FIXTURES (default target/zoo-fixtures, not committed;
# skipped when its manifest matches the script and the library versions), then runs the
# ignored parity tests: eval logits on 224x224 and one training step's gradients for every
# architecture. Extra arguments are passed to the test binary (e.g. a test-name filter).
#
# Python: $KILN_PYTHON, else ./.venv/bin/python (needs torch, torchvision, safetensors, numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${KILN_PYTHON:-./.venv/bin/python}"
if ! [ -x "$py" ]; then
    echo "error: no Python at '$py'; set KILN_PYTHON or create ./.venv with torch, torchvision, safetensors" >&2
    exit 2
fi
dir="${KILN_ZOO_FIXTURES:-target/zoo-fixtures}"
start=$SECONDS
"$py" scripts/gen_zoo_fixtures.py --out "$dir"
echo "fixtures ready after $((SECONDS - start)) s"
KILN_ZOO_FIXTURES="$(cd "$dir" && pwd)" cargo test --release --test zoo_parity -- --ignored --nocapture "$@"
echo "zoo parity: $((SECONDS - start)) s in all"
