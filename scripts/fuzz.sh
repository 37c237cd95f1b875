#!/usr/bin/env bash
# Fuzz kiln's file readers for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# 1. Always: the stable-Rust harness tests/fuzz_smoke.rs (seeded mutations of the PyTorch
#    fixtures through every reader; KILN_FUZZ_ITERS iterations each, default here 20000).
# 2. With a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
#    `cargo install cargo-fuzz`): the libFuzzer targets in fuzz/ — pickle_reader,
#    torch_zip_reader, legacy_reader, safetensors_reader, structural_pickle_reader,
#    structural_zip_reader and the data readers image_reader, csv_reader, idx_reader,
#    cifar_pickle_reader, and torch_tar_reader (PyTorch's pre-0.4 tar format) — each for SECONDS_PER_TARGET,
#    seeded with the fixtures. Crashes land in fuzz/artifacts/<target>/. (The fuzz build
#    uses its own fuzz/target, whatever CARGO_TARGET_DIR says.)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"

echo "== stable harness (tests/fuzz_smoke.rs)"
KILN_FUZZ_ITERS="${KILN_FUZZ_ITERS:-20000}" cargo test --release --test fuzz_smoke

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz on nightly not available: skipping the libFuzzer targets"
  exit 0
fi

for t in pickle_reader torch_zip_reader legacy_reader safetensors_reader \
    structural_pickle_reader structural_zip_reader \
    image_reader csv_reader idx_reader cifar_pickle_reader torch_tar_reader; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  case "$t" in
    pickle_reader)
      for f in tests/fixtures/io/*.pt; do
        if unzip -l "$f" >/dev/null 2>&1; then
          unzip -p "$f" '*/data.pkl' > "$corpus/$(basename "$f").pkl" || true
        fi
      done ;;
    torch_zip_reader) cp tests/fixtures/io/{dtypes,views,params,checkpoint,cuda}.pt "$corpus/" ;;
    legacy_reader) cp tests/fixtures/io/legacy.pt "$corpus/" ;;
    structural_pickle_reader)
      for f in tests/fixtures/modules/*.pt; do
        unzip -p "$f" '*/data.pkl' > "$corpus/$(basename "$f").pkl" 2>/dev/null || true
      done ;;
    structural_zip_reader) cp tests/fixtures/modules/*.pt "$corpus/" ;;
    image_reader) find tests/fixtures/data/imagefolder -type f ! -name '*.txt' -exec cp {} "$corpus/" \; ;;
    csv_reader) cp tests/fixtures/data/*.csv "$corpus/" ;;
    idx_reader) cp tests/fixtures/data/mnist/* "$corpus/" ;;
    cifar_pickle_reader) cp tests/fixtures/data/cifar-10-batches-py/{test_batch,batches.meta} "$corpus/" ;;
    torch_tar_reader) cp tests/fixtures/io/tar/*.tar "$corpus/" ;;
    safetensors_reader)
      cargo run --quiet --bin kiln -- convert tests/fixtures/io/dataparallel.pt "$corpus/dp.safetensors" ;;
  esac
  echo "== cargo fuzz run $t (${SECS}s)"
  env -u CARGO_TARGET_DIR cargo +nightly fuzz run "$t" "$corpus" -- -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536
done
echo "fuzzing finished without a crash"
