"""Writes tests/fixtures/models/llmlingua-2-bert-base-multilingual-cased-tiny-bin: the tiny LLMLingua-2
BERT fixture (scripts/llmlingua_fixtures.py) with its weights as `pytorch_model.bin`, the flat
`torch.save(model.state_dict())` that `transformers` wrote before safetensors (and that some
fine-tuned LLMLingua-2 checkpoints still ship), instead of `model.safetensors`. tests/llmlingua2.rs
checks that kompress reads it to the same bits.

    python scripts/state_dict_fixture.py

Requirements: torch, transformers.
"""

import os
import shutil

import torch
from transformers import BertForTokenClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
SRC = os.path.join(MODELS, "llmlingua-2-bert-base-multilingual-cased-tiny")
OUT = SRC + "-bin"


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(SRC, name), os.path.join(OUT, name))
    model = BertForTokenClassification.from_pretrained(SRC)
    torch.save(model.state_dict(), os.path.join(OUT, "pytorch_model.bin"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
