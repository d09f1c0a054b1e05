"""KompressRunner.score against `kompress score --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kompress
from conftest import cli, fixture_texts, model_dir

TEXTS = [p for p in fixture_texts() if p.suffix in (".txt", ".md")]


@pytest.mark.parametrize("model", ["v5", "nospan", "v2"])
@pytest.mark.parametrize("path", TEXTS[:3] + [None], ids=[p.name for p in TEXTS[:3]] + ["short"])
def test_score_is_the_clis_json_with_numpy_arrays(model, path):
    text = "Keep the numbers 42 and 0x7f, café, naïve über." if path is None else path.read_text()
    # The fixture models take at most 512 tokens: the first lines of a text.
    text = "\n".join(text.splitlines()[:12])
    runner = kompress.KompressRunner(model=model_dir(model), device="cpu")
    expected = cli("score", "--json", "--model", model_dir(model), "--device", "cpu", stdin=text)
    scores = runner.score(text)
    assert scores.to_json() == expected.rstrip("\n")
    ref = json.loads(expected)
    for name in ("token_prob", "score"):
        arr = getattr(scores, name)
        assert arr.dtype == np.float32
        assert np.array_equal(arr, np.asarray(ref[name], dtype=np.float32))
    assert scores.logits.dtype == np.float32 and scores.logits.shape == (len(scores), 2)
    assert np.array_equal(scores.logits, np.asarray(ref["logits"], dtype=np.float32))
    assert scores.input_ids.tolist() == ref["input_ids"]
    assert scores.word_ids.tolist() == [-1 if w is None else w for w in ref["word_ids"]]
    if ref["span_score"] is None:
        assert scores.span_score is None and model == "nospan"
    else:
        assert np.array_equal(scores.span_score, np.asarray(ref["span_score"], dtype=np.float32))
    # Each token's offsets are its word's characters in the text.
    words = text.split()
    for w, (start, end) in zip(scores.word_ids.tolist(), scores.offsets.tolist()):
        assert (text[start:end] == words[w]) if w >= 0 else (start, end) == (0, 0)


def test_an_empty_text_scores_to_empty_arrays():
    runner = kompress.KompressRunner(model=model_dir("v5"), device="cpu")
    scores = runner.score("  \n ")
    assert len(scores) == 0 and scores.score.dtype == np.float32 and scores.span_score.size == 0
    assert scores.to_json() == cli("score", "--json", "--model", model_dir("v5"), stdin="  \n ").rstrip("\n")


def test_a_text_longer_than_the_model_takes_is_an_input_error():
    runner = kompress.KompressRunner(model=model_dir("v5"), device="cpu")
    with pytest.raises(kompress.InvalidInputError, match="more than the model's maximum of 512"):
        runner.score("word " * 2000)


@pytest.mark.parametrize("dtype", ["int8", "int8-wo", "int8-wo-g128", "bf16"])
def test_every_cpu_form_scores_as_the_cli_does(dtype):
    text = "\n".join(fixture_texts()[0].read_text().splitlines()[:12])
    runner = kompress.KompressRunner(model=model_dir("v5"), device="cpu", dtype=dtype)
    assert runner.dtype == dtype
    expected = cli("score", "--json", "--model", model_dir("v5"), "--device", "cpu", "--dtype", dtype, stdin=text)
    assert runner.score(text).to_json() == expected.rstrip("\n")
