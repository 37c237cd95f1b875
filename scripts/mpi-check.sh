#!/usr/bin/env bash
# DistributedDataParallel under Open MPI, as the README describes it (issue 8's checks):
#  1. `mpirun -np 2 kiln train --distributed mpi --ddp-verify`: both ranks hold bit-identical
#     parameters after every step (checked by kiln each step), and after an epoch (45 steps)
#     the parameters equal a single-process run with the combined batch within 1e-5;
#  2. a crash (--crash-after-steps, mid-epoch) and `--resume last` under mpirun -np 2 end
#     bit-identical to the uninterrupted distributed run;
#  3. kiln built without `mpi` refuses to run under mpirun (K0801).
# Installs Open MPI (Debian packages) when mpirun is missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpirun >/dev/null || ! [ -e /usr/include/x86_64-linux-gnu/openmpi/mpi.h ] && ! [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ]; then
    echo "installing Open MPI (libopenmpi-dev openmpi-bin libclang-dev)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin libclang-dev >/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
cp "$T/release/kiln" "$T/kiln-cpu-only"
cargo build --release --quiet --features mpi
K="$T/release/kiln"
D="$T/mpi-check"
rm -rf "$D"; mkdir -p "$D"
# Each mpirun gets a time limit: a rank stuck in a collective fails the check (exit 124).
run() { timeout --kill-after=10 240 mpirun -np 2 "$K" train --model lenet --scheduler none --batch-size 16 --quiet --distributed mpi "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "1. two ranks vs one process with the combined batch"
run --epochs 1 --ddp-verify --out "$D/ddp" || fail "distributed run"
"$K" train --model lenet --scheduler none --batch-size 32 --epochs 1 --quiet --out "$D/single" || fail "single run"
"$K" diff "$D/ddp/model.safetensors" "$D/single/model.safetensors" --atol 1e-5 || fail "parameters differ by more than 1e-5"

echo "2. crash and resume under mpirun"
run --epochs 2 --checkpoint-every-steps 10 --out "$D/straight" || fail "uninterrupted run"
rc=0; run --epochs 2 --checkpoint-every-steps 10 --crash-after-steps 57 --out "$D/crash" 2>/dev/null || rc=$?
[ $rc -ne 0 ] || fail "the crash run should have died"
[ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "the crash run hung instead of dying (rc $rc)"
run --epochs 2 --checkpoint-every-steps 10 --resume last --out "$D/crash" || fail "resume"
cmp "$D/straight/model.safetensors" "$D/crash/model.safetensors" || fail "resumed run differs"
diff <(cut -d, -f1-4 "$D/straight/metrics.jsonl") <(cut -d, -f1-4 "$D/crash/metrics.jsonl") || fail "metrics differ"

echo "3. a build without mpi under mpirun"
if out=$(timeout 120 mpirun -np 2 "$T/kiln-cpu-only" train --model lenet --epochs 1 --quiet --distributed mpi --out "$D/nompi" 2>&1); then
    fail "the CPU-only build should refuse --distributed mpi"
fi
grep -q K0801 <<<"$out" || fail "expected K0801, got: $out"
if out=$(timeout 120 mpirun -np 2 "$T/kiln-cpu-only" train --model lenet --epochs 1 --quiet --out "$D/nompi2" 2>&1); then
    fail "N processes without --distributed should be refused"
fi
grep -q K0801 <<<"$out" || fail "expected K0801 without --distributed, got: $out"
echo "mpi-check: all passed"
