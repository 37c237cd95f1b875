#!/usr/bin/env bash
# kiln's whole test suite (what CI runs, via .ci/run):
#   1. every Rust test (unit, integration, doc; the small PyTorch fixtures are committed),
#   2. live interop with real PyTorch both ways: files, nn/ResNet-18, checkpoints,
#   3. the bounded fuzz smoke test of every file reader is part of 1 (tests/fuzz_smoke.rs),
#   4. DistributedDataParallel under `mpirun -np 2` (Open MPI installed if missing).
# Installs PyTorch into ./.venv on first use. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s (%ss so far)\n' "$*" "$SECONDS"; }
# Every step has a time limit, so a hang fails CI with a message instead of eating its budget.
limit() { local s=$1; shift; timeout --kill-after=10 "$s" "$@" || { rc=$?; [ $rc -eq 124 ] && echo "TIMEOUT after ${s}s: $*" >&2; exit $rc; }; }
step "Python with PyTorch"
KILN_PYTHON="$(scripts/setup-python.sh)"
export KILN_PYTHON KILN_CARGO_PROFILE=release
step "cargo test --release (all Rust tests)"
limit 1500 cargo test --release
step "interop: kiln <-> PyTorch files (scripts/interop_check.py)"
limit 600 "$KILN_PYTHON" scripts/interop_check.py
step "interop: ResNet-18 vs torchvision, kiln train files in the PyTorch twins"
limit 600 scripts/nn_interop.sh
step "interop: checkpoints (PyTorch recipe resumed by kiln, kiln checkpoints into PyTorch)"
limit 600 scripts/checkpoint_interop.sh
step "distributed: mpirun -np 2"
limit 900 scripts/mpi-check.sh
step "all tests passed"
