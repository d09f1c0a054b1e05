"""Build a tiny ctxprune-style model (transformers' `ModernBertForTokenClassification` with an mmBERT-style
tokenizer) and record PyTorch's per-token keep probabilities, for tests/token_classifier.rs.

The Hugging Face hub is not reachable, so `darioooooo0o/ctxprune-small` and mmBERT's tokenizer cannot be
used. Instead this script builds, from local text only:
- a Gemma/mmBERT-style tokenizer: a BPE with byte fallback (`<0x00>`..`<0xFF>` in the vocabulary, `<unk>`),
  no pre-tokenizer, the normalizer `Replace(" ", "▁")`, Gemma's decoder (`▁` -> space, byte fallback, fuse)
  and `<bos> $A <eos>` around the text; specials `<pad>`=0 `<eos>`=1 `<bos>`=2 `<unk>`=3 `<mask>`=4 as in
  mmBERT;
- `tests/fixtures/models/ctxprune-tiny/`: a random-weight `ModernBertForTokenClassification` (hidden 64, 4 heads
  of 16, 4 layers, a global layer every 3rd, `local_attention` 16 so the sliding window is shorter than the
  texts, 2 labels, the defaults `classifier_bias` / `norm_bias` false and `classifier_activation` gelu),
  saved by `save_pretrained` (the transformers 5 dialect: `layer_types`, `rope_parameters`,
  `"architectures"` as written);
- `tests/fixtures/ctxprune/variant/`: a smaller one with every optional bias on (`classifier_bias`,
  `norm_bias`) and `classifier_activation` `gelu_pytorch_tanh`, the same tokenizer.

It records, in `tests/fixtures/ctxprune/scores.json`, for each model: the texts; per text the ids with
specials (`tokenizer(text)`), the tokens, and `softmax(logits)[..., 1]` as floats; and a right-padded batch
of several texts (each row's probabilities over its real tokens).

Usage: /work/venvref/bin/python scripts/ctxprune_model_fixture.py
Requirements: torch, transformers 5.x, tokenizers (the reference venv).
"""

import glob
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import ModernBertConfig, ModernBertForTokenClassification, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "ctxprune-tiny")
OUT = os.path.join(ROOT, "tests", "fixtures", "ctxprune")
VARIANT = os.path.join(OUT, "variant")

ALPHABET = 150
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]

TEXTS = {
    "english": (
        "Error: failed to open /var/lib/app/config-v2.3.1.yaml (errno 2). Retrying with "
        "~/.config/app/settings.toml at 2024-05-17T09:30:00Z; commit 3f9a1c7e0b2d4f68, "
        "see https://example.com/docs/v1.4/install#linux and run `pip install foo_bar==0.2.1`."
    ),
    "cjk": "机器学习是人工智能的一个分支。它使用数据来训练模型，模型可以预测新的结果。東京は日本の首都です！",
    "json": '{"id": 4711, "name": "build_cache", "tags": ["ci", "linux-x86_64"], "ok": true, "ratio": 0.35, '
    '"path": "src/ctxprune/mod.rs", "nested": {"a": [1, 2, 3], "b": null}}',
    "licence": (
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
        "associated documentation files (the \"Software\"), to deal in the Software without restriction, "
        "including without limitation the rights to use, copy, modify, merge, publish, distribute, "
        "sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is "
        "furnished to do so, subject to the following conditions:\n\nThe above copyright notice and this "
        "permission notice shall be included in all copies or substantial portions of the Software."
    ),
    "mixed": "Mixed 混合 text with émojis 👍🏽 ✅ and 数字 123, Привет мир, tabs\tand  double  spaces.\n",
}
BATCH = ["english", "cjk", "json", "mixed"]


def corpus() -> list:
    """Local text to train the tokenizer on: licences and package copyright files, plus the texts above (a
    few times, so their words get pieces of their own)."""
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*"))[:12]:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                lines.extend(f.read().splitlines())
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:40]:
        with open(path, encoding="utf-8", errors="ignore") as f:
            lines.extend(f.read().splitlines())
    for text in TEXTS.values():
        lines.extend(text.splitlines() * 5)
    return [line for line in lines if line.strip()]


def tokenizer(lines: list) -> PreTrainedTokenizerFast:
    """Gemma's layout: specials, then the 256 byte-fallback pieces, then the learnt pieces."""
    trained = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trained.normalizer = normalizers.Replace(" ", "▁")
    # Trained on words that start with their `▁`, as SentencePiece's pieces do (`▁world`); the tokenizer
    # itself has no pre-tokenizer, as Gemma's has none.
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    # A small alphabet, so that rare characters (some CJK, emoji) go through the byte fallback.
    trained.train_from_iterator(
        lines,
        trainers.BpeTrainer(vocab_size=700, special_tokens=SPECIALS, limit_alphabet=ALPHABET, max_token_length=8),
    )
    spec = json.loads(trained.to_str())
    spec["pre_tokenizer"] = None
    learnt = [t for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]) if t not in SPECIALS]
    pieces = SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + learnt
    spec["model"]["vocab"] = {t: i for i, t in enumerate(pieces)}
    spec["model"]["fuse_unk"] = True
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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<bos>",
        sep_token="<eos>",
        mask_token="<mask>",
    )


def spread(model: torch.nn.Module, seed: int):
    """Random weights large enough that the keep probabilities spread over (0, 1) (the default 0.02
    initialisation leaves them all near 0.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g)) if name.endswith("weight") else p.copy_(
                    0.1 * torch.randn(p.shape, generator=g)
                )
            elif p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[1] ** 0.5))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def build(path: str, tok: PreTrainedTokenizerFast, seed: int, **overrides) -> None:
    fields = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        global_attn_every_n_layers=3,
        local_attention=16,
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        cls_token_id=2,
        sep_token_id=1,
        num_labels=2,
        attn_implementation="eager",
    )
    fields.update(overrides)
    torch.manual_seed(seed)
    model = ModernBertForTokenClassification(ModernBertConfig(**fields))
    spread(model, seed)
    model.eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)


def probs(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)[..., 1]


def record(path: str) -> dict:
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    model = ModernBertForTokenClassification.from_pretrained(path, attn_implementation="eager")
    model.eval()
    singles = []
    for key, text in TEXTS.items():
        ids = tok(text)["input_ids"]
        p = probs(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
        singles.append(
            {"text": key, "input_ids": ids, "tokens": tok.convert_ids_to_tokens(ids), "token_prob": [float(x) for x in p]}
        )
    enc = tok([TEXTS[k] for k in BATCH], padding=True, return_tensors="pt")
    p = probs(model, enc["input_ids"], enc["attention_mask"])
    rows = []
    for i, key in enumerate(BATCH):
        n = int(enc["attention_mask"][i].sum())
        rows.append({"text": key, "input_ids": enc["input_ids"][i, :n].tolist(), "token_prob": [float(x) for x in p[i, :n]]})
    every = [x for s in singles for x in s["token_prob"]]
    print(path, "probabilities in", min(every), max(every), "longest", max(len(s["input_ids"]) for s in singles))
    return {"singles": singles, "batch": rows}


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = tokenizer(corpus())
    build(MODEL, tok, 29)
    build(
        VARIANT, tok, 30, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        classifier_bias=True, norm_bias=True, classifier_activation="gelu_pytorch_tanh", norm_eps=1e-6,
    )
    result = {
        "texts": TEXTS,
        "models": {
            "ctxprune-tiny": record(MODEL),
            "variant": record(VARIANT),
        },
    }
    with open(os.path.join(OUT, "scores.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
