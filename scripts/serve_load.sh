#!/usr/bin/env bash
# Load benchmark of `kompress serve` on loopback with wrk, beside `kompress compress` on the same texts
# in one process. Prints a Markdown table (requests/s, words/s, p50/p99 per client count), /healthz
# latency under overload, and peak RSS under a flood of maximum-size bodies.
#
#   scripts/serve_load.sh MODEL_DIR [SECONDS_PER_RUN]
#
# MODEL_DIR: e.g. the kompress-base-shaped random model of scripts/make_full_model.py. Needs wrk
# (`apt-get install wrk`), curl and python3. BIN (default target/release/kompress), PORT (18080),
# CLIENTS ("1 4 16 64"), OUT (a temporary folder) may be set.
set -euo pipefail
MODEL=$1
SECONDS_PER_RUN=${2:-20}
BIN=${BIN:-target/release/kompress}
PORT=${PORT:-18080}
CLIENTS=${CLIENTS:-1 4 16 64}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
URL=http://127.0.0.1:$PORT
WORDS=100

# One ~100-word text of log-like prose (one chunk), as every request's body and as a 16-line corpus.
python3 - "$OUT" "$WORDS" <<'PY'
import json, random, sys
out, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
vocab = ("the deployment of service api gateway failed because config file /etc/app/prod.yaml had 3 typos and "
         "the on-call engineer never got paged so we must not retry until the backup finished at 02:00 UTC "
         "please check logs in ./var/log/app.log for error 0x1f and do not delete anything").split()
text = " ".join(random.choice(vocab) for _ in range(n))
open(f"{out}/text.txt", "w").write(text)
open(f"{out}/body.json", "w").write(json.dumps({"content": text, "target_ratio": None}))
open(f"{out}/texts.jsonl", "w").write("".join(json.dumps(text) + "\n" for _ in range(16)))
open(f"{out}/one.jsonl", "w").write(json.dumps(text) + "\n")
# Just under the 16 MiB default limit: refused with 413 by the queue bound after it is read.
words = (text + " ") * (16_000_000 // (len(text) + 1))
open(f"{out}/huge.json", "w").write(json.dumps({"content": words}))
PY
cat > "$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$OUT/body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
  "flags: $(grep -m1 -o -E 'avx512f|avx2' /proc/cpuinfo | sort -u | xargs); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

seconds() { python3 -c 'import sys,time; t=time.time(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(time.time()-t)' "$@"; }
for bs in 1 8; do
  t16=$(seconds "$BIN" compress -m "$MODEL" --device cpu --jsonl --batch-size "$bs" "$OUT/texts.jsonl")
  t1=$(seconds "$BIN" compress -m "$MODEL" --device cpu --jsonl --batch-size "$bs" "$OUT/one.jsonl")
  python3 -c "import sys; t16,t1=map(float,sys.argv[1:3]); per=(t16-t1)/15; print(f'CLI --jsonl --batch-size $bs: {per*1000:.0f} ms per text ({t16:.1f} s for 16, {t1:.1f} s for 1: model load excluded), {$WORDS/per:.0f} words/s')" "$t16" "$t1"
done

serve() {
  "$BIN" serve -m "$MODEL" --device cpu --port "$PORT" "$@" 2>"$OUT/serve.log" &
  SERVER=$!
  until curl -sf "$URL/readyz" >/dev/null; do sleep 0.2; done
}
stop() { kill -TERM "$SERVER"; wait "$SERVER"; }

row() {  # clients, wrk output file, label
  python3 - "$1" "$2" "$SECONDS_PER_RUN" "$WORDS" "$3" <<'PY'
import re, sys
clients, path, secs, words, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = open(path).read()
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
timeouts = int(m.group(1)) if (m := re.search(r"timeout (\d+)", text)) else 0
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
ok = total - bad
print(f"| {label} | {clients} | {ok / secs:.2f} | {ok * words / secs:.0f} | {lat.get('50', '-')} | {lat.get('99', '-')} | {bad} | {timeouts} |")
PY
}

echo
echo "| server | clients | requests/s (200) | words/s | p50 | p99 | non-200 | wrk timeouts |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
serve
for c in $CLIENTS; do
  wrk -t "$(( c < 4 ? c : 4 ))" -c "$c" -d "${SECONDS_PER_RUN}s" --timeout 60s --latency -s "$OUT/post.lua" "$URL/compress" >"$OUT/wrk_$c.txt"
  row "$c" "$OUT/wrk_$c.txt" "defaults"
done
stop
serve --batch-tokens 4096 --batch-wait-ms 20
wrk -t 4 -c 16 -d "${SECONDS_PER_RUN}s" --timeout 60s --latency -s "$OUT/post.lua" "$URL/compress" >"$OUT/wrk_batch.txt"
row 16 "$OUT/wrk_batch.txt" "--batch-tokens 4096 --batch-wait-ms 20"
stop

echo
serve
wrk -t 4 -c 64 -d "$(( SECONDS_PER_RUN + 5 ))s" --timeout 60s -s "$OUT/post.lua" "$URL/compress" >"$OUT/wrk_flood.txt" &
FLOOD=$!
sleep 3
wrk -t 1 -c 4 -d "${SECONDS_PER_RUN}s" --latency "$URL/healthz" >"$OUT/wrk_healthz.txt"
wait "$FLOOD"
echo "/healthz under a 64-client compress flood: $(grep -E '^\s+(50|99)%' "$OUT/wrk_healthz.txt" | xargs)," \
  "$(grep -o '[0-9]* requests in' "$OUT/wrk_healthz.txt")"
rss() { grep -E "^$1:" "/proc/$SERVER/status" | awk '{print $2 / 1024 " MiB"}'; }
echo "RSS before the body flood: $(rss VmRSS) (peak so far $(rss VmHWM))"
codes=$(seq 32 | xargs -P 32 -I{} curl -s -o /dev/null -w '%{http_code}\n' --data-binary "@$OUT/huge.json" "$URL/compress" | sort | uniq -c | xargs)
echo "32 concurrent $(stat -c %s "$OUT/huge.json")-byte bodies: answers $codes; peak RSS $(rss VmHWM)"
stop
echo "wrk outputs and the server log: $OUT"
