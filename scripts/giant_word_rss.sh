#!/usr/bin/env bash
# Peak resident memory of `kompress serve` under N concurrent worst-case requests: a 10 MB word without
# whitespace between 140 ordinary words (issue 23). Samples VmRSS/VmHWM from /proc every 20 ms.
#   scripts/giant_word_rss.sh [MODEL_DIR] [N] [WORD_BYTES]
set -euo pipefail
model=${1:-tests/fixtures/models/v5}
n=${2:-4}
bytes=${3:-10000000}
bin=${KOMPRESS:-target/release/kompress}
port=${PORT:-18473}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$dir/body.json" "$bytes" ${OPTIONS:+"$OPTIONS"} <<'PY'
import json, sys
words = " ".join(["the quick brown fox jumps over the lazy dog"] * 8)
body = {"text": f"{words}\n{'a' * int(sys.argv[2])}\n{words}\n"}
if len(sys.argv) > 3: body["options"] = json.loads(sys.argv[3])
json.dump(body, open(sys.argv[1], "w"))
PY
"$bin" serve --model "$model" --port "$port" 2>"$dir/log" &
pid=$!
until curl -sf "localhost:$port/readyz" >/dev/null; do sleep 0.2; done
# One small request first, so that the base includes what the first request loads (the LLM-token
# counter's vocabulary).
curl -s -o /dev/null "localhost:$port/v1/compress" -d '{"text": "warm up"}'
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MiB  ", $1, $2 / 1024}' "/proc/$pid/status"; }
echo "before: $(rss)"
peak=0
( while kill -0 "$pid" 2>/dev/null; do
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; sleep 0.02
  done ) >"$dir/samples" &
sampler=$!
for i in $(seq "$n"); do
  curl -s -o "$dir/out$i" -w "request $i: %{http_code} in %{time_total} s\n" \
    "localhost:$port/v1/compress" -H 'Content-Type: application/json' --data-binary "@$dir/body.json" &
done
wait $(jobs -p | grep -v "^$pid$" | grep -v "^$sampler$") 2>/dev/null || true
sleep 0.5
kill "$sampler" 2>/dev/null || true
for i in $(seq "$n"); do
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  unscored", r["unscored_words"], "compressed bytes", len(r["compressed"]))' "$dir/out$i"
done
peak=$(sort -n "$dir/samples" | tail -1)
echo "after:  $(rss)"
echo "peak sampled VmRSS: $((peak / 1024)) MiB"
