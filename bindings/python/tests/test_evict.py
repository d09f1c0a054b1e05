"""compress_context / compare_policies against `kompress evict --json` / `kompress compare --json`."""

from __future__ import annotations

import json

import pytest

import kompress
from conftest import cli, fixture_texts

CONTEXT = "\n".join(p.read_text() for p in fixture_texts() if p.suffix in (".py", ".txt"))
QUESTION = "Which command lists the files, and what license applies?"


@pytest.mark.parametrize("policy", kompress.POLICIES)
@pytest.mark.parametrize("budget", [0.2, 0.35, 1.0])
def test_compress_context_is_the_clis_json_byte_for_byte(tmp_path, policy, budget):
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT)
    out = cli("evict", str(path), "-q", QUESTION, "-b", str(budget), "--policy", policy, "--seed", "3", "--json")
    r = kompress.compress_context(CONTEXT, QUESTION, budget_ratio=budget, policy=policy, seed=3)
    assert r.to_json() == out.rstrip("\n")
    assert r.to_dict() == json.loads(out)


def test_annotations_are_the_clis(tmp_path):
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT)
    out = cli("evict", str(path), "-q", QUESTION, "--json", "--annotate")
    r = kompress.compress_context(CONTEXT, QUESTION, annotate=True)
    assert r.to_json() == out.rstrip("\n") and len(r.annotations) == len(CONTEXT.splitlines())


def test_supercompress_field_names():
    r = kompress.compress_context(CONTEXT, QUESTION)
    d = r.to_dict()
    assert r.compressed_text == d["compressed_text"] and r.kept_tokens == d["kept_tokens"]
    assert r.original_tokens == d["original_tokens"] and r.kv_savings_pct == d["kv_savings_pct"]
    assert r.original_text == CONTEXT and r.question == QUESTION and r.budget_ratio == 0.35
    assert r.policy_name == d["policy"]
    assert r.kept_line_ratio == len(d["kept_lines"]) / len(CONTEXT.splitlines())
    assert r.compression_ratio == d["original_tokens"] / d["kept_tokens"]
    assert r.kv_savings_pct == (1 - d["kept_tokens"] / d["original_tokens"]) * 100
    blank = kompress.compress_context("  \n", QUESTION)
    assert (blank.policy_name, blank.compressed_text, blank.kept_line_ratio) == ("noop", "  \n", 1.0)


def test_compare_policies_is_the_clis_compare(tmp_path):
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT)
    rows = json.loads(cli("compare", str(path), "-q", QUESTION, "-b", "0.3", "--json"))
    got = kompress.compare_policies(CONTEXT, QUESTION, budget_ratio=0.3)
    assert list(got) == [row["policy"] for row in rows] == list(kompress.POLICIES)
    for row in rows:
        assert got[row["policy"]].to_dict() == row["result"]
        assert got[row["policy"]].metrics == row["metrics"]
    some = kompress.compare_policies(CONTEXT, QUESTION, 0.3, policies=["h2o", "learned"])
    assert list(some) == ["h2o", "learned"] and some["h2o"].to_dict() == got["h2o"].to_dict()
