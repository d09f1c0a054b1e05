#!/usr/bin/env bash
# Type-checks and lints (clippy -D warnings) the library and the `kompress` binary for the machines users have
# but CI has not: Apple Silicon macOS (with and without Metal) and Windows (x86_64, GNU toolchain).
#
#   scripts/cross_check.sh            # every check this machine can run; skipped ones are named
#
# Without the `hub` feature nothing compiles C, so those checks run with CC/CXX=/bin/false and need only
# `rustup target add`. With `hub` (a default feature) the download client's TLS pulls `ring`, whose C and
# assembly need the target's C compiler: for Windows that is Debian's `gcc-mingw-w64-x86-64`; for macOS it
# needs an Apple SDK (TargetConditionals.h), which no Linux package ships, so that one is not checked here.
# A pure-Rust TLS stack is not available to `hf-hub` 0.4: its `ureq` 2 dependency keeps ureq's default
# `tls` feature (rustls on ring) on, and `rustls-rustcrypto` is an alpha release (docs/PLATFORMS.md).
#
# A target that cannot be installed is reported as SKIPPED and does not fail the script; a check that runs and
# fails does.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
skipped=()
no_hub="cli,server,llm-tokens"

have_target() {
    rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
    timeout 300 rustup target add "$1" >/dev/null 2>&1
}

# check NAME TARGET FEATURES [ENV...]: clippy with -D warnings for one target and feature set.
check() {
    local name=$1 target=$2 features=$3
    shift 3
    echo "-- $name: cargo clippy --target $target --no-default-features --features $features"
    if env "$@" cargo clippy --locked --quiet --target "$target" --no-default-features --features "$features" \
        --lib --bins -- -D warnings; then
        echo "   ok"
    else
        failed+=("$name")
    fi
}

for target in aarch64-apple-darwin x86_64-pc-windows-gnu; do
    if ! have_target "$target"; then
        skipped+=("$target: 'rustup target add $target' failed (no network to the Rust dist server?)")
        continue
    fi
    no_c=(CC=/bin/false CXX=/bin/false)
    check "$target" "$target" "$no_hub" "${no_c[@]}"
    case $target in
    aarch64-apple-darwin)
        check "$target + metal" "$target" "$no_hub,metal" "${no_c[@]}"
        skipped+=("$target + hub: ring's C needs an Apple SDK (TargetConditionals.h), not available on Linux")
        ;;
    x86_64-pc-windows-gnu)
        if command -v x86_64-w64-mingw32-gcc >/dev/null; then
            check "$target + hub (default features)" "$target" "hub,$no_hub" CXX=/bin/false
        else
            skipped+=("$target + hub: no x86_64-w64-mingw32-gcc for ring's C (apt-get install gcc-mingw-w64-x86-64)")
        fi
        ;;
    esac
done

for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "cross check: all checks that ran passed (${#skipped[@]} skipped)"
