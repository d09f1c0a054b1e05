"""Writes tests/fixtures/state_dict/pytorch_model.bin: the weights of the tiny LLMLingua-2 BERT fixture
(tests/fixtures/models/llmlingua-2-bert-base-multilingual-cased-tiny, scripts/llmlingua_fixtures.py)
as the flat `torch.save(model.state_dict())` that `transformers` wrote before safetensors (and that
some fine-tuned LLMLingua-2 checkpoints still ship). tests/llmlingua2.rs puts it in a model directory
beside that fixture's config.json and tokenizer.json and checks that kompress reads it to the same
bits as the safetensors.

    python scripts/state_dict_fixture.py

Requirements: torch, transformers.
"""

import os

import torch
from transformers import BertForTokenClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests", "fixtures", "models", "llmlingua-2-bert-base-multilingual-cased-tiny")
OUT = os.path.join(ROOT, "tests", "fixtures", "state_dict", "pytorch_model.bin")


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    model = BertForTokenClassification.from_pretrained(SRC)
    torch.save(model.state_dict(), OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
