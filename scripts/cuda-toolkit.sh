#!/usr/bin/env bash
# Installs a CUDA 13 build toolkit from PyPI into a local folder (no system toolkit, no GPU
# needed) and prints the environment that `cargo build --features cuda` needs.
#
#   source <(scripts/cuda-toolkit.sh)      # sets CUDA_ROOT, PATH, CUDA_COMPUTE_CAP, ...
#   cargo build --release --features cuda
#   KILN_NCCL=1 source <(scripts/cuda-toolkit.sh)   # also NCCL (nvidia-nccl-cu13), for --features nccl
#
# What it does (see docs/CUDA.md): nvcc, nvvm, crt headers, cudart/cublas/curand/nvrtc come from
# NVIDIA's wheels; libcuda.so (the driver) is not on PyPI, so a link-only stub exporting the
# driver symbols cudarc uses is compiled into lib64/stubs. The stub is never shipped: at run
# time the machine's driver provides libcuda.so.1.
set -euo pipefail
ROOT=${KILN_CUDA_ROOT:-$(pwd)/target/cuda-toolkit}
VENV=$ROOT/venv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/nvcc-ok" ]; then
  mkdir -p "$ROOT"
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --index-url https://pypi.org/simple \
    'nvidia-cuda-nvcc==13.2.*' 'nvidia-nvvm==13.2.*' 'nvidia-cuda-crt==13.2.*' \
    'nvidia-cuda-runtime==13.2.*' 'nvidia-cuda-nvrtc==13.2.*' nvidia-cublas nvidia-curand \
    nvidia-cuda-cccl >&2
  V=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
  R=$ROOT/root
  rm -rf "$R"; mkdir -p "$R/lib64/stubs"
  ln -s "$V/bin" "$R/bin"; ln -s "$V/include" "$R/include"; ln -s "$V/nvvm" "$R/nvvm"
  for l in "$V"/lib/lib*.so.*; do
    b=$(basename "$l"); ln -sf "$l" "$R/lib64/${b%%.so*}.so"; ln -sf "$l" "$R/lib64/$b"
  done
  # Link-only libcuda stub: every cu* symbol cudarc's driver bindings name.
  CU=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/ | head -1)
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$CU"/src/driver/sys/*.rs | sort -u \
    | awk '{print "void " $1 "(void) {}"}' > "$ROOT/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib64/stubs/libcuda.so" "$ROOT/cuda_stub.c"
  touch "$VENV/bin/nvcc-ok"
fi
R=$ROOT/root
if [ "${KILN_NCCL:-0}" = 1 ] && [ ! -e "$R/lib64/libnccl.so" ]; then
  "$VENV/bin/pip" install -q --index-url https://pypi.org/simple nvidia-nccl-cu13 >&2
  N=$("$VENV/bin/python" -c 'import nvidia.nccl, os; print(nvidia.nccl.__path__[0])')
  ln -sf "$N"/include/nccl*.h "$R/include/" 2>/dev/null || true
  for l in "$N"/lib/libnccl.so.*; do ln -sf "$l" "$R/lib64/$(basename "$l")"; ln -sf "$l" "$R/lib64/libnccl.so"; done
fi
cat <<ENV
export CUDA_ROOT=$R CUDA_PATH=$R CUDA_HOME=$R
export PATH=$R/bin:\$PATH
export LIBRARY_PATH=$R/lib64:$R/lib64/stubs:\${LIBRARY_PATH:-}
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=\${CUDARC_CUDA_VERSION:-13020}
ENV
