#!/usr/bin/env bash
# Release artefacts of the Python wheel `kompress-rs` (docs/PYTHON.md, "Releasing"): the abi3 wheel
# for x86_64 Linux tagged manylinux2014 (glibc 2.17: Debian 11, Ubuntu 20.04, RHEL 8, Amazon Linux 2
# and later), linked by zig against glibc 2.17's symbols, and the sdist; then `auditwheel show` on the
# wheel. Needs Rust (the toolchain in rust-version) and python3 with venv; maturin, ziglang and
# auditwheel come from PyPI into a throwaway virtualenv. CI does not run this (it builds with pip).
#
#   scripts/build_wheels.sh [OUT_DIR]        # default dist/
#
# CARGO_TARGET_DIR is honoured; the zig build compiles for an explicit --target, so it does not reuse
# a plain `cargo build --release`'s artefacts (a first build takes about as long as a fresh one).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-dist}")"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet "maturin>=1.9.4,<2" ziglang auditwheel
export PATH="$tools/venv/bin:$PATH"   # maturin finds zig through the venv's `python -m ziglang`
maturin build --release --zig --compatibility manylinux2014 -m bindings/python/Cargo.toml -o "$out"
maturin sdist -m bindings/python/Cargo.toml -o "$out"
for wheel in "$out"/kompress_rs-*manylinux2014*.whl; do
    auditwheel show "$wheel"
done
ls -l "$out"
