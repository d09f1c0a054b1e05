"""Compares `kompress score` with the PyTorch reference on one model and one text.

    python scripts/parity.py --model DIR_OR_HF_ID --text-file FILE [--kompress target/release/kompress]
                             [--device cpu] [--dtype f32[,f16,bf16]] [--ref-device DEVICE] [--json]

The reference runs in f32 (TF32 off) on --ref-device, by default the torch device matching --device
(`cuda:N` for kompress's `cuda:N`), so that a GPU run is compared with PyTorch on the same GPU.
Several dtypes, comma-separated, are compared in one run against one reference: importing torch and
transformers is most of a run on the small fixture models, so this pays one import for all three.

Prints the max abs differences of token_prob / span_score / score and the word-level agreement of the
keep decisions under the model-card rule (l1 > l0, or 0.3 < p <= 0.5 and span > 0.5) and the
Headroom ONNX rule (score > 0.5). A hub id is fetched with huggingface_hub (config.json and
tokenizer.json fall back to answerdotai/ModernBERT-base at the pinned revision, as in the reference).
Requirements: torch, transformers, tokenizers, safetensors (and huggingface_hub for hub ids).
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

from kompress_ref import encode_words, load_dir, words_of

BASE_REPO, BASE_REVISION = "answerdotai/ModernBERT-base", "8949b909ec900327062f0ebf497f51aef5e6f0c8"


def materialise(model: str) -> str:
    """A local directory for `model`: itself, or a hub snapshot completed with the base files."""
    if os.path.isdir(model):
        return model
    from huggingface_hub import hf_hub_download, list_repo_files

    out = tempfile.mkdtemp(prefix="kompress-parity-")
    files = list_repo_files(model)
    weights = next(f for f in ("merged.pt", "model.safetensors") if f in files)
    shutil.copy(hf_hub_download(model, weights), os.path.join(out, weights))
    for name in ("config.json", "tokenizer.json"):
        path = hf_hub_download(model, name) if name in files else None
        if name == "config.json" and path and json.load(open(path)).get("model_type") != "modernbert":
            path = None
        shutil.copy(path or hf_hub_download(BASE_REPO, name, revision=BASE_REVISION), os.path.join(out, name))
    return out


def word_decisions(word_ids, keep):
    """A word is kept when any of its tokens is kept."""
    kept = {}
    for w, k in zip(word_ids, keep):
        if w is not None:
            kept[w] = kept.get(w, False) or bool(k)
    return [kept[w] for w in sorted(kept)]


def card_rule(logits, prob, span):
    return [
        l[1] > l[0] or (span is not None and 0.3 < p <= 0.5 and s > 0.5)
        for l, p, s in zip(logits, prob, span or [0.0] * len(prob))
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text-file", required=True)
    ap.add_argument("--kompress", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "kompress"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", help="kompress's dtype, or several comma-separated: f32,f16,bf16")
    ap.add_argument("--ref-device", help="torch device of the reference (default: --device's)")
    ap.add_argument("--json", action="store_true", help="also print one JSON summary line per dtype")
    args = ap.parse_args()
    ref_device = args.ref_device or ("cpu" if args.device in ("cpu", "auto", "metal") else args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    model_dir = materialise(args.model)
    text = open(args.text_file, encoding="utf-8").read()
    ref_model, tokenizer = load_dir(model_dir)
    ref_model = ref_model.to(ref_device)
    ids, word_ids = encode_words(tokenizer, words_of(text))
    ref = run_ref(ref_model, ids, ref_device)
    print(f"{len(ids)} tokens, {len(set(w for w in word_ids if w is not None))} words; reference in f32 on {ref_device}")

    for dtype in args.dtype.split(","):
        cmd = [args.kompress, "score", args.text_file, "--json", "--model", model_dir, "--device", args.device, "--dtype", dtype]
        ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        if ours["input_ids"] != ids or ours["word_ids"] != word_ids:
            sys.exit("token ids or word ids differ: the tokenizers disagree")
        summary = {"model": args.model, "device": args.device, "dtype": dtype, "ref_device": ref_device, "tokens": len(ids)}
        print(f"kompress {dtype} on {args.device} against it:")
        summary["kompress"] = compare(ref, ours, word_ids)
        if dtype in ("f16", "bf16"):
            # The reference's own rounding in this dtype: the yardstick for kompress's. A copy, so that
            # the f32 model stays for the next dtype.
            half = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype]
            print(f"PyTorch {dtype} on {ref_device} against it:")
            summary["pytorch_same_dtype"] = compare(ref, run_ref(copy.deepcopy(ref_model).to(half), ids, ref_device), word_ids)
        if args.json:
            print(json.dumps(summary))


def run_ref(model, ids, device) -> dict:
    out = model.score(torch.tensor([ids], device=device), torch.ones(1, len(ids), dtype=torch.long, device=device))
    return {k: (None if v is None else v[0].float().tolist()) for k, v in out.items() if k != "hidden"}


def compare(ref: dict, other: dict, word_ids: list) -> dict:
    """Max abs differences and word-level keep agreement of `other` against `ref`, printed and returned."""
    result = {}
    for key in ("token_prob", "span_score", "score"):
        if ref[key] is None or other[key] is None:
            print(f"{key:>12}: absent (reference {ref[key] is not None}, other {other[key] is not None})")
            continue
        result[f"{key}_max_abs_diff"] = max(abs(a - b) for a, b in zip(ref[key], other[key]))
        print(f"{key:>12}: max abs diff {result[f'{key}_max_abs_diff']:.3e}")
    rules = {
        "card rule": lambda o: card_rule(o["logits"], o["token_prob"], o["span_score"]),
        "score > 0.5": lambda o: [s > 0.5 for s in o["score"]],
    }
    for name, rule in rules.items():
        a, b = word_decisions(word_ids, rule(ref)), word_decisions(word_ids, rule(other))
        same = sum(x == y for x, y in zip(a, b))
        print(f"{name:>12}: {same}/{len(a)} words agree ({100.0 * same / len(a):.2f}%)")
        result[f"{name} agree"] = [same, len(a)]
    return result


if __name__ == "__main__":
    main()
