"""KompressRunner.compress / compress_batch against `kompress compress --json`, byte for byte."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import kompress
from conftest import TEXTS, cli, fixture_texts, model_dir, without_input

# Option sets as Python keywords, and the same as CLI flags.
OPTIONS = [
    ({}, []),
    ({"ratio": 0.5}, ["--ratio", "0.5"]),
    ({"threshold": 0.3}, ["--threshold", "0.3"]),
    ({"mode": "threshold"}, ["--mode", "threshold"]),
    ({"target_tokens": 60}, ["--target-tokens", "60"]),
    ({"compat": "headroom", "ratio": 0.4}, ["--compat", "headroom", "--ratio", "0.4"]),
    ({"protect": False, "ratio": 0.5}, ["--no-protect", "--ratio", "0.5"]),
    ({"protect_words": False, "count_tokens": "words", "min_words": 10}, ["--no-protect-words", "--count-tokens", "words", "--min-words", "10"]),
    ({"protect_markdown": False, "protect_code_lines": False, "mode": "threshold"}, ["--no-protect-markdown", "--no-protect-code-lines", "--mode", "threshold"]),
    ({"chunk_words": 40, "batch_size": 3, "explain": True}, ["--chunk-words", "40", "--batch-size", "3", "--explain"]),
    # A budget larger than the work: the same results, with the budget named in them.
    ({"time_budget_ms": 3600000, "ratio": 0.4}, ["--time-budget-ms", "3600000", "--ratio", "0.4"]),
]

MODELS = ["v5", "nospan", "v4", "v2"]


@pytest.fixture(scope="module")
def runners():
    return {name: kompress.KompressRunner(model=model_dir(name), device="cpu") for name in MODELS}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kwargs,flags", OPTIONS, ids=[" ".join(f) or "defaults" for _, f in OPTIONS])
def test_compress_is_the_clis_json_byte_for_byte(runners, model, kwargs, flags):
    files = fixture_texts()
    runner = runners[model]
    # The runner's dtype named: under --compat the CLI's `auto` is f32, the runner's is `auto`'s form.
    dtype = ["--dtype", runner.dtype]
    out = cli("compress", "--json", "--model", model_dir(model), "--device", "cpu", *dtype, *flags, *map(str, files))
    lines = out.splitlines()
    assert len(lines) == len(files)
    for path, line in zip(files, lines):
        result = runner.compress(path.read_text(), **kwargs)
        assert result.to_json() == without_input(line, str(path)), path.name
    # The batch shares forward passes and gives the same results.
    batch = runner.compress_batch([p.read_text() for p in files], **kwargs)
    assert [r.to_json() for r in batch] == [without_input(l, str(p)) for p, l in zip(files, lines)]


def test_result_fields(runners):
    text = (fixture_texts()[2]).read_text()
    r = runners["v5"].compress(text, ratio=0.5)
    d = r.to_dict()
    for field in (
        "compressed",
        "compression_ratio",
        "tokens_saved",
        "original_tokens",
        "compressed_tokens",
        "original_words",
        "kept_words",
    ):
        assert getattr(r, field) == d[field]
    assert r.passthrough_reason is None and "passthrough_reason" not in d
    assert r.tokens_saved == r.original_tokens - r.compressed_tokens
    assert str(r) == r.compressed
    short = runners["v5"].compress("too short to compress")
    assert short.passthrough_reason == "short" and short.compressed == "too short to compress"


def test_a_time_budget_says_how_much_was_scored(runners):
    runner = runners["v5"]
    text = (TEXTS / "gpl3_excerpt.txt").read_text()
    # Many chunks, one per pass: 1 ms is spent long before the last.
    r = runner.compress(text, time_budget_ms=1, chunk_words=8, batch_size=1, explain=True)
    assert r.unscored_reason == "time_budget" and r.time_budget_ms == 1
    assert r.scored_words < r.original_words
    cut = [d for d in r.words if d.get("unscored") == "time_budget"]
    assert len(cut) == r.original_words - r.scored_words
    assert all(d["kept"] for d in cut)
    # The words left unscored are the text's last ones, all in the output, in order.
    kept = [d["word"] for d in r.words if d["kept"]]
    assert r.compressed.split() == kept
    assert kept[len(kept) - len(cut):] == text.split()[len(text.split()) - len(cut):]
    whole = runner.compress(text, chunk_words=8, batch_size=1)
    assert whole.unscored_reason is None and whole.time_budget_ms is None
    assert whole.scored_words == whole.original_words
    assert "unscored_reason" in dir(whole) and "unscored_reason" not in whole.to_dict()
    # One budget for a batch: every text says what it got.
    batch = runner.compress_batch([text, text], time_budget_ms=1, chunk_words=8, batch_size=1)
    assert all(b.unscored_reason == "time_budget" and b.scored_words < b.original_words for b in batch)


def test_a_time_budget_matches_the_cli(runners):
    path = TEXTS / "gpl3_excerpt.txt"
    flags = ["--time-budget-ms", "1", "--chunk-words", "8", "--batch-size", "1"]
    line = cli("compress", "--json", "-q", "--model", model_dir("v5"), "--device", "cpu",
               "--dtype", runners["v5"].dtype, *flags, str(path))
    v = json.loads(line)
    assert v["unscored_reason"] == "time_budget" and v["time_budget_ms"] == 1
    r = runners["v5"].compress(path.read_text(), time_budget_ms=1, chunk_words=8, batch_size=1)
    # What was scored depends on the clock; the fields are the CLI's.
    assert set(r.to_dict()) == set(v) - {"input"}


def test_over_budget_gives_the_smallest_ratio(runners):
    runner = runners["v5"]
    code = (TEXTS / "sample.py").read_text()
    r = runner.compress(code, ratio=0.4)
    assert r.over_budget and r.min_ratio == r.kept_words / r.original_words > 0.4
    assert r.min_target_tokens is None
    t = runner.compress(code, target_tokens=20)
    assert t.over_budget and t.min_target_tokens == t.compressed_tokens > 20 and t.min_ratio is None
    prose = runner.compress((TEXTS / "gpl3_excerpt.txt").read_text(), ratio=0.4)
    assert not prose.over_budget and prose.min_ratio is None and prose.min_target_tokens is None


def test_empty_text_and_empty_batch(runners):
    runner = runners["v5"]
    expected = cli("compress", "--json", "--model", model_dir("v5"), "--device", "cpu", stdin="")
    assert runner.compress("").to_json() == without_input(expected.strip(), "-")
    assert runner.compress_batch([]) == []


def test_progress_reports_every_pass_up_to_the_total(runners):
    texts = [p.read_text() for p in fixture_texts()]
    seen = []
    runners["v5"].compress_batch(texts, chunk_words=30, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert len(seen) > 3
    done = [d for d, _ in seen]
    assert done == sorted(done)
    total = seen[-1][1]
    assert done[-1] == total and all(t == total for _, t in seen)


def test_progress_reaches_the_total_with_table_rows(runners):
    """The words of kept table rows are not counted as they go: the last report still says all."""
    table = "| name | size |\n|------|------|\n" + "| a file | 12 kB |\n" * 40
    seen = []
    runners["v5"].compress_batch([table, "Some prose around the table."], progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] > 0, seen


def test_an_exception_in_the_progress_callback_stops_the_batch(runners):
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop(f"{done}/{total}")

    with pytest.raises(Stop):
        runners["v5"].compress_batch([p.read_text() for p in fixture_texts()], chunk_words=30, progress=stop)


def test_a_runner_with_its_own_pool_gives_the_same_results(runners):
    own = kompress.KompressRunner(model=model_dir("v5"), device="cpu", threads=1)
    assert own.threads == 1 and runners["v5"].threads is None
    for path in fixture_texts():
        text = path.read_text()
        assert own.compress(text, ratio=0.5) == runners["v5"].compress(text, ratio=0.5)


def test_one_runner_shared_by_threads(runners):
    runner = runners["v4"]
    texts = [p.read_text() for p in fixture_texts()] * 3
    expected = [runner.compress(t, threshold=0.4).to_json() for t in texts]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: runner.compress(t, threshold=0.4).to_json(), texts))
    assert got == expected


def test_the_gil_is_released_while_the_model_works(runners):
    # A text long enough to keep the model busy; while it runs, this thread must keep running Python.
    text = "\n".join(p.read_text() for p in fixture_texts()) * 6
    runner = runners["v5"]
    done = threading.Event()
    worker = threading.Thread(target=lambda: (runner.compress(text, chunk_words=20, batch_size=1), done.set()))
    ticks = 0
    worker.start()
    while not done.is_set():
        ticks += 1
    worker.join()
    # With the GIL held for the whole call this loop would run a handful of times (one switch interval
    # before the call began); released, it spins all along.
    assert ticks > 10_000, ticks


def test_the_model_cards_import_path():
    from kompress.inference.pytorch_runner import KompressRunner

    assert KompressRunner is kompress.KompressRunner


def test_typing_and_help_ship_with_the_package():
    from pathlib import Path

    package = Path(kompress.__file__).parent
    for name in ("py.typed", "__init__.pyi", "_kompress.pyi", "inference/pytorch_runner.pyi"):
        assert (package / name).is_file(), name
    for obj in (kompress.KompressRunner, kompress.KompressRunner.compress, kompress.KompressRunner.compress_batch,
                kompress.KompressRunner.score, kompress.compress_context, kompress.compare_policies,
                kompress.CompressResult, kompress.TokenScores, kompress.ContextResult):
        assert obj.__doc__ and len(obj.__doc__) > 40, obj
