#!/usr/bin/env bash
# kiln's whole test suite (what CI runs, via .ci/run):
#   1. every Rust test of the workspace (unit, integration, doc; the small PyTorch fixtures
#      are committed), the library's dependency check and the examples,
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
step "cargo test --release --workspace (all Rust tests)"
limit 1800 cargo test --release --workspace
step "layers: the issue-14 mixed model's .pt in its PyTorch twin (scripts/layers_twin.py)"
limit 300 cargo test --release -q --test layers_roundtrip
limit 300 "$KILN_PYTHON" scripts/layers_twin.py target/tmp/layers_roundtrip
limit 300 cargo test --release -q --test layers_roundtrip -- --ignored
step "the library has no CLI dependencies (cargo tree -p kiln -e normal)"
if cargo tree -p kiln -e normal --prefix none | grep -E '^(clap|indicatif|plotters) '; then
    echo "the kiln library depends on a CLI crate" >&2; exit 1
fi
step "examples (custom_model + its PyTorch twin, custom_dataset, own_loop, char_lstm, transformer_classifier)"
ex_out="$(mktemp -d)"
limit 600 cargo run --release -q --example custom_model -- "$ex_out/custom_model"
limit 300 "$KILN_PYTHON" scripts/custom_model_twin.py "$ex_out/custom_model"
limit 300 cargo run --release -q --example custom_dataset
limit 300 cargo run --release -q --example own_loop -- "$ex_out/own_loop"
limit 300 cargo run --release -q --example char_lstm -- "$ex_out/char_lstm"
limit 300 cargo run --release -q --example transformer_classifier -- "$ex_out/transformer_classifier"
step "interop: kiln <-> PyTorch files (scripts/interop_check.py)"
limit 600 "$KILN_PYTHON" scripts/interop_check.py
step "interop: ResNet-18 vs torchvision, kiln train files in the PyTorch twins"
limit 600 scripts/nn_interop.sh
step "interop: sequence layers (.pt both ways with torch.nn's MultiheadAttention, Transformer, LSTM, GRU)"
limit 600 scripts/seq_interop.sh
step "interop: torchvision model zoo (every architecture: eval logits, one training step)"
limit 2400 scripts/zoo_parity.sh
step "interop: vit_b_16 vs torchvision (scripts/gen_vit_fixture.py, tests/zoo_vit.rs)"
limit 300 "$KILN_PYTHON" scripts/gen_vit_fixture.py target/vit-fixture
limit 600 cargo test --release --test zoo_vit -- --ignored --nocapture
step "interop: checkpoints (PyTorch recipe resumed by kiln, kiln checkpoints into PyTorch)"
limit 600 scripts/checkpoint_interop.sh
step "whole-module files: torchvision resnet18 saved with torch.save(model) (scripts/gen_module_fixtures.py --big)"
limit 300 "$KILN_PYTHON" scripts/gen_module_fixtures.py --big target/module-fixtures
limit 900 cargo test --release --test module_files -- --ignored --nocapture
step "distributed: mpirun -np 2"
limit 900 scripts/mpi-check.sh
step "all tests passed"
