"""Writes a kompress-base-shaped model with seeded random weights, for GPU parity and benchmarks.

The shape is ModernBERT-base's (22 layers, hidden 768, GeGLU 1152, 12 heads, global attention every
3rd layer, 128-token window, 8192 positions) with Kompress's 256-channel span head; the tokenizer and
the weight recipe are the fixture models' (scripts/make_fixtures.py: seeded, large enough that every
tensor moves the outputs, so keep decisions are not all coin flips at p = 0.5). It stands in for the
published checkpoints, which cannot be downloaded here; nothing in it is committed.

    python scripts/make_full_model.py OUT_DIR [--seed 0]

Requirements: torch, transformers, tokenizers, safetensors.
"""

import argparse
import os
import tempfile

from make_fixtures import base_config, build, train_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tok = train_tokenizer()
    cfg = base_config(tok, 22)
    cfg.update(
        hidden_size=768,
        intermediate_size=1152,
        num_attention_heads=12,
        max_position_embeddings=8192,
        local_attention=128,
        global_attn_every_n_layers=3,
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
        norm_eps=1e-5,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = os.path.join(tmp, "tokenizer.json")
        tok.save(tok_path)
        out = os.path.abspath(args.out)
        parent, name = os.path.dirname(out), os.path.basename(out)
        # build() writes <root>/models/<name>: point root at a scratch dir, then move the result.
        model_dir = build(tmp, name, cfg, args.seed, 256, tok_path, "safetensors")
        os.makedirs(parent, exist_ok=True)
        os.replace(model_dir, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
