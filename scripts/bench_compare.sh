#!/usr/bin/env bash
# Runs `kompress bench` and the PyTorch/ONNX Runtime peers (scripts/bench_pytorch.py) in one go, on the
# same machine, shape and thread count, and prints a table of medians and ratios.
#
#   PYTHON=/path/to/venv/bin/python scripts/bench_compare.sh [SEQ_LENS] [THREADS] [ENGINES] [MODEL_DIR]
#   e.g. scripts/bench_compare.sh "128 512 2048" 2 sdpa,eager,onnx
#
# Random weights of kompress-base's shape (or MODEL_DIR's config.json); f32; batch 1.
set -euo pipefail
cd "$(dirname "$0")/.."
SEQ_LENS=${1:-"128 512 2048"}
THREADS=${2:-2}
ENGINES=${3:-sdpa,eager,onnx}
MODEL=${4:-}
PYTHON=${PYTHON:-python3}
ITERS=${ITERS:-5}
cargo build --release --quiet
BIN=target/release/kompress
model_args=()
[ -n "$MODEL" ] && model_args=(--model "$MODEL")
out=$(mktemp)
for n in $SEQ_LENS; do
  "$BIN" bench --random-weights --device cpu --dtype f32 --seq-len "$n" --iters "$ITERS" --warmup 1 \
    --threads "$THREADS" --json "${model_args[@]}" | sed 's/^{/{"engine": "kompress", /' >>"$out"
  (cd scripts && "$PYTHON" bench_pytorch.py --seq-len "$n" --iters "$ITERS" --warmup 1 --threads "$THREADS" \
    --engines "$ENGINES" ${MODEL:+--model "$(cd .. && realpath "$MODEL")"} 2>/dev/null) >>"$out"
done
"$PYTHON" - "$out" <<'PY'
import json, sys, platform, datetime, subprocess
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
print(f"machine: {cpu}, {rows[0]['threads']} threads; date: {datetime.date.today()}")
print(f"| tokens | engine | median ms | min ms | kompress speed-up |")
print(f"| --- | --- | --- | --- | --- |")
for n in sorted({r["seq_len"] for r in rows}):
    ours = next(r for r in rows if r["seq_len"] == n and r["engine"] == "kompress")
    for r in [r for r in rows if r["seq_len"] == n]:
        ratio = r["ms_median"] / ours["ms_median"]
        print(f"| {n} | {r['engine']} | {r['ms_median']:.0f} | {r['ms_min']:.0f} | {ratio:.2f}x |")
PY
rm -f "$out"
