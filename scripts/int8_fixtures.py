"""Records the reference outputs of `--dtype int8` for the fixture models in
tests/fixtures/expected/int8.json.

The reference is kompress_ref.py's PyTorch model with its four kinds of encoder linear layer
(attention Wqkv and Wo, MLP Wi and Wo) replaced by the int8 scheme of src/kernels/int8, emulated
exactly in torch:
- weights: symmetric per output channel, q = round_half_even(w * (127 / max|row|)), scale max|row| / 127
  (an all-zero row: q = 0, scale 0); Wqkv's query rows are first multiplied by 1/sqrt(head_dim), as
  kompress folds that factor into Wqkv before quantising (the emulation multiplies the query back by
  sqrt(head_dim), a power of two for the fixtures, so attention's own scaling stays exact);
- activations: the same per row (token), at every call;
- integer products in int64, then out = acc * (sx[row] * sw[col]) in f32;
- the token embedding table quantised per row the same way and read back as q * scale (f32).
Everything else (norms, attention, heads) stays f32.

Usage (needs torch, transformers, safetensors):
    python scripts/int8_fixtures.py [--out tests/fixtures]
"""

import argparse
import json
import math
import os

import torch
import torch.nn as nn

from kompress_ref import encode_words, load_dir, words_of

MODELS = ["v4", "v5", "nospan", "v2"]


def quantise_rows(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 (as int64) and the f32 scales."""
    amax = m.abs().amax(dim=-1)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.round(m * inv[:, None])  # torch.round rounds half to even
    return q.to(torch.int64), amax / 127.0


class Int8Linear(nn.Module):
    """`x @ W^T` through int8 weights and per-token int8 activations; `unfold` multiplies the first
    `fold_rows` output columns back by `unfold` (see the module's docstring)."""

    def __init__(self, weight: torch.Tensor, fold_rows: int = 0, fold: float = 1.0):
        super().__init__()
        w = weight.detach().clone()
        w[:fold_rows] = w[:fold_rows] * fold
        self.qw, self.sw = quantise_rows(w)
        self.fold_rows, self.unfold = fold_rows, 1.0 / fold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        qx, sx = quantise_rows(x.reshape(-1, shape[-1]))
        acc = qx @ self.qw.T
        out = acc.to(torch.float32) * (sx[:, None] * self.sw[None, :])
        out[:, : self.fold_rows] *= self.unfold
        return out.reshape(*shape[:-1], -1)


def to_int8(model) -> None:
    cfg = model.encoder.config
    table = model.encoder.embeddings.tok_embeddings.weight
    q, scale = quantise_rows(table.detach())
    with torch.no_grad():
        table.copy_(q.to(torch.float32) * scale[:, None])
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    fold = 1.0 / math.sqrt(head_dim)
    assert math.log2(head_dim) % 2 == 0, "the emulation is exact only for head sizes that are powers of 4"
    for layer in model.encoder.layers:
        layer.attn.Wqkv = Int8Linear(layer.attn.Wqkv.weight, cfg.hidden_size, fold)
        layer.attn.Wo = Int8Linear(layer.attn.Wo.weight)
        layer.mlp.Wi = Int8Linear(layer.mlp.Wi.weight)
        layer.mlp.Wo = Int8Linear(layer.mlp.Wo.weight)


def rounded(t: torch.Tensor) -> list:
    return [float(f"{x:.7g}") for x in t.reshape(-1).tolist()]


def record(model_dir: str, inputs: dict) -> dict:
    model, tokenizer = load_dir(model_dir)
    to_int8(model)
    cases = {}
    for key, text in inputs.items():
        ids, _ = encode_words(tokenizer, words_of(text))
        out = model.score(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        cases[key] = {"token_prob": rounded(out["token_prob"][0]), "score": rounded(out["score"][0])}
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    out = os.path.abspath(ap.parse_args().out)
    with open(os.path.join(out, "inputs.json")) as f:
        inputs = json.load(f)
    recorded = {name: record(os.path.join(out, "models", name), inputs) for name in MODELS}
    with open(os.path.join(out, "expected", "int8.json"), "w") as f:
        json.dump(recorded, f)
    print(f"wrote {os.path.join(out, 'expected', 'int8.json')}")


if __name__ == "__main__":
    main()
