"""End-to-end compression time: Headroom 0.42's KompressCompressor (ONNX Runtime) beside `kompress compress`.

One long real text, one model directory, the same keep rule on both sides: Headroom's ONNX backend
(`_OnnxModel.get_keep_mask`: final score > 0.5, chunks of 350 words and at most 512 tokens, one chunk
per forward) against `kompress compress --compat headroom --mode threshold` (the same rule, chunking
and output; docs/COMPRESS.md). Engines run alternating, --reps times each, every run a fresh process:

- `headroom-ort-fp32`, `headroom-ort-int8-wo`, `headroom-ort-int8-dyn`: a Python process that imports
  Headroom, opens an ONNX Runtime session on that form of the model (exported from the model directory
  by scripts/ort_models.py and cached; export and quantization are done before any timing) with
  Headroom's own session options (`_onnx_session_options`: HEADROOM_KOMPRESS_ONNX_INTRA_THREADS =
  --threads, inter-op 1, no idle spinning, no CPU arena) and its smoke run, loads the model directory's
  tokenizer, and calls `KompressCompressor(KompressConfig(enable_ccr=False)).compress(text)` once, with
  Headroom's 20 s deadline and time budget off (else it stops scoring at 20 s and keeps the rest).
- `kompress-f32`, `kompress-int8` (also `kompress-int8-wo`, `-int8-wo-g128`, `-bf16`, `-auto`: any
  `--dtype`): `$KOMPRESS_BIN compress -m MODEL --threads N --compat headroom
  --mode threshold --dtype f32|int8 --json -v TEXT` (int8 is skipped, with a line saying so, when the
  binary rejects `--dtype int8`). Its chunk batch size is the binary's default unless --batch-size.

Three times per run, medians over the reps: `whole` = the process's wall time, start to exit (Python
start, imports, session or weights load, tokenizer, compression; the same work a cold CLI call does);
`whole CPU` = that process's user + system seconds over all its threads (less swayed by other load);
`compress` = the compression call alone, the model already loaded (Headroom: `compress()` timed
inside the worker; kompress: the seconds `-v` prints, measured from after the model load to the end).
Also printed: words in/out, the ratio of each engine's median to kompress f32's and to Headroom
ORT fp32's, and whether each output (the kept words, rebuilt as text) is identical to Headroom ORT
fp32's, with the count of differing words when not.

    python scripts/bench_e2e.py [TEXT | --words 200,3000,10000] [--model DIR] [--reps 3] [--threads 2]
        [--engines headroom-ort-fp32,kompress-f32,kompress-int8,headroom-ort-int8-wo,headroom-ort-int8-dyn]
        [--batch-size N] [--cold] [--serve N]

`--words 200,3000,10000` runs the whole comparison once per size on texts of exactly that many words,
made from Debian's licences (`licence_text`: the lines of GPL-3, Apache-2.0, GPL-2, LGPL-2.1, MPL-2.0,
GFDL-1.3 and Artistic in that order, the last line cut at the word count; written to a temporary
folder, the same on every Debian), then prints one summary table over the sizes with each engine's
whole time and CPU seconds as a ratio of Headroom ORT fp32's (the issue's targets: kompress f32 at
most 0.85x at every size, the fastest accurate form at most 0.5x).

Each kompress run also reports its phases from its `-v` lines: `load` (the model: `open` the
checkpoint, build the `network` (read and lay out every tensor), the `tokenizer` on a thread of its
own), the token counter's vocabulary (`counter`, on a thread of its own during the load), `compress`,
and `rest` = whole - load - compress (process start, reading the text, writing, exit). Headroom's
`load` is the worker's time before `compress()`: Python start, imports, session, smoke run, tokenizer.

`--cold` evicts, before every run, the model directory's files, the engine's ONNX file and the
kompress binary from the page cache with `posix_fadvise(POSIX_FADV_DONTNEED)` (no root needed; it
drops clean pages of files no process maps; Python and its libraries are not evicted), so each run
reads the checkpoint from disk. Without it the cache is warm after the first run.

`--serve N` (instead of the one-shot runs): starts `kompress serve` (`--compat headroom --mode
threshold`, the same `--dtype` as each kompress engine) on a free loopback port, waits for `/readyz`,
and sends the text N + 1 times to Headroom's route `POST /compress` one after the other; beside it a
Headroom worker calls `compress(text)` N + 1 times in one process (in-process, model loaded). Printed:
the first call (first-call allocation included) and the median of the other N, and that median as a
ratio of Headroom's in-process median (the issue's target: at most 0.5x for a 200-word text).

Engines `python-f32` and `python-int8` run `KompressRunner.compress(text, compat="headroom",
mode="threshold")` from the kompress-rs wheel (bindings/python) in the Python named by $KOMPRESS_PYTHON
(a fresh process each run, as the others; `compress` is timed around the call).

TEXT defaults to /usr/share/common-licenses/GPL-3 (about 5,600 words). --model defaults to a
kompress-base-shaped model with seeded random weights written by scripts/make_full_model.py into
$KOMPRESS_ONNX_CACHE/full-model (made once). KOMPRESS_BIN defaults to target/release/kompress, built
with `cargo build --release --quiet` when that default is used.
Requirements: torch, transformers, tokenizers, safetensors, onnx, onnxruntime, headroom-ai 0.42 in this
Python (`pip install headroom-ai==0.42.0`); no network.
"""

import argparse
import difflib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

HEADROOM_FORMS = {"headroom-ort-fp32": "fp32", "headroom-ort-int8-wo": "int8-wo", "headroom-ort-int8-dyn": "int8-dyn"}
KOMPRESS_DTYPES = {
    f"kompress-{d}": d for d in ("f32", "int8", "int8-wo", "int8-wo-g128", "bf16", "auto")
}
# KompressRunner from the kompress-rs wheel (bindings/python), in the Python of $KOMPRESS_PYTHON.
WHEEL_DTYPES = {"python-f32": "f32", "python-int8": "int8"}
WHEEL_WORKER = r"""
import json, os, sys, time
os.environ.setdefault("RAYON_NUM_THREADS", sys.argv[4])
from kompress import KompressRunner
runner = KompressRunner(model=sys.argv[1], device="cpu", dtype=sys.argv[2], threads=int(sys.argv[4]))
text = open(sys.argv[3]).read()
t = time.perf_counter()
r = runner.compress(text, compat="headroom", mode="threshold")
print(json.dumps({"compress_s": time.perf_counter() - t, "compressed": r.compressed,
                  "words_in": r.original_words, "words_out": r.kept_words, "passthrough": r.passthrough}))
"""
DEFAULT_ENGINES = "headroom-ort-fp32,kompress-f32,kompress-int8,headroom-ort-int8-wo,headroom-ort-int8-dyn"
LICENCES = ["GPL-3", "Apache-2.0", "GPL-2", "LGPL-2.1", "MPL-2.0", "GFDL-1.3", "Artistic"]


def licence_text(n_words: int, folder: str) -> str:
    """A file of exactly n_words words: the licences' lines in order, the last one cut (see the header)."""
    lines, count = [], 0
    for name in LICENCES:
        with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8") as f:
            for line in f.read().splitlines():
                words = line.split()
                if count + len(words) >= n_words:
                    lines.append(" ".join(words[: n_words - count]))
                    path = os.path.join(folder, f"licences-{n_words}-words.txt")
                    with open(path, "w", encoding="utf-8") as out:
                        out.write("\n".join(lines) + "\n")
                    return path
                lines.append(line)
                count += len(words)
    sys.exit(f"error: the licences hold only {count} words, fewer than {n_words}")


def evict(paths: list[str]) -> None:
    """Drops these files' clean, unmapped pages from the page cache (see --cold)."""
    for path in paths:
        if not os.path.isfile(path):
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def headroom_compressor(kc, model, tokenizer):
    """Headroom's `KompressCompressor` on this model (CCR off), and the list into which each `compress`
    call appends its kept word indices (read by wrapping `_join_kept_words_by_line`)."""
    kc._load_kompress = lambda *a, **k: (model, tokenizer, "onnx")
    kept: list[list[int]] = []
    join = kc._join_kept_words_by_line

    def spy(words, line_ids, kept_ids):
        kept.append(sorted(kept_ids))
        return join(words, line_ids, kept_ids)

    kc._join_kept_words_by_line = spy
    comp = kc.KompressCompressor(kc.KompressConfig(device="cpu", enable_ccr=False))

    def fail(exc):  # Headroom turns inference errors into passthrough: surface them instead.
        raise exc

    comp._record_inference_failure = fail
    return comp, kept


def headroom_worker(onnx_path: str, model_dir: str, text_path: str, threads: int, calls: int = 1) -> None:
    """Runs in its own process: load as Headroom does, compress `calls` times, print a JSON result
    (`compress_s` is the first call's; `calls_s` lists every call's)."""
    started = time.perf_counter()
    os.environ["HEADROOM_KOMPRESS_ONNX_INTRA_THREADS"] = str(threads)
    os.environ["HEADROOM_KOMPRESS_ONNX_INTER_THREADS"] = "1"
    os.environ["HEADROOM_COMPRESSION_DEADLINE_MS"] = "0"
    os.environ["HEADROOM_KOMPRESS_TIME_BUDGET_SECONDS"] = "0"
    import onnxruntime as ort
    from transformers import PreTrainedTokenizerFast

    import headroom.transforms.kompress_compressor as kc

    session = ort.InferenceSession(onnx_path, kc._onnx_session_options(ort), providers=["CPUExecutionProvider"])
    kc._smoke_run(session)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    tokenizer.pad_token = "[PAD]"
    comp, kept = headroom_compressor(kc, kc._OnnxModel(session), tokenizer)
    text = read_text(text_path)
    load_s = time.perf_counter() - started
    calls_s = []
    for _ in range(calls):
        t0 = time.perf_counter()
        result = comp.compress(text)
        calls_s.append(time.perf_counter() - t0)
    compress_s = calls_s[0]
    n_words = len(kc._words_by_line(text)[0])
    print(json.dumps({"load_s": load_s, "compress_s": compress_s, "calls_s": calls_s, "compressed": result.compressed,
                      "words_in": n_words, "words_out": len(kept[0]) if kept else n_words,
                      "passthrough": not kept}))


def timed_run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs cmd; returns it with its wall seconds and its CPU seconds (user + system, all its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_headroom(form_path: str, model_dir: str, text: str, threads: int, calls: int = 1) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--headroom-worker", form_path, model_dir, text, str(threads),
           str(calls)]
    proc, whole, cpu = timed_run(cmd)
    if proc.returncode != 0:
        sys.exit(f"error: the Headroom worker failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["whole_s"], out["cpu_s"] = whole, cpu
    return out


def run_kompress(binary: str, dtype: str, model_dir: str, text: str, threads: int, batch_size) -> dict | None:
    """None when the binary rejects the dtype."""
    cmd = [binary, "compress", "-m", model_dir, "--device", "cpu", "--dtype", dtype, "--threads", str(threads),
           "--compat", "headroom", "--mode", "threshold", "--json", "-v", text]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    proc, whole, cpu = timed_run(cmd)
    if proc.returncode != 0:
        if re.search(rf"invalid value '{dtype}'|unknown dtype", proc.stderr):
            return None
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    seconds = re.findall(r" in ([0-9.]+) s$", proc.stderr, re.MULTILINE)
    out = {"whole_s": whole, "cpu_s": cpu, "compress_s": float(seconds[-1]) if seconds else None,
           "compressed": result["compressed"], "words_in": result["original_words"],
           "words_out": result["kept_words"], "passthrough": result.get("passthrough", False)}
    return out | phases(proc.stderr)


def phases(stderr: str) -> dict:
    """The load's parts from kompress's `-v` lines (None for a binary that does not print them)."""
    load = re.search(r"loaded in ([0-9.]+) s \(checkpoint open ([0-9.]+) s, layers read and laid out ([0-9.]+) s, "
                     r"tokenizer ([0-9.]+) s", stderr)
    counter = re.search(r"token counter built in ([0-9.]+) s", stderr)
    names = ["load_s", "open_s", "network_s", "tokenizer_s"]
    out = {k: float(v) for k, v in zip(names, load.groups())} if load else dict.fromkeys(names)
    out["counter_s"] = float(counter.group(1)) if counter else None
    return out


def run_wheel(dtype: str, model_dir: str, text: str, threads: int) -> dict:
    python = os.environ.get("KOMPRESS_PYTHON")
    if not python:
        sys.exit("error: the python-* engines need KOMPRESS_PYTHON: a Python with the kompress-rs wheel installed")
    proc, whole, cpu = timed_run([python, "-c", WHEEL_WORKER, model_dir, dtype, text, str(threads)])
    if proc.returncode != 0:
        sys.exit(f"error: the KompressRunner worker failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["whole_s"], out["cpu_s"] = whole, cpu
    return out


def default_model() -> str:
    import ort_models

    path = os.path.join(ort_models.cache_root(), "full-model")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        print(f"writing a full-size random model to {path} (once)", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(HERE, "make_full_model.py"), path], check=True)
    return path


def kompress_binary() -> str:
    binary = os.environ.get("KOMPRESS_BIN")
    if binary:
        return binary
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target/release/kompress")


def cpu_and_flags() -> tuple[str, str]:
    """The CPU's model name and those of its SIMD flags that matter here (bench_compare.sh prints them too)."""
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    present = set((info.get("flags") or info.get("Features") or "").split())
    wanted = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2"]
    flags = " ".join(f for f in wanted if f in present) or "none of the listed"
    cpu = info.get("model name") or info.get("CPU part") or platform.processor() or "unknown CPU"
    return cpu, flags


def machine_line(threads: int) -> str:
    """CPU model, its SIMD flags, threads and KOMPRESS_CPU_KERNELS (as bench_compare.sh)."""
    cpu, flags = cpu_and_flags()
    kernels = os.environ.get("KOMPRESS_CPU_KERNELS") or "(unset: best available)"
    return f"machine: {cpu}; flags: {flags}; {threads} threads; KOMPRESS_CPU_KERNELS={kernels}"


def fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_calls(binary: str, dtype: str, model_dir: str, text_path: str, threads: int, calls: int) -> dict:
    """`kompress serve` on a free loopback port: `calls` POST /compress of the text, one after another."""
    import urllib.request

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [binary, "serve", "-m", model_dir, "--device", "cpu", "--dtype", dtype, "--threads", str(threads),
           "--compat", "headroom", "--mode", "threshold", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                sys.exit(f"error: {' '.join(cmd)} never became ready")
            time.sleep(0.05)
        body = json.dumps({"content": read_text(text_path)}).encode()
        calls_s, answer = [], None
        for _ in range(calls):
            req = urllib.request.Request(base + "/compress", data=body, headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=600) as r:
                answer = json.loads(r.read())
            calls_s.append(time.perf_counter() - t0)
        return {"calls_s": calls_s, "compressed": answer["compressed"]}
    finally:
        server.terminate()
        server.wait(timeout=60)


def serve_table(args, engines, paths, binary, model_dir, text_path) -> None:
    """--serve: loopback requests to `kompress serve` beside Headroom's in-process calls."""
    calls = args.serve + 1
    rows = {}
    for engine in engines:
        if engine in HEADROOM_FORMS:
            rows[engine] = run_headroom(paths[engine], model_dir, text_path, args.threads, calls)
        elif engine in KOMPRESS_DTYPES:
            rows[engine] = serve_calls(binary, KOMPRESS_DTYPES[engine], model_dir, text_path, args.threads, calls)
        print(f"{engine}: calls {', '.join(f'{c:.3f}' for c in rows[engine]['calls_s'])} s", file=sys.stderr, flush=True)
    ref = rows.get("headroom-ort-fp32")
    ref_median = statistics.median(ref["calls_s"][1:]) if ref else None
    print(f"serve: {args.serve} calls after a first one; kompress through `kompress serve` (POST /compress on "
          f"loopback, HTTP included), Headroom in-process (`compress()`, model loaded)")
    print("| engine | first call s | median of the next s | median / Headroom ORT fp32 in-process | output = Headroom ORT fp32 |")
    print("| --- | --- | --- | --- | --- |")
    for engine, row in rows.items():
        median = statistics.median(row["calls_s"][1:])
        ratio = f"{median / ref_median:.2f}x" if ref_median else "-"
        same = "-" if ref is None else ("identical" if row["compressed"] == ref["compressed"] else "differs")
        print(f"| {engine} | {row['calls_s'][0]:.3f} | {median:.3f} | {ratio} | {same} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--headroom-worker":
        headroom_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("text", nargs="?")
    ap.add_argument("--model")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default=DEFAULT_ENGINES)
    ap.add_argument("--batch-size", type=int, help="kompress's --batch-size (default: the binary's own)")
    ap.add_argument("--words", help="comma-separated word counts: one run per size on licence texts (see the header)")
    ap.add_argument("--cold", action="store_true", help="evict model, ONNX file and binary from the page cache before every run")
    ap.add_argument("--serve", type=int, metavar="N", help="time N requests to `kompress serve` beside Headroom in-process")
    args = ap.parse_args()
    if args.words and args.text:
        ap.error("give a TEXT or --words, not both")
    args.text = args.text or "/usr/share/common-licenses/GPL-3"
    sizes = []
    if args.words:
        try:
            sizes = [int(w) for w in args.words.split(",")]
        except ValueError:
            ap.error(f"--words {args.words}: expected comma-separated whole numbers, such as 200,3000,10000")
        if not sizes or min(sizes) < 1:
            ap.error(f"--words {args.words}: every size must be at least 1")
    if args.serve is not None and args.serve < 1:
        ap.error(f"--serve {args.serve}: at least 1 call")
    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in HEADROOM_FORMS and e not in KOMPRESS_DTYPES and e not in WHEEL_DTYPES]
    if unknown:
        ap.error(f"unknown engine(s) {', '.join(unknown)}: expected {DEFAULT_ENGINES}")
    if not sizes and not os.path.isfile(args.text):
        sys.exit(f"error: no such text file {args.text}")
    try:
        import headroom.transforms.kompress_compressor  # noqa: F401
        import onnxruntime

        from kompress_ref import load_dir
    except ImportError as e:
        sys.exit(f"error: {sys.executable} lacks a requirement ({e}); see this script's header")
    import ort_models

    model_dir = os.path.abspath(args.model or default_model())
    binary = kompress_binary()
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    key = ort_models.key_of(config, ort_models.weights_origin(model_dir), extra_outputs=False)
    paths = {}
    for engine in engines:
        if engine in HEADROOM_FORMS:  # exported and quantized on a cache miss only, before any timing
            paths[engine] = ort_models.ensure(HEADROOM_FORMS[engine], key, lambda: load_dir(model_dir)[0])
    if sizes:
        import tempfile

        folder = tempfile.mkdtemp(prefix="kompress-e2e-")
        texts = [licence_text(n, folder) for n in sizes]
    else:
        texts = [args.text]
    summary = []
    for text_path in texts:
        if args.serve:
            serve_table(args, engines, paths, binary, model_dir, text_path)
        else:
            summary.append(bench_text(args, engines, paths, binary, model_dir, config, text_path))
    if len(summary) > 1:
        print_summary(summary)


def print_summary(summary: list) -> None:
    """One row per size and engine: whole time and CPU, and each as a ratio of Headroom ORT fp32's."""
    print("summary over the sizes (medians):")
    print("| words | engine | whole s | whole / Headroom ORT fp32 | whole CPU s | CPU / Headroom ORT fp32 | load s | compress s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n_words, medians in summary:
        ref = medians.get("headroom-ort-fp32", {})
        for engine, m in medians.items():
            whole_r = f"{m['whole_s'] / ref['whole_s']:.2f}x" if ref.get("whole_s") else "-"
            cpu_r = f"{m['cpu_s'] / ref['cpu_s']:.2f}x" if ref.get("cpu_s") else "-"
            print(f"| {n_words} | {engine} | {fmt(m['whole_s'])} | {whole_r} | {fmt(m['cpu_s'])} | {cpu_r} | "
                  f"{fmt(m.get('load_s'))} | {fmt(m.get('compress_s'))} |")


def bench_text(args, engines, paths, binary, model_dir, config, text_path) -> tuple:
    """The one-shot comparison on one text; returns (words, {engine: medians})."""
    args.text = text_path
    onnx_of = {e: paths.get(e) for e in engines}
    n_words = len(read_text(args.text).split())
    import headroom
    import onnxruntime

    print(machine_line(args.threads))
    print(f"text: {args.text}, {n_words} words; model: {model_dir} ({config.get('num_hidden_layers')} layers, "
          f"hidden {config.get('hidden_size')}); {args.threads} threads; {args.reps} reps, engines alternating; "
          f"headroom-ai {getattr(headroom, '__version__', '?')}, onnxruntime {onnxruntime.__version__}; "
          f"{subprocess.run([binary, '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"batch size {args.batch_size or 'kompress default'}; page cache {'cold (--cold)' if args.cold else 'warm'}; "
          f"date {time.strftime('%Y-%m-%dT%H:%M%z')}", flush=True)
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    skipped: dict[str, str] = {}
    for rep in range(args.reps):
        for engine in engines:
            if engine in skipped:
                continue
            if args.cold:
                evict([os.path.join(model_dir, f) for f in os.listdir(model_dir)] + [binary, onnx_of[engine] or ""])
            if engine in HEADROOM_FORMS:
                r = run_headroom(paths[engine], model_dir, args.text, args.threads)
            elif engine in WHEEL_DTYPES:
                r = run_wheel(WHEEL_DTYPES[engine], model_dir, args.text, args.threads)
            else:
                r = run_kompress(binary, KOMPRESS_DTYPES[engine], model_dir, args.text, args.threads, args.batch_size)
                if r is None:
                    skipped[engine] = f"skipped: {binary} rejects --dtype {KOMPRESS_DTYPES[engine]}"
                    print(f"{engine}: {skipped[engine]}", flush=True)
                    continue
            runs[engine].append(r)
            print(f"rep {rep + 1} {engine}: whole {r['whole_s']:.2f} s (CPU {r['cpu_s']:.1f} s), compress {fmt(r['compress_s'])} s, "
                  f"{r['words_in']} -> {r['words_out']} words", file=sys.stderr, flush=True)

    def median(engine, field):
        vals = [r[field] for r in runs.get(engine, []) if r[field] is not None]
        return statistics.median(vals) if vals else None

    ref_text = runs["headroom-ort-fp32"][0]["compressed"] if runs.get("headroom-ort-fp32") else None
    ref_whole, ref_cpu = median("headroom-ort-fp32", "whole_s"), median("headroom-ort-fp32", "cpu_s")
    print("| engine | whole s (median) | whole / Headroom ORT fp32 | whole CPU s (median) | CPU / Headroom ORT fp32 "
          "| load s | compress s (median) | compress / kompress f32 | compress / Headroom ORT fp32 "
          "| words in -> out | output = Headroom ORT fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for engine in engines:
        if engine in skipped or not runs[engine]:
            print(f"| {engine} | {skipped.get(engine, 'no runs')} | | | | | | | | | |")
            continue
        first = runs[engine][0]
        comp = median(engine, "compress_s")
        medians[engine] = {k: median(engine, k) for k in ("whole_s", "cpu_s", "load_s", "compress_s")}
        ratios = []
        for ref in ("kompress-f32", "headroom-ort-fp32"):
            base = median(ref, "compress_s")
            ratios.append(f"{comp / base:.2f}x" if comp and base else "-")
        whole, cpu = median(engine, "whole_s"), median(engine, "cpu_s")
        whole_r = f"{whole / ref_whole:.2f}x" if ref_whole else "-"
        cpu_r = f"{cpu / ref_cpu:.2f}x" if ref_cpu else "-"
        if ref_text is None:
            same = "-"
        elif first["compressed"] == ref_text:
            same = "identical"
        else:
            a, b = ref_text.split(), first["compressed"].split()
            matched = sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
            same = f"differs: {len(a) - matched} words only in Headroom's, {len(b) - matched} only in this"
        consistent = all(r["compressed"] == first["compressed"] for r in runs[engine])
        print(f"| {engine} | {fmt(whole)} | {whole_r} | {fmt(cpu)} | {cpu_r} | {fmt(median(engine, 'load_s'))} | "
              f"{fmt(comp)} | {ratios[0]} | {ratios[1]} | "
              f"{first['words_in']} -> {first['words_out']} | {same}{'' if consistent else ' (varies between reps)'} |")
    for engine in engines:
        if engine in KOMPRESS_DTYPES and median(engine, "network_s") is not None:
            # A text that passes through (under --min-words) prints no compression time: all is load.
            rest = median(engine, "whole_s") - median(engine, "load_s") - (median(engine, "compress_s") or 0.0)
            print(f"{engine} phases (medians, s): load {median(engine, 'load_s'):.3f} = open {median(engine, 'open_s'):.3f} "
                  f"+ network {median(engine, 'network_s'):.3f} (tokenizer {median(engine, 'tokenizer_s'):.3f} on its "
                  f"own thread); counter {median(engine, 'counter_s'):.3f} on its own thread; compress "
                  f"{fmt(median(engine, 'compress_s'))}; rest (start, read, write, exit) {rest:.3f}")
    print("whole: process start to exit (imports, model load, compression); whole CPU: that process's user + system "
          "seconds, all threads (steadier than wall time on a loaded machine); load: before the compression (see the "
          "header); compress: the compression call after the load. Ratios: median / reference median (above 1: slower).")
    return n_words, medians


if __name__ == "__main__":
    main()
