#!/usr/bin/env bash
# Checks a CUDA build's device selection on a machine without a GPU, against stand-in driver
# libraries (`libcuda.so.1` from scripts/libcuda_stub.sh, all answering CUDA_SUCCESS except the ones
# below):
#   - a driver that finds no device: `--device auto` falls back to the CPU and -v gives the driver's
#     reason; `--device cuda` is a one-line error naming it;
#   - a driver with one device: `--device cuda:1` fails with "there is no CUDA device 1".
#
#   scripts/cuda_standin_check.sh [KOMPRESS_BINARY]     (default target/release/kompress)
#
# Run it after scripts/build_cuda.sh, which leaves the CUDA 13 libraries and cuda.h in
# $KOMPRESS_CUDA_DIR (default ~/.cache/kompress-cuda). Needs gcc.
set -euo pipefail
kompress=$(realpath "${1:-$(dirname "$0")/../target/release/kompress}")
cd "$(dirname "$0")/.."
root=${KOMPRESS_CUDA_DIR:-$HOME/.cache/kompress-cuda}/root
model=tests/fixtures/models/v5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# standin NAME C_BODY: libcuda.so.1 in $work/NAME whose cuInit/cuDeviceGetCount are C_BODY's; the
# error-text functions answer as the real driver does for CUDA_ERROR_NO_DEVICE (the error's Display
# reads them).
standin() {
  mkdir -p "$work/$1"
  scripts/libcuda_stub.sh "$root/include" cuInit cuDeviceGetCount cuGetErrorName cuGetErrorString >"$work/$1/stub.c"
  cat >>"$work/$1/stub.c" <<EOF
$2
int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_NO_DEVICE"; return 0; }
int cuGetErrorString(int e, const char **s) { *s = "no CUDA-capable device is detected"; return 0; }
EOF
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$work/$1/libcuda.so.1" "$work/$1/stub.c"
}
standin none 'int cuInit(unsigned f) { return 100; } int cuDeviceGetCount(int *n) { *n = 0; return 100; }'
standin one 'int cuInit(unsigned f) { return 0; } int cuDeviceGetCount(int *n) { *n = 1; return 0; }'

failed=0
# expect NAME DRIVER PATTERN ARGS: runs kompress score on a short text, stdout and stderr together.
expect() {
  local name=$1 driver=$2 pattern=$3 got
  shift 3
  got=$(echo 'the quick brown fox' | LD_LIBRARY_PATH="$work/$driver:$root/lib64" "$kompress" score -m $model "$@" 2>&1 || true)
  if grep -qE "$pattern" <<<"$got"; then echo "ok      $name"; else echo "FAILED  $name: got: $got"; failed=1; fi
}
expect "no device: auto falls back to the CPU, -v says why" none \
  'passed over: no usable CUDA driver: no CUDA-capable device is detected \(CUDA_ERROR_NO_DEVICE\)' --device auto -v
expect "no device: auto still scores" none '"score":\[' --device auto --json
expect "no device: --device cuda is a clear error" none '^error: .*no usable CUDA driver' --device cuda
expect "one device: --device cuda:1 is a clear error" one \
  '^error: .*there is no CUDA device 1: this machine has 1 CUDA device \(cuda:0\)' --device cuda:1
exit $failed
