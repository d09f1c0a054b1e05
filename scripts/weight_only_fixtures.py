"""Records the reference outputs of `--dtype bf16` (on the CPU), `int8-wo` and `int8-wo-g128` for the
fixture models in tests/fixtures/expected/weight_only.json.

The reference is kompress_ref.py's PyTorch model with its four kinds of encoder linear layer
(attention Wqkv and Wo, MLP Wi and Wo) replaced by the scheme of src/kernels/weight_only, emulated in
torch (f32 products; kompress's accumulation order differs, so the scores agree to f32 rounding, not
bit for bit):
- bf16: weights rounded to bf16 (nearest, ties to even); the activations entering each layer rounded
  to bf16 the same way; an f32 product of the rounded values. The token embedding table in bf16.
- int8-wo: weights symmetric per output channel (int8_fixtures.quantise_rows: round half to even,
  scale max|row| / 127), used as q * scale in an f32 product with the f32 activations; int8-wo-g128
  the same per group of 128 inputs of a channel (the fixture models are at most 48 wide, so there the
  two forms coincide; the kernel tests cover smaller groups). The token embedding table quantised per
  row, as for `--dtype int8`.
Wqkv's query rows are first multiplied by 1/sqrt(head_dim), as kompress folds that factor in before
converting, and multiplied back after the product (a power of two for the fixtures: exact).

Usage (needs torch, transformers, safetensors):
    python scripts/weight_only_fixtures.py [--out tests/fixtures]
"""

import argparse
import json
import math
import os

import torch
import torch.nn as nn

from int8_fixtures import MODELS, quantise_rows, rounded
from kompress_ref import encode_words, load_dir, words_of

FORMS = ["bf16", "int8-wo", "int8-wo-g128"]


def bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).to(torch.float32)


def quantised(w: torch.Tensor, group: int | None) -> torch.Tensor:
    """`w` as its int8 weight-only form reads it: q * scale per channel, or per group of inputs."""
    group = group or w.shape[1]
    parts = []
    for start in range(0, w.shape[1], group):
        q, scale = quantise_rows(w[:, start : start + group])
        parts.append(q.to(torch.float32) * scale[:, None])
    return torch.cat(parts, dim=1)


class WeightOnlyLinear(nn.Module):
    """`x @ W^T` in one of FORMS; the first `fold_rows` output columns are computed from rows
    multiplied by `fold` and multiplied back after."""

    def __init__(self, weight: torch.Tensor, form: str, fold_rows: int = 0, fold: float = 1.0):
        super().__init__()
        w = weight.detach().clone()
        w[:fold_rows] = w[:fold_rows] * fold
        self.form = form
        if form == "bf16":
            self.w = bf16(w)
        else:
            self.w = quantised(w, 128 if form == "int8-wo-g128" else None)
        self.fold_rows, self.unfold = fold_rows, 1.0 / fold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "bf16":
            x = bf16(x)
        out = x @ self.w.T
        out[..., : self.fold_rows] *= self.unfold
        return out


def convert(model, form: str) -> None:
    cfg = model.encoder.config
    table = model.encoder.embeddings.tok_embeddings.weight
    with torch.no_grad():
        if form == "bf16":
            table.copy_(bf16(table))
        else:
            q, scale = quantise_rows(table.detach())
            table.copy_(q.to(torch.float32) * scale[:, None])
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    fold = 1.0 / math.sqrt(head_dim)
    assert math.log2(head_dim) % 2 == 0, "the emulation is exact only for head sizes that are powers of 4"
    for layer in model.encoder.layers:
        layer.attn.Wqkv = WeightOnlyLinear(layer.attn.Wqkv.weight, form, cfg.hidden_size, fold)
        layer.attn.Wo = WeightOnlyLinear(layer.attn.Wo.weight, form)
        layer.mlp.Wi = WeightOnlyLinear(layer.mlp.Wi.weight, form)
        layer.mlp.Wo = WeightOnlyLinear(layer.mlp.Wo.weight, form)


def record(model_dir: str, form: str, inputs: dict) -> dict:
    model, tokenizer = load_dir(model_dir)
    convert(model, form)
    cases = {}
    for key, text in inputs.items():
        ids, _ = encode_words(tokenizer, words_of(text))
        with torch.no_grad():
            out = model.score(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        cases[key] = {"token_prob": rounded(out["token_prob"][0]), "score": rounded(out["score"][0])}
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    out = os.path.abspath(ap.parse_args().out)
    with open(os.path.join(out, "inputs.json")) as f:
        inputs = json.load(f)
    recorded = {
        form: {name: record(os.path.join(out, "models", name), form, inputs) for name in MODELS}
        for form in FORMS
    }
    path = os.path.join(out, "expected", "weight_only.json")
    with open(path, "w") as f:
        json.dump(recorded, f)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
