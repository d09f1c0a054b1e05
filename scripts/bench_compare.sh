#!/usr/bin/env bash
# Runs `kompress bench` (f32, and each of DTYPES the binary has) and the PyTorch/ONNX Runtime peers
# (scripts/bench_pytorch.py) in one go, on the same machine, shape and thread count, and prints a
# header (CPU, its SIMD flags, threads, date, KOMPRESS_CPU_KERNELS) and a table of medians, mins and
# ratios against kompress f32 and against ONNX Runtime fp32.
#
#   [PYTHON=/path/to/venv/bin/python] [KOMPRESS_BIN=path] [ITERS=5] [KOMPRESS_CPU_KERNELS=avx2|portable|avx512] \
#     [DTYPES="int8 int8-wo int8-wo-g128 bf16"] \
#     scripts/bench_compare.sh [SEQ_LENS] [THREADS] [ENGINES] [MODEL_DIR]
#   e.g. scripts/bench_compare.sh "128 512 2048" 2 sdpa,onnx,onnx-int8-wo,onnx-int8-dyn
#
# ENGINES are bench_pytorch.py's (sdpa, eager, onnx, onnx-int8-wo, onnx-int8-dyn; default
# sdpa,onnx,onnx-int8-wo,onnx-int8-dyn; `none`: kompress only); `kompress` (f32) and `kompress-DTYPE`
# for each of DTYPES (default int8 int8-wo int8-wo-g128 bf16) always run. A dtype the binary rejects
# gets a "skipped" line, not a row. KOMPRESS_BIN: the binary
# to time (default target/release/kompress, built first with `cargo build --release`; a given binary is
# used as is). KOMPRESS_CPU_KERNELS, when set, caps the ISA of kompress's own kernels (the binary reads
# it; it is exported to it and shown in the header). Random weights of kompress-base's shape (or
# MODEL_DIR's config.json); batch 1; medians and mins of ITERS timed runs after 1 warm-up.
# Ratios: engine median / reference median (above 1: slower than the reference).
# Requirements: bash, a Python with torch and transformers, plus onnx and onnxruntime for the ONNX
# engines (PYTHON, default python3); the ONNX files are cached (scripts/ort_models.py).
set -euo pipefail
cd "$(dirname "$0")/.."
SEQ_LENS=${1:-"128 512 2048"}
THREADS=${2:-2}
ENGINES=${3:-sdpa,onnx,onnx-int8-wo,onnx-int8-dyn}
MODEL=${4:-}
PYTHON=${PYTHON:-python3}
ITERS=${ITERS:-5}
DTYPES=${DTYPES:-"int8 int8-wo int8-wo-g128 bf16"}
if [ -n "${KOMPRESS_BIN:-}" ]; then
  BIN=$KOMPRESS_BIN
else
  cargo build --release --quiet
  BIN=target/release/kompress
fi
[ -x "$BIN" ] || { echo "error: kompress binary $BIN is not executable (set KOMPRESS_BIN)" >&2; exit 1; }
if [ "$ENGINES" != none ]; then
  "$PYTHON" -c 'import torch, transformers' 2>/dev/null ||
    { echo "error: $PYTHON lacks torch/transformers (set PYTHON to a venv that has them)" >&2; exit 1; }
fi
if [[ $ENGINES == *onnx* ]]; then
  "$PYTHON" -c 'import onnx, onnxruntime' 2>/dev/null ||
    { echo "error: $PYTHON lacks onnx/onnxruntime, needed by the ONNX engines in '$ENGINES'" >&2; exit 1; }
fi
[ -n "${KOMPRESS_CPU_KERNELS:-}" ] && export KOMPRESS_CPU_KERNELS

model_args=()
[ -n "$MODEL" ] && model_args=(--model "$MODEL")
out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT

kompress_bench() { # dtype seq_len -> one JSON line on stdout, or status 3 when the dtype is rejected
  local dtype=$1 n=$2 line
  if ! line=$("$BIN" bench --random-weights --device cpu --dtype "$dtype" --seq-len "$n" --iters "$ITERS" \
    --warmup 1 --threads "$THREADS" --json "${model_args[@]}" 2>"$log"); then
    if grep -qi "invalid value '$dtype'\|unknown dtype" "$log"; then
      return 3
    fi
    echo "error: kompress bench --dtype $dtype --seq-len $n failed:" >&2
    cat "$log" >&2
    exit 1
  fi
  printf '%s\n' "$line"
}

notes=()
declare -A rejected=()
for n in $SEQ_LENS; do
  kompress_bench f32 "$n" | sed 's/^{/{"engine": "kompress", /' >>"$out"
  for dtype in $DTYPES; do
    [ -n "${rejected[$dtype]:-}" ] && continue
    set +e
    line=$(kompress_bench "$dtype" "$n")
    rc=$?
    set -e
    if [ "$rc" = 3 ]; then
      rejected[$dtype]=1
      notes+=("kompress-$dtype: skipped, this binary rejects --dtype $dtype ($(head -n1 "$log"))")
    elif [ "$rc" = 0 ]; then
      printf '%s\n' "$line" | sed "s/^{/{\"engine\": \"kompress-$dtype\", /" >>"$out"
    else
      exit "$rc"
    fi
  done
  [ "$ENGINES" = none ] && continue
  if ! (cd scripts && "$PYTHON" bench_pytorch.py --seq-len "$n" --iters "$ITERS" --warmup 1 --threads "$THREADS" \
    --engines "$ENGINES" ${MODEL:+--model "$(cd .. && realpath "$MODEL")"}) >>"$out" 2>"$log"; then
    echo "error: bench_pytorch.py failed at $n tokens:" >&2
    cat "$log" >&2
    exit 1
  fi
  grep '^\[ort_models\]' "$log" >&2 || true
done

"$PYTHON" - "$out" "$THREADS" "$ITERS" "$("$BIN" --version)" "${KOMPRESS_CPU_KERNELS:-}" "${notes[@]}" <<'PY'
import datetime, json, platform, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
threads, iters, version, kernels, notes = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
sys.path.insert(0, "scripts")
from bench_e2e import cpu_and_flags

cpu, flags = cpu_and_flags()
ort = next((r["onnxruntime"] for r in rows if "onnxruntime" in r), "-")
torch = next((r["torch"] for r in rows if "torch" in r), "-")
print(f"machine: {cpu} ({platform.machine()}); flags: {flags}; {threads} threads; "
      f"date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}")
print(f"{version}; KOMPRESS_CPU_KERNELS={kernels or '(unset: best available)'}; onnxruntime {ort}; torch {torch}; "
      f"batch 1, random weights, {iters} timed runs after 1 warm-up")
for note in notes:
    print(note)
print("| tokens | engine | median ms | min ms | / kompress f32 | / ORT fp32 |")
print("| --- | --- | --- | --- | --- | --- |")
for n in sorted({r["seq_len"] for r in rows}):
    at = [r for r in rows if r["seq_len"] == n]
    ours = next(r for r in at if r["engine"] == "kompress")["ms_median"]
    ort_fp32 = next((r["ms_median"] for r in at if r["engine"] == "onnxruntime"), None)
    for r in at:
        vs_ort = f"{r['ms_median'] / ort_fp32:.2f}x" if ort_fp32 else "-"
        print(f"| {n} | {r['engine']} | {r['ms_median']:.0f} | {r['ms_min']:.0f} | "
              f"{r['ms_median'] / ours:.2f}x | {vs_ort} |")
print("ratios: engine median / reference median (above 1: slower than the reference)")
PY
