"""The Python binding's cost and throughput: KompressRunner (the kompress-rs wheel) beside the CLI, and
Ray Data's splits of a 2-core machine.

Run with the Python that has the wheel installed (`pip install ./bindings/python "ray[data]"`).

- `overhead`: the first `compress` of a fresh process, model loaded, for the first --words words of TEXT:
  `KompressRunner.compress` (timed in Python around the call) against `kompress compress -v` (the
  seconds it prints, from after the model load to the end: the library's own time). Same model, dtype,
  threads and options (`--compat headroom --mode threshold`, as scripts/bench_e2e.py); each rep a fresh
  process, the two alternating; medians and their ratio. Also each whole process's CPU seconds (user +
  system, all threads: start-up, model load and compression), less swayed by other load on the machine.
- `ray`: a corpus of --texts texts of about --text-words words cut from TEXT, compressed (1) by one
  process, one runner with all --threads threads, (2) by examples/ray_compress.py with 2 actors x 1
  thread, (3) with 1 actor x 2 threads, all in batches of 16 texts: wall time from the model load to
  the last result (Ray's own start-up excluded: the example prints its pipeline's time, actors' model
  loads and the written results included), words per second.
- `threads`: --texts/2 of those texts compressed one after the other by one runner, then by two Python
  threads sharing it (the GIL released): the speed-up, and whether the results are the same.

    python scripts/bench_python.py [TEXT] --model DIR [--words 3000] [--reps 3] [--threads 2]
        [--dtypes f32,int8] [--parts overhead,ray,threads] [--texts 48] [--text-words 120]

TEXT defaults to /usr/share/common-licenses/GPL-3. KOMPRESS_BIN defaults to target/release/kompress.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPTIONS = {"compat": "headroom", "mode": "threshold"}
FLAGS = ["--compat", "headroom", "--mode", "threshold"]

RUNNER = r"""
import json, sys, time
from kompress import KompressRunner
model, dtype, path, opts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
runner = KompressRunner(model=model, device="cpu", dtype=dtype)
text = open(path).read()
t = time.perf_counter()
r = runner.compress(text, **opts)
print(json.dumps({"seconds": time.perf_counter() - t, "kept": r.kept_words, "json": r.to_json()}))
"""


def env(threads: int) -> dict:
    return {**os.environ, "RAYON_NUM_THREADS": str(threads)}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def python_run(model, dtype, path, threads):
    before = children_cpu()
    out = subprocess.run([sys.executable, "-c", RUNNER, model, dtype, path, json.dumps(OPTIONS)],
                         capture_output=True, text=True, env=env(threads), check=True)
    return {**json.loads(out.stdout), "cpu": children_cpu() - before}


def cli_run(binary, model, dtype, path, threads):
    before = children_cpu()
    out = subprocess.run([binary, "compress", "-m", model, "--device", "cpu", "--dtype", dtype, "--threads",
                          str(threads), "--json", "-v", *FLAGS, path], capture_output=True, text=True, check=True)
    seconds = float(out.stderr.strip().splitlines()[-1].rsplit(" in ", 1)[1].split()[0])
    return {"seconds": seconds, "json": out.stdout.strip(), "cpu": children_cpu() - before}


def overhead(args, binary, text_path):
    for dtype in args.dtypes.split(","):
        py, cli = [], []
        for _ in range(args.reps):
            cli.append(cli_run(binary, args.model, dtype, text_path, args.threads))
            py.append(python_run(args.model, dtype, text_path, args.threads))
        same = all(json.loads(p["json"]) == {k: v for k, v in json.loads(c["json"]).items() if k != "input"}
                   for p, c in zip(py, cli))
        p = statistics.median(r["seconds"] for r in py)
        c = statistics.median(r["seconds"] for r in cli)
        print(json.dumps({"part": "overhead", "dtype": dtype, "words": args.words, "reps": args.reps,
                          "python_s": [round(r["seconds"], 3) for r in py],
                          "cli_s": [round(r["seconds"], 3) for r in cli],
                          "python_median_s": round(p, 3), "cli_median_s": round(c, 3),
                          "python_over_cli": round(p / c, 3),
                          "python_process_cpu_s": [round(r["cpu"], 2) for r in py],
                          "cli_process_cpu_s": [round(r["cpu"], 2) for r in cli],
                          "cpu_python_over_cli": round(statistics.median(r["cpu"] for r in py)
                                                       / statistics.median(r["cpu"] for r in cli), 3),
                          "identical_results": same}), flush=True)


def ray_table(args, words, tmp):
    corpus = os.path.join(tmp, "corpus.jsonl")
    texts = [" ".join(words[i:i + args.text_words]) for i in range(0, args.texts * args.text_words, args.text_words)]
    with open(corpus, "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, "text": t}) + "\n")
    n_words = sum(len(t.split()) for t in texts)
    dtype = args.dtypes.split(",")[0]
    one = r"""
import json, sys, time
from kompress import KompressRunner
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
t = time.perf_counter()
runner = KompressRunner(model=sys.argv[2], device="cpu", dtype=sys.argv[3], threads=int(sys.argv[4]))
for i in range(0, len(texts), 16):
    runner.compress_batch(texts[i:i + 16])
print(json.dumps({"seconds": time.perf_counter() - t}))
"""
    rows = []
    out = subprocess.run([sys.executable, "-c", one, corpus, args.model, dtype, str(args.threads)],
                         capture_output=True, text=True, env=env(args.threads), check=True)
    rows.append(("1 process, 1 runner x %d threads" % args.threads, json.loads(out.stdout)["seconds"]))
    for actors, threads in ((2, 1), (1, 2)):
        dest = os.path.join(tmp, f"out-{actors}x{threads}")
        cmd = [sys.executable, os.path.join(ROOT, "examples", "ray_compress.py"), corpus, dest, "--model", args.model,
               "--dtype", dtype, "--actors", str(actors), "--threads", str(threads), "--batch-size", "16",
               "--num-cpus", str(actors * threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        rows.append((f"Ray, {actors} actor(s) x {threads} thread(s)", json.loads(out.stdout.strip().splitlines()[-1])["seconds"]))
    for name, s in rows:
        print(json.dumps({"part": "ray", "dtype": dtype, "setup": name, "texts": len(texts), "words": n_words,
                          "seconds": round(s, 2), "words_per_s": round(n_words / s, 1)}), flush=True)


SHARED = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from kompress import KompressRunner
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
runner = KompressRunner(model=sys.argv[2], device="cpu", dtype=sys.argv[3])
runner.compress(texts[0])
t = time.perf_counter()
serial = [runner.compress(x).to_json() for x in texts]
one = time.perf_counter() - t
t = time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    shared = list(pool.map(lambda x: runner.compress(x).to_json(), texts))
two = time.perf_counter() - t
print(json.dumps({"serial_s": one, "two_threads_s": two, "same": serial == shared}))
"""


def shared_runner(args, words, tmp):
    corpus = os.path.join(tmp, "shared.jsonl")
    with open(corpus, "w") as f:
        for i in range(args.texts // 2):
            f.write(json.dumps({"text": " ".join(words[i * args.text_words:(i + 1) * args.text_words])}) + "\n")
    for dtype in args.dtypes.split(","):
        out = subprocess.run([sys.executable, "-c", SHARED, corpus, args.model, dtype], capture_output=True,
                             text=True, env=env(args.threads), check=True)
        r = json.loads(out.stdout)
        print(json.dumps({"part": "threads", "dtype": dtype, "texts": args.texts // 2, "serial_s": round(r["serial_s"], 2),
                          "two_threads_s": round(r["two_threads_s"], 2),
                          "speedup": round(r["serial_s"] / r["two_threads_s"], 2), "identical_results": r["same"]}),
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("text", nargs="?", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--model", required=True)
    ap.add_argument("--words", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", default="f32,int8")
    ap.add_argument("--parts", default="overhead,ray")
    ap.add_argument("--texts", type=int, default=48)
    ap.add_argument("--text-words", type=int, default=120)
    args = ap.parse_args()
    binary = os.environ.get("KOMPRESS_BIN", os.path.join(ROOT, "target", "release", "kompress"))
    words = open(args.text).read().split()
    with tempfile.TemporaryDirectory() as tmp:
        # Whole lines up to --words words, so that the text keeps its layout.
        lines, count = [], 0
        for line in open(args.text).read().splitlines():
            if count >= args.words:
                break
            lines.append(line)
            count += len(line.split())
        text_path = os.path.join(tmp, "text.txt")
        with open(text_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        args.words = count
        if "overhead" in args.parts:
            overhead(args, binary, text_path)
        if "ray" in args.parts:
            ray_table(args, words, tmp)
        if "threads" in args.parts:
            shared_runner(args, words, tmp)


if __name__ == "__main__":
    main()
