"""``kompress.ctxprune.Compressor`` against ctxprune 0.2.1's recorded results (tests/fixtures/ctxprune,
from scripts/ctxprune_fixtures.py): atoms, scores and every ``compress`` result identical, ctxprune's
callables (``unit``, ``measure``) included."""

from __future__ import annotations

import asyncio
import json

import pytest

import kompress
from conftest import ROOT, model_dir
from kompress.ctxprune import Atom, Compressor

MODELS = ["ctxprune-tiny", "llmlingua-2-bert-base-multilingual-cased-tiny"]


def fixture(name: str) -> dict:
    return json.loads((ROOT / "tests" / "fixtures" / "ctxprune" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=MODELS)
def recorded(request):
    fx = fixture(request.param)
    return fx, Compressor(model_dir(request.param), device="cpu", max_len=fx["max_len"], batch_size=4)


def test_atom_scores_are_ctxprunes(recorded):
    fx, c = recorded
    for name, t in fx["texts"].items():
        atoms, scores, counts = c.atom_scores(t["text"])
        assert [[a.ws, a.text] for a in atoms] == t["atoms"], name
        assert counts == t["tokens"], name
        assert scores == pytest.approx(t["scores"], abs=1e-5), name


def test_compress_is_ctxprunes(recorded):
    fx, c = recorded
    for case in fx["cases"]:
        text = fx["texts"][case["text"]]["text"]
        assert c.compress(text, **case["options"]) == case["result"], (case["text"], case["options"])


def test_callables_are_ctxprunes_measure_and_unit(recorded):
    fx, c = recorded
    words = lambda s: len(s.split())  # noqa: E731
    for case in fx["cases"]:
        opts = dict(case["options"])
        text = fx["texts"][case["text"]]["text"]
        if opts.pop("measure", None) is not None:
            if case["text"] == "spaces":
                continue  # str.split() splits at \x1c-\x1f too; the Rust `words` counter does not
            # A Python callable and the Rust counter of the same count agree.
            assert c.compress(text, measure=words, **opts) == c.compress(text, measure="words", **opts)
        elif opts.get("unit", "chars") == "chars":
            # ctxprune's chars, as a callable: len(" " + text) where whitespace precedes the atom.
            opts.pop("unit", None)
            assert c.compress(text, unit=lambda ts: [len(t) for t in ts], **opts) == case["result"]


def test_errors_and_async():
    c = Compressor(model_dir("ctxprune-tiny"), device="cpu")
    with pytest.raises(kompress.InvalidOptionError, match="unit must be 'chars' or 'tokens', not 'bytes'"):
        c.compress("a b", unit="bytes")
    with pytest.raises(kompress.InvalidOptionError, match="rate 1.5: not in"):
        c.compress("a b", rate=1.5)
    with pytest.raises(kompress.InvalidOptionTypeError, match="rate"):
        c.compress("a b", rate="0.5")

    def broken(_text):
        raise ZeroDivisionError("measure broke")

    with pytest.raises(ZeroDivisionError, match="measure broke"):
        c.compress("some words here", measure=broken)
    with pytest.raises(kompress.InvalidOptionError, match="unit gave 1 costs for 3 atoms"):
        c.compress("some words here", unit=lambda ts: [1])
    text = "Run cargo test in /work/main before pushing v1.2.3."
    assert asyncio.run(c.acompress(text, rate=0.4)) == c.compress(text, rate=0.4)
    assert c.atom_scores("a b")[0] == [Atom("", "a"), Atom(" ", "b")]
    assert c.compress("", rate=0.5) == {"text": "", "kept": 0, "total": 0}
