#!/usr/bin/env bash
# Transfer learning on the embedded digits (docs/FINETUNE.md):
#   1. pretrain LeNet on digits 0-4 (kiln train --classes 0-4, kiln's defaults);
#   2. on digits 5-9 with only 20 labelled images per class (100 images, drawn with the seed),
#      train for the same number of steps
#        frozen     pretrained, conv1 conv2 fc1 fc2 frozen: only the new head trains
#        frozen-fc  pretrained, conv1 conv2 frozen: fc1 fc2 and the new head train
#        small-lr   pretrained, everything trains, the backbone at a tenth of the head's lr
#        scratch    kiln train on the same 100 images from a random initialisation
#   3. print a markdown table of the accuracy on every held-out 5-9 image (the 5-9 images
#      of the test split and the unused ones of the training split: 796 images).
#
# Usage: scripts/finetune-demo.sh            (seeds 0-4, budgets 5 and 15 epochs, lr 0.03 and 0.1)
#        SEEDS="0 1" EPOCHS="5" LRS="0.03" scripts/finetune-demo.sh
# Output folders go to $KILN_DEMO_DIR (default target/finetune-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
kiln="${CARGO_TARGET_DIR:-target}/release/kiln"
dir="${KILN_DEMO_DIR:-target/finetune-demo}"
seeds="${SEEDS:-0 1 2 3 4}"
budgets="${EPOCHS:-5 15}"
lrs="${LRS:-0.03 0.1}"
mkdir -p "$dir"

acc() { # final test accuracy (%) of a run folder
    tail -n 1 "$1/metrics.jsonl" | sed -E 's/.*"test_acc":([0-9.eE+-]+).*/\1/' |
        awk '{ printf "%.1f", 100 * $1 }'
}

"$kiln" train --model lenet --classes 0-4 --quiet --no-checkpoint --out "$dir/pretrain"
echo "pretrained LeNet on digits 0-4: test accuracy $(acc "$dir/pretrain")% (digits 0-4 of the test split)" >&2
pre="$dir/pretrain/model.safetensors"
data=(--classes 5-9 --per-class 20 --quiet --no-checkpoint)

run() { # method epochs lr seed -> accuracy
    local m=$1 e=$2 lr=$3 s=$4 out="$dir/$1-e$2-lr$3-s$4"
    local small
    small=$(awk -v lr="$lr" 'BEGIN { printf "%g", lr / 10 }')
    case $m in
    frozen) "$kiln" finetune --from "$pre" --freeze conv1 conv2 fc1 fc2 "${data[@]}" --epochs "$e" --lr "$lr" --seed "$s" --out "$out" ;;
    frozen-fc) "$kiln" finetune --from "$pre" --freeze conv1 conv2 "${data[@]}" --epochs "$e" --lr "$lr" --seed "$s" --out "$out" ;;
    small-lr) "$kiln" finetune --from "$pre" --group "conv*=$small" "fc1=$small" "fc2=$small" "${data[@]}" --epochs "$e" --lr "$lr" --seed "$s" --out "$out" ;;
    scratch) "$kiln" train --model lenet "${data[@]}" --epochs "$e" --lr "$lr" --seed "$s" --out "$out" ;;
    esac
    acc "$out"
}

echo "| steps (epochs × 7) | lr (head) | method | mean % | min % | max % | per seed ($seeds) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for e in $budgets; do
    for lr in $lrs; do
        for m in frozen frozen-fc small-lr scratch; do
            vals=()
            for s in $seeds; do vals+=("$(run "$m" "$e" "$lr" "$s")"); done
            printf '%s\n' "${vals[@]}" | awk -v e="$e" -v lr="$lr" -v m="$m" -v all="${vals[*]}" '
                { sum += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
                END { printf "| %d (%d) | %s | %s | %.1f | %.1f | %.1f | %s |\n", 7 * e, e, lr, m, sum / NR, lo, hi, all }'
        done
    done
done
