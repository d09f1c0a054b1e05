#!/usr/bin/env bash
# Every GPU check of kompress in one run, on a CUDA machine with PyTorch (no Rust needed there):
# device selection, the parity tests on the GPU, parity with PyTorch on the same GPU (fixture models
# and a full-size model on a long text) and the benchmarks beside PyTorch (sdpa, bf16).
#
#   scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]
#
# BUNDLE_DIR holds kompress(.gz) and parity-test(.gz), as `BUNDLE=DIR scripts/build_cuda.sh` writes
# them. Results go to OUT_DIR (default /tmp/kompress-gpu), seven small files and nothing else, so that
# a remote runner that returns few files takes them all: summary.md, parity.jsonl, bench.jsonl,
# steps.log, gpu.txt, env.txt and logs.tar.gz (every step's own log). The binaries, the full-size
# model and the texts go to a scratch folder (SCRATCH, default a new temporary one).
# LD_LIBRARY_PATH must reach CUDA 13's cublas/cublasLt/cudart/curand; when it does not, the copies
# inside PyTorch's wheels are used. PYTHON (default python3) needs torch,
# transformers, tokenizers and safetensors. QUICK=1 runs fewer benchmark iterations. DEVICE=cpu
# rehearses the whole script with a CPU build (DEVICE=cpu QUICK=1 LONG_TOKENS=1000 BENCH_SHAPES="1 128").
# STEPS (default select,tests,parity,full,bench) runs a subset, e.g. to split the run across calls to a
# machine with a per-command time limit; results are then appended to what OUT_DIR already holds.
set -uo pipefail
# Paths as given, relative to where the script was started; it then runs from the repo root.
bundle=$(realpath "${1:?usage: scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]}")
out=$(realpath -m "${2:-/tmp/kompress-gpu}")
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
iters=$([ -n "${QUICK:-}" ] && echo 3 || echo 20)
device=${DEVICE:-cuda}
scratch=${SCRATCH:-$(mktemp -d)}
[ -n "${SCRATCH:-}" ] || trap 'rm -rf "$scratch"' EXIT
logs=$scratch/logs
mkdir -p "$out" "$scratch/bin" "$logs"
if [ -z "${STEPS:-}" ]; then
  : >"$out/parity.jsonl"
  : >"$out/bench.jsonl"
  : >"$out/steps.log"
fi
failed=0
want() { [[ ",${STEPS:-select,tests,parity,full,bench}," == *",$1,"* ]]; }
# Each step line starts with the seconds since the start: how a device lease's time was spent.
step() { echo "== [${SECONDS}s] $*" | tee -a "$out/steps.log"; }
check() { if "$@"; then echo "   ok" | tee -a "$out/steps.log"; else echo "   FAILED: $*" | tee -a "$out/steps.log"; failed=1; fi; }

for name in kompress parity-test; do
  if [ -f "$bundle/$name.gz" ]; then gunzip -c "$bundle/$name.gz" >"$scratch/bin/$name"; else cp "$bundle/$name" "$scratch/bin/$name"; fi
  chmod +x "$scratch/bin/$name"
done
kompress=$scratch/bin/kompress
if ! ldconfig -p 2>/dev/null | grep -q libcublas.so.13; then
  # The folders of PyTorch's wheels that hold CUDA 13 libraries (nvidia/cu13/lib, or one per library).
  lib=$("$py" -c 'import glob, os, sys
dirs = {os.path.dirname(p) for d in sys.path for p in glob.glob(os.path.join(d, "nvidia", "**", "lib*.so.1[03]"), recursive=True)}
print(":".join(sorted(dirs)))' 2>/dev/null)
  export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >"$out/env.txt"
ldd "$kompress" >>"$out/env.txt" 2>&1
fixture=tests/fixtures/models/v5
[ "$device" = cuda ] && nvidia-smi -L >"$out/gpu.txt" && cat "$out/gpu.txt"
if [ "$device" = cuda ] && want select; then
  step "device selection: auto picks CUDA, cuda:N past the count is a clear error"
  check bash -c "echo 'the quick brown fox' | '$kompress' score -v -m $fixture 2>&1 >/dev/null | tee '$logs/auto.log' | grep -q 'device cuda:0'"
  gpus=$(nvidia-smi -L | wc -l)
  check bash -c "! echo x | '$kompress' score -m $fixture --device cuda:$gpus 2>'$logs/cuda-past.log' && grep -q 'there is no CUDA device $gpus' '$logs/cuda-past.log'"
fi

if want tests; then
  step "parity tests on $device (f32 <= 1e-3, batch = singles within 1e-4, f16 <= 2e-2, bf16 <= 0.15)"
  check env KOMPRESS_TEST_DEVICE=$device KOMPRESS_REPO="$PWD" "$scratch/bin/parity-test" --nocapture --test-threads 1 \
    >"$logs/parity-test.log" 2>&1
  tail -3 "$logs/parity-test.log"
fi

# parity NAME ARGS: one reference load for all three dtypes; the JSON summary lines go to parity.jsonl.
parity() {
  local log=$logs/parity-$1.log
  shift
  "$py" scripts/parity.py --kompress "$kompress" --device $device --json --dtype f32,f16,bf16 "$@" \
    >"$log" 2>&1 && grep '^{' "$log" >>"$out/parity.jsonl"
}
if want parity; then
  step "parity with PyTorch on the same GPU: fixture models"
  "$py" -c 'import json; print(json.load(open("tests/fixtures/inputs.json"))["long"])' >"$scratch/fixture-long.txt"
  for model in v4 v5 nospan v2; do
    check parity $model --model tests/fixtures/models/$model --text-file "$scratch/fixture-long.txt"
  done
fi

if want full; then
  step "parity with PyTorch on the same GPU: full-size model, long text"
  check "$py" scripts/make_full_model.py "$scratch/full-model" >"$logs/make-full-model.log" 2>&1
  # As much of README.md as fits in LONG_TOKENS (default 8000) tokens of the model's tokenizer.
  "$py" - "$scratch/full-model/tokenizer.json" "${LONG_TOKENS:-8000}" >"$scratch/long.txt" <<'EOF'
import sys
from tokenizers import Tokenizer
tok, kept, used = Tokenizer.from_file(sys.argv[1]), [], 2
for line in open("README.md", encoding="utf-8"):
    n = sum(len(tok.encode(w, add_special_tokens=False).ids) for w in line.split())
    if used + n > int(sys.argv[2]):
        break
    kept.append(line)
    used += n
sys.stdout.write("".join(kept))
EOF
  check parity full --model "$scratch/full-model" --text-file "$scratch/long.txt"
fi

if want bench; then
  step "benchmarks: kompress vs PyTorch sdpa, bf16, random kompress-base weights"
  IFS=, read -ra shapes <<<"${BENCH_SHAPES:-1 512,32 512,1 8192}"
  for shape in "${shapes[@]}"; do
    set -- $shape
    check bash -c "'$kompress' bench --random-weights --device $device --dtype bf16 --batch $1 --seq-len $2 --iters $iters --warmup 3 --json >>'$out/bench.jsonl'"
    check bash -c "'$py' scripts/bench_pytorch.py --device $device --dtype bf16 --engines sdpa --batch $1 --seq-len $2 --iters $iters --warmup 3 >>'$out/bench.jsonl' 2>>'$logs/bench-pytorch.log'"
  done
fi

step "summary"
"$py" scripts/gpu_summary.py "$out" | tee "$out/summary.md"
tar czf "$out/logs.tar.gz" -C "$scratch" logs
exit $failed
