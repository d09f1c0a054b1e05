"""ctxprune 0.2.1's whole job against kompress `--compat ctxprune` on the mmBERT-small shape (issue 29).

The hub is not reachable here, so `darioooooo0o/ctxprune-small` cannot be used. This script builds a
stand-in of its shape and times both engines on it:

    /work/venvref/bin/python scripts/ctxprune_bench.py build          # model, tokenizer, ONNX, texts
    /work/venvref/bin/python scripts/ctxprune_bench.py bench          # timings and agreement

`build` writes into /work/bench/mmbert-small/ (`--dir`; ~1.3 GB with the ONNX files, never the repository):
- `tokenizer.json`: mmBERT's layout (Gemma's): a BPE with byte fallback (`<0x00>`..`<0xFF>`), no
  pre-tokenizer, the normalizer `Replace(" ", "▁")`, `<bos> $A <eos>` around a text, specials `<pad>`=0
  `<eos>`=1 `<bos>`=2 `<unk>`=3 `<mask>`=4; trained here with `tokenizers` to 32,000 pieces on local
  English and code (Python's standard library, licences, the repository's texts). mmBERT's real
  vocabulary has 256,000 pieces (Gemma 3's), so this one cuts text into more tokens per word;
- `model.safetensors` + `config.json`: a random-weight `ModernBertForTokenClassification` with
  mmBERT-small's config (vocabulary 256,000, so the embedding table has the real size; ids past the
  tokenizer's 32,000 never occur), transformers' own initialisation for the encoder, and the classifier
  scaled so that the keep probabilities spread over (0, 1) (the logit difference has a standard deviation
  of `HEAD_SPREAD` on a sample text; its median is moved to 0);
- `onnx/model.onnx` and `onnx/model_quantized.onnx`: exported as ctxprune's author does
  (riceharvest/ctxprune `scripts/export_onnx.py`; the wheel ships no export code, only the `export`
  extra's requirements): `torch.onnx.export` (TorchScript, opset 17) of the token classifier loaded with
  eager attention, inputs `input_ids`/`attention_mask`, output `logits`, batch and sequence axes dynamic;
  int8 by `onnxruntime.quantization.quantize_dynamic` with unsigned int8 weights per channel on every
  MatMul and the embedding Gather, the head's MatMuls left in fp32 (that script says signed int8 or a
  quantised head broke its model);
- `texts/words{200,3000,10000}.txt`: prose, Python code and log lines with paths, hashes and versions,
  cut after exactly that many whitespace-separated words (files the tokenizer was not trained on).

`bench` runs, in rounds (every job once per round, so that load on this shared machine spreads over all
of them), for each text size:
- ctxprune: a fresh `python` that builds `Compressor(dir, backend="onnx", onnx_file=...)` with ONNX
  Runtime's intra-op threads set to 2 and calls `.compress(text, rate=0.5)` once; its load and its
  compress call are timed apart; peak RSS is the process's VmHWM;
- kompress: `kompress compress --compat ctxprune -m DIR --dtype F --threads 2 --ratio 0.5 --json TEXT`
  for f32, bf16, int8-wo and int8, the whole process timed (wall) under `/usr/bin/time` (peak RSS), also
  with `KOMPRESS_CPU_KERNELS=avx2`.
It prints medians per job and size, then the keep agreement at rate 0.5: ctxprune int8 against ctxprune
fp32 (per atom, from the atoms and scores its own `compress` computed), and kompress's forms against
kompress f32 through `cargo run --release --example ctxprune_agreement`.
"""

import argparse
import glob
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = "/work/bench/mmbert-small"
SIZES = [200, 3000, 10000]
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
VOCAB_PIECES = 32000
HEAD_SPREAD = 2.5
KOMPRESS_FORMS = ["f32", "bf16", "int8-wo", "int8"]

# mmBERT-small's config.json (a copy at huggingface.co/datalama/mmBERT-small; the hub itself is not
# reachable from here): 22 layers, hidden 384, intermediate 1152, 6 heads, a global layer every 3rd,
# local window 128, RoPE theta 160,000 in both kinds of layer, 8192 positions, vocabulary 256,000.
CONFIG = dict(
    vocab_size=256000,
    hidden_size=384,
    intermediate_size=1152,
    num_hidden_layers=22,
    num_attention_heads=6,
    global_attn_every_n_layers=3,
    local_attention=128,
    global_rope_theta=160000.0,
    local_rope_theta=160000.0,
    max_position_embeddings=8192,
    norm_eps=1e-5,
    hidden_activation="gelu",
    classifier_activation="gelu",
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
    cls_token_id=1,
    sep_token_id=1,
    num_labels=2,
)


# --- local text ---------------------------------------------------------------------------------------


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="ignore") as f:
        return f.read()


def stdlib_files() -> list:
    """Python's standard library sources, sorted; even positions train the tokenizer, odd ones feed the
    texts."""
    files = sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True))
    return [f for f in files if "/test" not in f and "site-packages" not in f and "dist-packages" not in f]


def prose_files() -> list:
    files = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
    files += sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/texts/*")))
    files += sorted(glob.glob(os.path.join(ROOT, "docs/*.md")))
    return [f for f in files if os.path.isfile(f)]


def corpus() -> list:
    lines = []
    budget = 24_000_000
    for path in stdlib_files()[::2] + prose_files()[::2]:
        text = read(path)
        lines.extend(line for line in text.splitlines() if line.strip())
        budget -= len(text)
        if budget < 0:
            break
    return lines


def paragraphs(path: str) -> list:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", read(path)) if len(p.split()) >= 8]


def log_block(rng: random.Random, paths: list) -> str:
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    verbs = ["opened", "loaded", "wrote", "skipped", "retrying", "failed to read", "cached", "compiled"]
    lines = []
    t = rng.randint(0, 86000)
    for _ in range(rng.randint(4, 12)):
        t += rng.randint(0, 40)
        digest = "%040x" % rng.getrandbits(160)
        version = f"{rng.randint(0, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        stamp = f"2026-12-{rng.randint(1, 7):02d}T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}.{rng.randint(0, 999):03d}Z"
        path = rng.choice(paths)
        msg = rng.choice(
            [
                f"{rng.choice(verbs)} {path} ({rng.randint(1, 99999)} bytes, sha1 {digest[:rng.choice([12, 40])]})",
                f"worker-{rng.randint(0, 15)} pid={rng.randint(100, 65000)} {rng.choice(verbs)} {path} in {rng.random() * 900:.1f} ms",
                f"package foo-bar=={version} resolved from https://example.org/simple/foo-bar/{digest[:8]}",
                f"commit {digest[:7]} {rng.choice(verbs)} {path}:{rng.randint(1, 2000)}; exit code {rng.choice([0, 0, 1, 2, 137])}",
            ]
        )
        lines.append(f"{stamp} {rng.choice(levels):5} [{path.split('/')[-1]}] {msg}")
    return "\n".join(lines)


def code_block(rng: random.Random, files: list) -> str:
    lines = read(rng.choice(files)).splitlines()
    if len(lines) < 10:
        return "\n".join(lines)
    start = rng.randrange(0, max(1, len(lines) - 40))
    return "\n".join(lines[start : start + rng.randint(8, 40)]).strip("\n")


def make_text(words: int, seed: int) -> str:
    """Blocks of prose, code and log lines in random order, cut after exactly `words` words."""
    rng = random.Random(seed)
    code_files = stdlib_files()[1::2]
    prose = [p for f in prose_files()[1::2] for p in paragraphs(f)]
    paths = [f.replace("/usr/lib/python3.11", "/srv/app/lib") for f in code_files[:400]]
    blocks, count = [], 0
    while count < words + 50:
        kind = rng.random()
        if kind < 0.45:
            block = "\n\n".join(rng.choice(prose) for _ in range(rng.randint(1, 3)))
        elif kind < 0.75:
            block = "```python\n" + code_block(rng, code_files) + "\n```"
        else:
            block = log_block(rng, paths)
        blocks.append(block)
        count += len(block.split())
    text = "\n\n".join(blocks)
    end = [m.end() for m in re.finditer(r"\S+", text)][words - 1]
    return text[:end] + "\n"


# --- build ------------------------------------------------------------------------------------------------


def build_tokenizer(out: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    lines = corpus()
    print(f"training the tokenizer on {len(lines)} lines, {sum(map(len, lines)) / 1e6:.1f} MB", flush=True)
    trained = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trained.normalizer = normalizers.Replace(" ", "▁")
    # Trained on space-separated pieces that start with their `▁` (SentencePiece's `▁world`); the
    # tokenizer itself has no pre-tokenizer, as Gemma's has none.
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    trained.train_from_iterator(
        lines,
        trainers.BpeTrainer(
            vocab_size=VOCAB_PIECES - 256, special_tokens=SPECIALS, limit_alphabet=400, max_token_length=16
        ),
    )
    spec = json.loads(trained.to_str())
    spec["pre_tokenizer"] = None
    learnt = [t for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]) if t not in SPECIALS]
    pieces = SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + learnt
    spec["model"]["vocab"] = {t: i for i, t in enumerate(pieces)}
    spec["model"]["fuse_unk"] = True
    # Runs of spaces as pieces of their own (Gemma has them; the Metaspace split above cannot learn them):
    # merged first, so that indentation costs a few tokens, not one per space.
    runs = ["▁" * k for k in (2, 4, 8, 16)]
    for piece in runs:
        spec["model"]["vocab"].setdefault(piece, len(spec["model"]["vocab"]))
    merges = spec["model"]["merges"]
    pairs = [("▁", "▁"), ("▁▁", "▁▁"), ("▁" * 4, "▁" * 4), ("▁" * 8, "▁" * 8)]
    as_list = bool(merges) and isinstance(merges[0], list)
    spec["model"]["merges"] = [list(p) if as_list else " ".join(p) for p in pairs] + merges
    spec["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True}
        for i, t in enumerate(SPECIALS)
    ]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", pair="<bos> $A <eos> $B <eos>", special_tokens=[("<bos>", 2), ("<eos>", 1)]
    )
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(
            {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>",
             "unk_token": "<unk>", "pad_token": "<pad>", "cls_token": "<bos>", "sep_token": "<eos>",
             "mask_token": "<mask>", "model_max_length": 8192},
            f,
            indent=1,
        )
    print("tokenizer:", tok.get_vocab_size(), "pieces", flush=True)
    return tok


def build_model(out: str, tok) -> None:
    import torch
    from transformers import ModernBertConfig, ModernBertForTokenClassification

    torch.manual_seed(29)
    model = ModernBertForTokenClassification(ModernBertConfig(**CONFIG, attn_implementation="eager")).eval()
    # The classifier: a random direction scaled so that the logit difference spreads (HEAD_SPREAD) on a
    # sample text, centred there.
    sample = make_text(400, 1)
    ids = torch.tensor([tok.encode(sample).ids[:512]])
    with torch.no_grad():
        hidden = model.head(model.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state)[0]
        g = torch.Generator().manual_seed(7)
        w = torch.randn(2, CONFIG["hidden_size"], generator=g)
        diff = hidden @ (w[1] - w[0])
        w *= HEAD_SPREAD / float(diff.std())
        diff = hidden @ (w[1] - w[0])
        model.classifier.weight.copy_(w)
        model.classifier.bias.copy_(torch.tensor([0.0, -float(diff.median())]))
        p = torch.softmax(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0], -1)[:, 1]
    q = torch.quantile(p, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))
    print("keep probabilities on the sample, deciles 10/25/50/75/90:", [round(float(x), 3) for x in q])
    print("share within 0.05 of 0.5:", float(((p - 0.5).abs() < 0.05).float().mean()))
    model.save_pretrained(out)
    print("parameters:", sum(x.numel() for x in model.parameters()), flush=True)


def export_onnx(out: str, tok) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import ModernBertForTokenClassification

    model = ModernBertForTokenClassification.from_pretrained(out, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    fp32 = os.path.join(out, "onnx", "model.onnx")
    q8 = os.path.join(out, "onnx", "model_quantized.onnx")
    ex = [tok.encode("hello world").ids] * 2
    ids = torch.tensor(ex)
    axes = {0: "batch", 1: "seq"}
    t0 = time.time()
    torch.onnx.export(
        Logits(model), (ids, torch.ones_like(ids)), fp32,
        input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
        opset_version=17, dynamo=False,
    )
    print(f"fp32 export {time.time() - t0:.0f} s, {os.path.getsize(fp32) / 1e6:.0f} MB", flush=True)
    graph = onnx.load(fp32, load_external_data=False)
    head = [n.name for n in graph.graph.node if n.op_type == "MatMul" and ("classifier" in n.name or "/head/" in n.name)]
    print("left in fp32:", head)
    quantize_dynamic(fp32, q8, weight_type=QuantType.QUInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gather"], nodes_to_exclude=head)
    print(f"int8: {os.path.getsize(q8) / 1e6:.0f} MB", flush=True)
    # Parity of the exports with PyTorch on a full window and a padded batch (shapes unlike the example).
    text = make_text(900, 2)
    row = tok.encode(text).ids[:512]
    short = row[:300]
    rows = np.array([row, short + [0] * (len(row) - len(short))], dtype=np.int64)
    mask = np.array([[1] * len(row), [1] * len(short) + [0] * (len(row) - len(short))], dtype=np.int64)
    with torch.no_grad():
        ref = torch.softmax(model(input_ids=torch.from_numpy(rows), attention_mask=torch.from_numpy(mask)).logits, -1)[..., 1].numpy()
    for name, path in (("fp32", fp32), ("int8", q8)):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        lg = s.run(["logits"], {"input_ids": rows, "attention_mask": mask})[0]
        e = np.exp(lg - lg.max(-1, keepdims=True))
        p = e[..., 1] / e.sum(-1)
        real = mask.astype(bool)
        diff = np.abs(p - ref)[real]
        agree = ((p >= 0.5) == (ref >= 0.5))[real].mean()
        print(f"ONNX {name} vs PyTorch: max |dp| {diff.max():.2e}, mean {diff.mean():.2e}, p>=0.5 agreement {agree:.4f}")


def build(args) -> None:
    out = args.dir
    os.makedirs(os.path.join(out, "texts"), exist_ok=True)
    for n in SIZES:
        with open(os.path.join(out, "texts", f"words{n}.txt"), "w", encoding="utf-8") as f:
            f.write(make_text(n, n))
    if args.only_texts:
        return
    tok = build_tokenizer(out)
    for n in SIZES:
        text = read(os.path.join(out, "texts", f"words{n}.txt"))
        print(f"words{n}: {len(text)} chars, {len(tok.encode(text, add_special_tokens=False).ids)} tokens")
    build_model(out, tok)
    export_onnx(out, tok)


# --- bench ----------------------------------------------------------------------------------------------


def greedy_keep(atoms, scores, counts, rate: float) -> list:
    """ctxprune 0.2.1's greedy rule (`compress` without threshold or measure, no forced atoms)."""
    budget = math.ceil(rate * sum(counts))
    keep, used = [False] * len(atoms), 0
    for i in sorted(range(len(atoms)), key=lambda i: -scores[i]):
        if used >= budget:
            break
        if not keep[i] and atoms[i].text:
            keep[i] = True
            used += counts[i]
    return keep


def ctxprune_job(args) -> None:
    """One ctxprune job in this process: load, then one compress call; JSON on stdout."""
    t0 = time.perf_counter()
    import onnxruntime as ort

    class TwoThreads(ort.SessionOptions):
        def __init__(self):
            super().__init__()
            self.intra_op_num_threads = args.threads
            self.inter_op_num_threads = 1

    ort.SessionOptions = TwoThreads
    from ctxprune.compress import Compressor
    from ctxprune.atoms import atomize

    text = read(args.text)
    t1 = time.perf_counter()
    c = Compressor(args.dir, backend="onnx", onnx_file=args.onnx)
    t2 = time.perf_counter()
    seen = {}
    inner = c.atom_scores

    def atom_scores(t):
        seen["r"] = inner(t)
        return seen["r"]

    c.atom_scores = atom_scores
    t3 = time.perf_counter()
    out = c.compress(text, rate=0.5)
    t4 = time.perf_counter()
    atoms, scores, counts = seen["r"]
    counts_chars = [len(a.text) + (1 if a.ws else 0) for a in atoms]
    keep = greedy_keep(atoms, scores, counts_chars, 0.5)
    from ctxprune.atoms import detok

    assert detok(atoms, keep) == out["text"], "greedy_keep differs from compress"
    hwm = [line for line in read("/proc/self/status").splitlines() if line.startswith("VmHWM")][0]
    if args.keep_out:
        with open(args.keep_out, "w") as f:
            json.dump({"keep": keep, "scores": scores}, f)
    print(json.dumps({
        "import_s": t1 - t0, "load_s": t2 - t1, "compress_s": t4 - t3, "vmhwm_kb": int(hwm.split()[1]),
        "kept": out["kept"], "total": out["total"], "atoms": len(atoms),
    }))


def run_ctxprune(args, onnx_file: str, text: str, keep_out: str = "") -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "_ctxprune_job", "--dir", args.dir, "--onnx", onnx_file,
           "--text", text, "--threads", str(args.threads)]
    if keep_out:
        cmd += ["--keep-out", keep_out]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["wall_s"] = wall
    r["rss_mb"] = r["vmhwm_kb"] / 1024
    return r


def run_kompress(args, dtype: str, text: str, kernels: str) -> dict:
    env = dict(os.environ)
    env.pop("KOMPRESS_CPU_KERNELS", None)
    if kernels:
        env["KOMPRESS_CPU_KERNELS"] = kernels
    tfile = "/tmp/ctxprune_bench_time.txt"
    cmd = ["/usr/bin/time", "-o", tfile, "-f", "%e %M", args.kompress, "compress", "--compat", "ctxprune",
           "-m", args.dir, "--dtype", dtype, "--threads", str(args.threads), "--ratio", "0.5", "--json", "-v", text]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{res.stderr}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    r = {"wall_s": wall, "rss_mb": int(read(tfile).split()[-1]) / 1024, "kept": out.get("kept"),
         "total": out.get("total"), "stderr": res.stderr}
    # `-v` phase timings, where the CLI prints them.
    m = re.search(r"load(?:ed)?[^\n]*?([\d.]+)\s*(ms|s)\b", res.stderr)
    if m:
        r["load_s"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    return r


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def agreement_kompress(args) -> dict:
    """Per-atom keep agreement of kompress's forms with its f32 (examples/ctxprune_agreement.rs)."""
    texts = [os.path.join(args.dir, "texts", f"words{n}.txt") for n in args.sizes]
    cmd = ["cargo", "run", "--release", "--locked", "--quiet", "--example", "ctxprune_agreement", "--",
           args.dir, "--json", "/tmp/ctxprune_bench_kompress_keep.json", *texts]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    print(res.stdout, res.stderr[-2000:] if res.returncode else "")
    if res.returncode != 0:
        return {}
    with open("/tmp/ctxprune_bench_kompress_keep.json") as f:
        return json.load(f)


def bench(args) -> None:
    texts = {n: os.path.join(args.dir, "texts", f"words{n}.txt") for n in args.sizes}
    jobs = [("ctxprune fp32", "onnx/model.onnx"), ("ctxprune int8", "onnx/model_quantized.onnx")]
    jobs += [(f"kompress {f}", f) for f in KOMPRESS_FORMS]
    if not args.no_avx2:
        jobs += [(f"kompress {f} avx2", f) for f in KOMPRESS_FORMS]
    if args.only:
        jobs = [(name, what) for name, what in jobs if name in args.only]
    results = {n: {name: [] for name, _ in jobs} for n in args.sizes}
    for n in args.sizes:
        runs = args.runs if n < 10000 else args.runs_long
        for r in range(runs):
            load = open("/proc/loadavg").read().split()[:3]
            print(f"--- {n} words, round {r + 1}/{runs}, load {' '.join(load)}", flush=True)
            for name, what in jobs:
                if name.startswith("ctxprune"):
                    keep_out = f"/tmp/ctxprune_bench_{name.split()[1]}_{n}.json" if r == 0 and not args.only else ""
                    res = run_ctxprune(args, what, texts[n], keep_out)
                    print(f"{name:22} wall {res['wall_s']:7.2f} s  load {res['load_s']:5.2f} s  compress "
                          f"{res['compress_s']:7.2f} s  rss {res['rss_mb']:5.0f} MB  kept {res['kept']}/{res['total']}",
                          flush=True)
                else:
                    res = run_kompress(args, what, texts[n], "avx2" if name.endswith("avx2") else "")
                    extra = f"  load {res['load_s']:5.2f} s" if "load_s" in res else ""
                    print(f"{name:22} wall {res['wall_s']:7.2f} s{extra}  rss {res['rss_mb']:5.0f} MB  "
                          f"kept {res['kept']}/{res['total']}", flush=True)
                    if r == 0 and n == args.sizes[0] and name == "kompress f32":
                        print("  -v:", res["stderr"].strip().replace("\n", "\n      "))
                    res.pop("stderr")
                results[n][name].append(res)
    summary = {}
    for n in args.sizes:
        summary[n] = {}
        for name, _ in jobs:
            rs = results[n][name]
            s = {"runs": len(rs), "wall_s": median([x["wall_s"] for x in rs]), "rss_mb": max(x["rss_mb"] for x in rs)}
            for key in ("load_s", "compress_s", "import_s"):
                if all(key in x for x in rs):
                    s[key] = median([x[key] for x in rs])
            summary[n][name] = s
    print("\n=== medians (s), peak RSS (MB)")
    for n in args.sizes:
        print(f"-- {n} words")
        for name, s in summary[n].items():
            parts = [f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()]
            print(f"{name:22} " + "  ".join(parts))
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "runs": results}, f, indent=1)
    print("written", args.out)


def agree(args) -> None:
    """Keep agreement at rate 0.5, per atom: ctxprune int8 against ctxprune fp32 (the decisions its own
    `compress` made in `bench`'s first round), kompress's forms against kompress f32, and kompress f32
    against ctxprune fp32."""
    agree = {}
    for n in args.sizes:
        with open(f"/tmp/ctxprune_bench_fp32_{n}.json") as f:
            a = json.load(f)
        with open(f"/tmp/ctxprune_bench_int8_{n}.json") as f:
            b = json.load(f)
        same = sum(x == y for x, y in zip(a["keep"], b["keep"]))
        agree[n] = {"ctxprune int8 vs ctxprune fp32": same / len(a["keep"])}
    k = agreement_kompress(args)
    for n in args.sizes:
        key = os.path.join(args.dir, "texts", f"words{n}.txt")
        if key not in k:
            continue
        forms = k[key]
        f32 = forms["f32"]["keep"]
        for form, v in forms.items():
            if form != "f32":
                agree[n][f"kompress {form} vs kompress f32"] = sum(x == y for x, y in zip(f32, v["keep"])) / len(f32)
        with open(f"/tmp/ctxprune_bench_fp32_{n}.json") as f:
            cp = json.load(f)["keep"]
        if len(cp) == len(f32):
            agree[n]["kompress f32 vs ctxprune fp32"] = sum(x == y for x, y in zip(f32, cp)) / len(f32)
    for n in args.sizes:
        print(f"-- {n} words")
        for name, v in agree[n].items():
            print(f"  {name}: {100 * v:.2f}%")
    with open(args.out, "w") as f:
        json.dump(agree, f, indent=1)
    print("written", args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dir", default=DIR)
    b.add_argument("--only-texts", action="store_true")
    r = sub.add_parser("bench")
    r.add_argument("--dir", default=DIR)
    r.add_argument("--kompress", default=os.path.join(ROOT, "target", "release", "kompress"))
    r.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--runs-long", type=int, default=3, help="runs at 10,000 words")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--no-avx2", action="store_true")
    r.add_argument("--only", type=lambda s: s.split(","), default=None,
                   help='jobs to run, comma-separated (e.g. "ctxprune fp32,kompress f32")')
    r.add_argument("--out", default="/tmp/ctxprune_bench.json")
    g = sub.add_parser("agree")
    g.add_argument("--dir", default=DIR)
    g.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--out", default="/tmp/ctxprune_agree.json")
    j = sub.add_parser("_ctxprune_job")
    j.add_argument("--dir", required=True)
    j.add_argument("--onnx", required=True)
    j.add_argument("--text", required=True)
    j.add_argument("--threads", type=int, default=2)
    j.add_argument("--keep-out", default="")
    args = ap.parse_args()
    {"build": build, "bench": bench, "agree": agree, "_ctxprune_job": ctxprune_job}[args.cmd](args)


if __name__ == "__main__":
    main()
