#!/usr/bin/env bash
# `.pt` interop of the sequence layers with real PyTorch, both ways (tests/seq_interop.rs):
# PyTorch writes its SeqNet, kiln loads it strictly and matches its output, kiln writes its
# own, PyTorch loads that strictly and matches. Files go to $KILN_SEQ_INTEROP_DIR (default
# target/seq_interop, not committed). Python: $KILN_PYTHON, else ./.venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${KILN_PYTHON:-./.venv/bin/python}"
dir="${KILN_SEQ_INTEROP_DIR:-target/seq_interop}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
"$py" scripts/seq_interop.py write "$dir"
KILN_SEQ_INTEROP_DIR="$dir" cargo test --release --test seq_interop -- --ignored --nocapture
"$py" scripts/seq_interop.py check "$dir"
