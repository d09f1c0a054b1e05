"""The PyTorch reference for Kompress, shared by the fixture and parity scripts.

The model is the one Headroom 0.42 ships (`headroom/transforms/kompress_compressor.py`,
`HeadroomCompressorModel`): a transformers `ModernBertModel` with eager attention, a token head
Linear(hidden, 2) and a span head Conv1d(k5) -> GELU -> Conv1d(k3) -> Sigmoid. Weights come from a
model directory in either published layout: `model.safetensors` (v1 keys `encoder.*`,
`token_head.*`, `span_conv.*`) or `merged.pt` (v2: a dict of state dicts).

Requirements: torch, transformers >= 4.48 (5.x tested), tokenizers, safetensors.
"""

import json
import os

import torch
import torch.nn as nn
from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast


class KompressRef(nn.Module):
    """ModernBERT encoder with Kompress's token and span heads (span head optional)."""

    def __init__(self, config: ModernBertConfig, span_channels: int | None = 256):
        super().__init__()
        config._attn_implementation = "eager"
        self.encoder = ModernBertModel(config)
        hidden = config.hidden_size
        self.token_head = nn.Linear(hidden, 2)
        self.span_conv = None
        if span_channels:
            self.span_conv = nn.Sequential(
                nn.Conv1d(hidden, span_channels, kernel_size=5, padding=2),
                nn.GELU(),
                nn.Conv1d(span_channels, 1, kernel_size=3, padding=1),
                nn.Sigmoid(),
            )

    @torch.no_grad()
    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Per-token outputs exactly as the reference computes them (`get_scores`/`get_keep_mask`)."""
        hidden = self.encoder(input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.token_head(hidden)
        prob = torch.softmax(logits, dim=-1)[:, :, 1]
        out = {"hidden": hidden, "logits": logits, "token_prob": prob, "span_score": None, "score": prob}
        if self.span_conv is not None:
            span = self.span_conv(hidden.transpose(1, 2)).squeeze(1)
            out["span_score"] = span
            out["score"] = prob * (0.5 + 0.5 * span)
        return out


def load_dir(model_dir: str) -> tuple[KompressRef, PreTrainedTokenizerFast]:
    """Loads a Kompress model directory (config.json, tokenizer.json, model.safetensors or merged.pt)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = ModernBertConfig(**json.load(f))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    merged = os.path.join(model_dir, "merged.pt")
    if os.path.exists(merged):
        ckpt = torch.load(merged, map_location="cpu", weights_only=True)
        state = {f"encoder.{k}": v for k, v in ckpt["encoder_state_dict"].items()}
        state.update({f"token_head.{k}": v for k, v in ckpt["token_head_state_dict"].items()})
        state.update({f"span_conv.{k}": v for k, v in (ckpt.get("span_conv_state_dict") or {}).items()})
    else:
        from safetensors.torch import load_file

        state = load_file(os.path.join(model_dir, "model.safetensors"))
    span_w = state.get("span_conv.0.weight")
    model = KompressRef(config, span_channels=None if span_w is None else span_w.shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval(), tokenizer


def words_of(text: str) -> list[str]:
    """Whitespace words, line by line (the order `kompress score` uses)."""
    return [w for line in text.split("\n") for w in line.split()]


def encode_words(tokenizer: PreTrainedTokenizerFast, words: list[str]) -> tuple[list[int], list]:
    """Pre-split encoding as the reference does it (`is_split_into_words=True`)."""
    enc = tokenizer(words, is_split_into_words=True)
    return enc["input_ids"], enc.word_ids()
