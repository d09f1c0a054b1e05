#!/usr/bin/env bash
# Builds kompress for aarch64 Linux and runs its tests under qemu-user: on an emulated CPU with every
# extension (`-cpu max`: the NEON dot-product int8 kernel, native f16), then the kernel and parity tests
# on a Cortex-A72 (no dot product, no FEAT_FP16: the portable int8 kernel and gemm's f32-widening f16).
# qemu checks correctness only; its timings mean nothing. The tests that spawn the `kompress` binary
# (cli_*, evict_cli, pipeline_cli, server) are left out: the host cannot exec an aarch64 binary
# without a binfmt_misc entry for qemu. The library's own tests take about 10 minutes under qemu (the
# eviction network's training, bit for bit against the shipped weights, most of it).
#
#   scripts/aarch64_check.sh
#
# Requirements (Debian): `rustup target add aarch64-unknown-linux-gnu`, and
# `apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross` (the cross gcc links, and
# builds `ring`'s C for the default `hub` feature).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
for tool in qemu-aarch64 aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (see the requirements in $0)" >&2; exit 1; }
done
rustup target list --installed | grep -qx "$TARGET" ||
  { echo "error: the Rust target $TARGET is not installed (rustup target add $TARGET)" >&2; exit 1; }
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
runner() { echo "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $1"; }

# Every test target that runs in-process.
in_process=(--lib)
for t in tests/*.rs; do
  grep -q "CARGO_BIN_EXE\|run_kompress" "$t" || in_process+=(--test "$(basename "$t" .rs)")
done

echo "== aarch64, every extension (qemu -cpu max): ${in_process[*]}"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$(runner max) \
  cargo test --locked --release --target "$TARGET" "${in_process[@]}"

echo "== aarch64 without the dot product or FEAT_FP16 (qemu -cpu cortex-a72): kernels and parity"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$(runner cortex-a72) \
  cargo test --locked --release --target "$TARGET" --lib kernels::
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$(runner cortex-a72) \
  cargo test --locked --release --target "$TARGET" --test int8_parity --test parity
