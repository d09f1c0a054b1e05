#!/usr/bin/env bash
# Builds `kompress` with `--features cuda` in one command.
#
#   scripts/build_cuda.sh [COMPUTE_CAP]        (default 90: H100/H200; 80: A100; 89: L4/RTX 40xx)
#
# With BUNDLE=DIR it also builds the parity test binary and writes both, stripped and gzipped (about
# 16 MB each), to DIR: what scripts/gpu_check.sh runs on a GPU machine that has no Rust toolchain.
#
# With a CUDA toolkit installed (nvcc on PATH, or CUDA_ROOT set) it builds against that. Without one
# it assembles a CUDA 13.0 toolkit from NVIDIA's PyPI wheels (pinned: newer nvvm/crt wheels emit PTX
# that the 13.0 ptxas rejects) in $KOMPRESS_CUDA_DIR (default ~/.cache/kompress-cuda) and links
# against a stub libcuda.so; the real driver library is used at run time.
#
# Run time needs libcuda.so.1 (the driver) and libcublas/libcublasLt/libcudart (.so.13) and
# libcurand (.so.10): point LD_LIBRARY_PATH at the wheels' lib folder
# ($KOMPRESS_CUDA_DIR/root/lib64) or at any CUDA 13 installation, e.g. PyTorch's nvidia/cu13/lib.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_COMPUTE_CAP=${1:-${CUDA_COMPUTE_CAP:-90}}

if [ -z "${CUDA_ROOT:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
  dir=${KOMPRESS_CUDA_DIR:-$HOME/.cache/kompress-cuda}
  root=$dir/root
  if [ ! -x "$root/bin/nvcc" ]; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet \
      nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 \
      nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
    cu=$("$dir/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
    rm -rf "$root" && mkdir -p "$root/lib64"
    for d in bin include nvvm; do ln -s "$cu/$d" "$root/$d"; done
    for l in cublas cublasLt cudart nvrtc; do ln -s "$cu/lib/lib$l.so.13" "$root/lib64/lib$l.so"; ln -sf "$cu/lib/lib$l.so.13" "$root/lib64/"; done
    ln -s "$cu/lib/libcurand.so.10" "$root/lib64/libcurand.so"; ln -sf "$cu/lib/libcurand.so.10" "$root/lib64/"
    # Link-time stand-in for the driver.
    scripts/libcuda_stub.sh "$root/include" >"$dir/libcuda_stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/libcuda.so" "$dir/libcuda_stub.c"
  fi
  export CUDA_ROOT=$root CUDA_PATH=$root PATH=$root/bin:$PATH LIBRARY_PATH=$root/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}
fi

cargo build --release --features cuda
target=${CARGO_TARGET_DIR:-target}
echo "built $target/release/kompress with CUDA (compute capability $CUDA_COMPUTE_CAP)"

# The driver compiles the embedded PTX when the binary starts; assembling it here with the toolkit's
# ptxas catches PTX that the driver would refuse (newer nvvm wheels than the 13.0 line produce such).
modules=0
for ptx in "$target"/release/build/candle-kernels-*/out/*.ptx; do
  "${CUDA_ROOT:+$CUDA_ROOT/bin/}ptxas" -arch="$(awk '$1 == ".target" {print $2; exit}' "$ptx")" -o /dev/null "$ptx"
  modules=$((modules + 1))
done
echo "the embedded PTX assembles with ptxas: $modules modules"

if [ -n "${BUNDLE:-}" ]; then
  test_bin=$(cargo test --release --features cuda --no-run --test parity --message-format=json \
    | python3 -c 'import json, sys; print(*[m["executable"] for m in map(json.loads, sys.stdin)
                                           if m.get("executable") and m["target"]["kind"] == ["test"]])')
  mkdir -p "$BUNDLE"
  for pair in "$target/release/kompress:kompress" "$test_bin:parity-test"; do
    strip -o "$BUNDLE/${pair#*:}" "${pair%%:*}" && gzip -f "$BUNDLE/${pair#*:}"
  done
  ls -l "$BUNDLE"
fi
