"""Builds the tiny Kompress fixture models and their reference outputs in tests/fixtures/.

Every model is a transformers `ModernBertModel` plus Kompress's heads (see kompress_ref.py) with
seeded random weights, LayerNorm weights included, so an implementation that ignores any tensor
fails. They share one small byte-level BPE tokenizer trained here with the `tokenizers` package.

    models/v4/       transformers 4.x config dialect, 4 layers (global every 3rd: 0, 3), model.safetensors
    models/v5/       transformers 5.x dialect, 6 layers with irregular layer_types (global 0, 3, 5),
                     other RoPE thetas, model.safetensors
    models/nospan/   no span head (like kompress-small's ONNX export)
    models/v2/       kompress-v2 layout: merged.pt holding the three state dicts
    expected/<model>.json   reference outputs for each input of inputs.json

Usage (needs torch, transformers, tokenizers, safetensors; CI needs none of them):
    python scripts/make_fixtures.py [--out tests/fixtures]
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import ModernBertConfig

from kompress_ref import KompressRef, encode_words, load_dir, words_of

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]

CORPUS = """The quick brown fox jumps over the lazy dog near the river bank.
def compute_total(items): return sum(item.price * item.qty for item in items)
Error 0x7f3a: connection refused at /usr/local/lib/python3.11/site-packages/requests.py
You must not delete the production database unless the backup has completed.
The meeting is scheduled for 2024-03-15 at 10:30 in room B-204, bring the Q3 report.
Kompress keeps the words that matter and drops filler words such as basically, really, just.
HTTP/1.1 200 OK Content-Type: application/json; charset=utf-8 {"status": "ok", "count": 42}
Naïve café résumé — «quotes» and emoji 🚀 and CJK 漢字 text for byte-level coverage.
"""

INPUTS = {
    "short": "The quick brown fox jumps over the lazy dog.",
    "code": "def compute_total(items):\n    return sum(item.price * item.qty for item in items)\n"
    "# must not fail when items is empty\nError 0x7f3a at /usr/lib/x.py",
    "unicode": "Naïve café résumé — «quotes» 🚀 漢字\n\n  spaced   words\ttabs",
    # Several times the fixture models' local window (16 tokens).
    "long": " ".join(
        [
            "The meeting is scheduled for 2024-03-15 at 10:30 in room B-204, bring the Q3 report.",
            "You must not delete the production database unless the backup has completed.",
            "Kompress keeps the words that matter and drops filler words such as basically, really, just.",
        ]
        * 3
    )
    + "\nHTTP/1.1 200 OK Content-Type: application/json {\"status\": \"ok\", \"count\": 42}",
}


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.split("\n") * 4, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def base_config(tok: Tokenizer, layers: int) -> dict:
    return {
        "model_type": "modernbert",
        "architectures": ["ModernBertModel"],
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "max_position_embeddings": 512,
        "local_attention": 16,
        "hidden_activation": "gelu",
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
        "pad_token_id": tok.token_to_id("[PAD]"),
        "cls_token_id": tok.token_to_id("[CLS]"),
        "sep_token_id": tok.token_to_id("[SEP]"),
        "bos_token_id": tok.token_to_id("[CLS]"),
        "eos_token_id": tok.token_to_id("[SEP]"),
    }


def config_v4(tok: Tokenizer) -> dict:
    cfg = base_config(tok, 4)
    cfg.update(global_attn_every_n_layers=3, global_rope_theta=160000.0, local_rope_theta=10000.0, norm_eps=1e-5)
    return cfg


def config_v5(tok: Tokenizer, layers: int = 6) -> dict:
    cfg = base_config(tok, layers)
    global_at = {0, 3, layers - 1}
    cfg.update(
        layer_types=["full_attention" if i in global_at else "sliding_attention" for i in range(layers)],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 40000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        },
        norm_eps=1e-6,
    )
    return cfg


def randomise(model: KompressRef, seed: int) -> None:
    """Seeded weights large enough that every tensor moves the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name:
                p.copy_(1.0 + 0.3 * noise)
            elif name.endswith("bias"):
                p.copy_(0.3 * noise)
            elif "tok_embeddings" in name:
                p.copy_(noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise * (1.5 / fan_in**0.5))


def build(out: str, name: str, cfg_json: dict, seed: int, span: int | None, tok_path: str, layout: str) -> str:
    model_dir = os.path.join(out, "models", name)
    os.makedirs(model_dir, exist_ok=True)
    model = KompressRef(ModernBertConfig(**cfg_json), span_channels=span)
    randomise(model, seed)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=2)
    shutil.copy(tok_path, os.path.join(model_dir, "tokenizer.json"))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if layout == "safetensors":
        save_file(state, os.path.join(model_dir, "model.safetensors"))
    else:
        ckpt = {
            "encoder_state_dict": {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")},
            "token_head_state_dict": {k[len("token_head."):]: v for k, v in state.items() if k.startswith("token_head.")},
            "span_conv_state_dict": {k[len("span_conv."):]: v for k, v in state.items() if k.startswith("span_conv.")},
            "config": cfg_json,
            "checkpoint_kind": "merged",
        }
        torch.save(ckpt, os.path.join(model_dir, "merged.pt"))
    return model_dir


def rounded(t: torch.Tensor) -> list:
    return [float(f"{x:.7g}") for x in t.reshape(-1).tolist()]


def record(model_dir: str) -> dict:
    """Runs the reference from the files just written (so the load path is exercised too)."""
    model, tokenizer = load_dir(model_dir)
    cases = {}
    for key, text in INPUTS.items():
        ids, word_ids = encode_words(tokenizer, words_of(text))
        out = model.score(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        cases[key] = {
            "input_ids": ids,
            "word_ids": word_ids,
            "hidden_shape": list(out["hidden"].shape[1:]),
            "hidden": rounded(out["hidden"][0]),
            "logits": rounded(out["logits"][0]),
            "token_prob": rounded(out["token_prob"][0]),
            "span_score": None if out["span_score"] is None else rounded(out["span_score"][0]),
            "score": rounded(out["score"][0]),
        }
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    tok = train_tokenizer()
    tok_path = os.path.join(out, "tokenizer.json")
    tok.save(tok_path)
    with open(os.path.join(out, "inputs.json"), "w") as f:
        json.dump(INPUTS, f, indent=2, ensure_ascii=False)
    specs = [
        ("v4", config_v4(tok), 1, 32, "safetensors"),
        ("v5", config_v5(tok), 2, 32, "safetensors"),
        ("nospan", config_v5(tok, 3), 3, None, "safetensors"),
        ("v2", config_v4(tok), 4, 32, "merged"),
    ]
    for name, cfg, seed, span, layout in specs:
        model_dir = build(out, name, cfg, seed, span, tok_path, layout)
        with open(os.path.join(out, "expected", f"{name}.json"), "w") as f:
            json.dump(record(model_dir), f)
        print(f"wrote {model_dir}")
    os.remove(tok_path)


if __name__ == "__main__":
    main()
