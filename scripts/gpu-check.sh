#!/usr/bin/env bash
# The CUDA proof (issue 9), in one run of a few minutes on a GPU machine:
#   1. kiln devices                       5. DataParallel, two replicas on cuda:0 vs the plain model
#   2. LeNet trained on cuda:0 (15 epochs, accuracy >= 95 %) 6. PyTorch's cuda:0 checkpoint into kiln, kiln's back into PyTorch
#   3. checkpoint/resume on the GPU, the  7. ResNet-18 training step (batch 64, 224x224, f32 and bf16),
#      checkpoint read on the CPU            kiln vs PyTorch on the same GPU
#   4. manual_seed: two runs, identical weights
# Usage: scripts/gpu-check.sh            (kiln: $KILN, default target/cuda/release/kiln)
#        scripts/gpu-check.sh --dry-run  (the same checks on the CPU with small sizes; any kiln)
# PyTorch: $KILN_PYTHON or python3 (the GPU machine's image has torch + torchvision); the CUDA
# runtime libraries (cudart, cublas, curand, nvrtc) are taken from that PyTorch install.
# Prints a summary; exits 1 if any check failed. Logs under $OUT/gpu-check (or target/gpu-check).
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=cuda:0 DRY=0
[ "${1:-}" = "--dry-run" ] && DEV=cpu DRY=1
K="${KILN:-target/cuda/release/kiln}"
[ $DRY = 1 ] && K="${KILN:-target/release/kiln}"
PY="${KILN_PYTHON:-python3}"
[ -x ./.venv/bin/python ] && [ -z "${KILN_PYTHON:-}" ] && [ $DRY = 1 ] && PY=./.venv/bin/python
D="${OUT:-target}/gpu-check"
rm -rf "$D"; mkdir -p "$D"
if [ $DRY = 0 ]; then
    LIBS=$("$PY" -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for b in nvidia.__path__ for p in glob.glob(b + "/**/lib*.so*", recursive=True)})))' 2>/dev/null)
    export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
fi
EPOCHS=15 BATCH=64 SIZE=224 STEPS=20 DTYPES="f32 bf16"
# Dry run: small ResNet sizes, and f32 only (candle's CPU matmul has no bf16).
[ $DRY = 1 ] && BATCH=8 SIZE=32 STEPS=3 DTYPES=f32
PASS=0 FAILED=()
ok() { echo "ok    $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL  $*"; FAILED+=("$*"); }
# run NAME CMD...: runs CMD with its output in $D/NAME.log, ok/FAIL by exit status.
run() { local n=$1; shift; if "$@" >"$D/$n.log" 2>&1; then ok "$n"; else bad "$n (exit $?)"; tail -5 "$D/$n.log"; fi; }
acc() { tail -1 "$1/metrics.jsonl" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["test_acc"])'; }
train() { "$K" train --model lenet --device "$DEV" --quiet "$@"; }

echo "== 1. devices"
"$K" devices | tee "$D/devices.log"
run devices "$K" devices

echo "== 2. LeNet on $DEV"
T0=$SECONDS
if train --epochs $EPOCHS --out "$D/lenet" >"$D/lenet.log" 2>&1; then
    a=$(acc "$D/lenet")
    "$PY" -c "import sys; sys.exit(0 if $a >= 0.95 else 1)" && ok "LeNet on $DEV, $EPOCHS epochs: test accuracy $a ($((SECONDS - T0)) s)" || bad "LeNet accuracy $a < 0.95"
else bad "LeNet training"; tail -5 "$D/lenet.log"; fi

echo "== 3. checkpoint and resume on $DEV, checkpoint read on the CPU"
run straight train --epochs 3 --checkpoint-every-steps 40 --out "$D/straight"
if train --epochs 3 --checkpoint-every-steps 40 --crash-after-steps 100 --out "$D/crash" >"$D/crash.log" 2>&1; then
    bad "the crash run should have died"
else ok "crash simulated after step 100"; fi
run resume train --epochs 3 --checkpoint-every-steps 40 --resume last --out "$D/crash"
if "$K" diff "$D/straight/model.safetensors" "$D/crash/model.safetensors" --atol 0 >"$D/resume-diff.log" 2>&1; then
    ok "resumed run on $DEV bit-identical to the uninterrupted one"
else bad "resumed run differs: $(tail -1 "$D/resume-diff.log")"; fi
CK=$(ls "$D"/straight/checkpoints/*.pt 2>/dev/null | tail -1)
"$K" inspect "$CK" >"$D/inspect.log" 2>&1 && grep -q "$DEV\|cuda" "$D/inspect.log" && ok "checkpoint storages tagged $(grep -o 'cuda:[0-9]*' "$D/inspect.log" | sort -u | tr '\n' ' ')" || { [ $DRY = 1 ] && ok "inspect (dry run: cpu tags)" || bad "checkpoint device tags"; }
"$PY" - "$D/x.safetensors" <<'PYEOF'
import sys, torch
from safetensors.torch import save_file
torch.manual_seed(0); save_file({"input": torch.rand(16, 1, 8, 8)}, sys.argv[1])
PYEOF
run ckpt-on-gpu "$K" forward --model lenet --weights "$CK" --input "$D/x.safetensors" --output "$D/y_gpu.safetensors" --device "$DEV"
run ckpt-on-cpu "$K" forward --model lenet --weights "$CK" --input "$D/x.safetensors" --output "$D/y_cpu.safetensors" --device cpu
run "GPU checkpoint read on the CPU (map_location cpu) gives the GPU outputs (atol 1e-5)" "$K" diff "$D/y_gpu.safetensors" "$D/y_cpu.safetensors" --atol 1e-5

echo "== 4. manual_seed reproducibility on $DEV"
run seed-a train --epochs 1 --seed 7 --no-checkpoint --out "$D/seed-a"
run seed-b train --epochs 1 --seed 7 --no-checkpoint --out "$D/seed-b"
run "two runs with --seed 7 on $DEV: identical weights" cmp "$D/seed-a/model.safetensors" "$D/seed-b/model.safetensors"

echo "== 5. DataParallel, two replicas on $DEV"
"$K" bench dp --check "$DEV,$DEV" --batch-size 30 --tolerance 1e-5 | tee "$D/dp.log"
grep -q ": ok$" "$D/dp.log" && ok "DataParallel $DEV,$DEV = plain model (1e-5)" || bad "DataParallel check"

echo "== 6. PyTorch checkpoints on $DEV, both ways"
if "$PY" scripts/gpu_interop.py gen "$D" "$DEV" >"$D/interop-gen.log" 2>&1; then
    cat "$D/interop-gen.log"
    run kiln-reads-torch-gpu-checkpoint "$K" forward --model lenet --weights "$D/torch_gpu.pt" --input "$D/x.safetensors" --output "$D/kiln_out.safetensors" --device "$DEV"
    run kiln-writes-gpu-file "$K" convert "$D/torch_gpu.pt" "$D/kiln_gpu.pt" --map-location "$DEV"
    if "$PY" scripts/gpu_interop.py check "$D" "$DEV" >"$D/interop-check.log" 2>&1; then
        ok "PyTorch loads kiln's $DEV file onto $DEV; outputs agree"; cat "$D/interop-check.log"
    else bad "PyTorch interop on $DEV"; cat "$D/interop-check.log"; fi
else bad "PyTorch could not write its checkpoint"; tail -5 "$D/interop-gen.log"; fi

echo "== 7. ResNet-18 training step, batch $BATCH, ${SIZE}x${SIZE}, kiln vs PyTorch on $DEV"
for dt in $DTYPES; do
    if "$K" bench train --model resnet18 --device "$DEV" --dtype $dt --batch-size $BATCH --image-size $SIZE --steps $STEPS >"$D/resnet-$dt.log" 2>&1; then
        ok "ResNet-18 $dt: $(grep -h 'ms/step' "$D/resnet-$dt.log" | tr '\n' ';') $(tail -1 "$D/resnet-$dt.log")"
    else bad "ResNet-18 $dt timing"; tail -5 "$D/resnet-$dt.log"; fi
done

echo
echo "== summary: $PASS passed, ${#FAILED[@]} failed (device $DEV$([ $DRY = 1 ] && echo ', dry run'))"
for f in "${FAILED[@]}"; do echo "   failed: $f"; done
[ ${#FAILED[@]} -eq 0 ]
