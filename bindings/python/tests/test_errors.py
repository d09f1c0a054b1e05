"""Bad input from Python: exceptions of the KompressError hierarchy with one-line messages, never a
crash, a hang or a pyo3 PanicException."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kompress
from conftest import cli_error, model_dir


@pytest.fixture(scope="module")
def runner():
    return kompress.KompressRunner(model=model_dir("v5"), device="cpu")


def test_the_hierarchy():
    for cls in (kompress.ModelNotFoundError, kompress.InvalidOptionError, kompress.InvalidInputError):
        assert issubclass(cls, kompress.KompressError) and issubclass(cls, Exception)
    assert issubclass(kompress.InvalidOptionError, ValueError)
    assert issubclass(kompress.InvalidInputError, ValueError)
    assert issubclass(kompress.ModelNotFoundError, FileNotFoundError)


@pytest.mark.parametrize(
    "text,message",
    [
        (None, "texts[0] must be str, not NoneType"),
        (b"some bytes", "texts[0] must be str, not bytes (decode it first"),
        (42, "texts[0] must be str, not int"),
        ("lone \ud800 surrogate", "texts[0] is not valid Unicode: it holds a lone surrogate"),
        ("x" * (50 << 20), "texts[0] has 52428800 bytes of UTF-8, more than max_text_bytes (16777216)"),
    ],
    ids=["None", "bytes", "int", "surrogate", "50MB"],
)
def test_bad_texts(runner, text, message):
    with pytest.raises(kompress.InvalidInputError) as e:
        runner.compress(text)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    if not isinstance(text, str) or len(text) < 1000:
        with pytest.raises(kompress.InvalidInputError):
            runner.score(text)


def test_a_batch_must_be_a_list(runner):
    with pytest.raises(kompress.InvalidInputError, match="texts must be a list of str, not str"):
        runner.compress_batch("one text")
    with pytest.raises(kompress.InvalidInputError, match="texts\\[1\\] must be str, not NoneType"):
        runner.compress_batch(["fine", None])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"ratio": -0.5}, "ratio -0.5 is not in (0, 1]"),
        ({"ratio": 1.5}, "ratio 1.5 is not in (0, 1]"),
        ({"threshold": 2}, "threshold 2 is not in [0, 1]"),
        ({"ratio": "half"}, "ratio: must be a number, not str"),
        ({"target_tokens": -3}, "target_tokens: -3: must be 0 or more"),
        ({"ratio": 0.5, "threshold": 0.5}, "ratio: `threshold` and `ratio` exclude each other"),
        ({"mode": "fast"}, "mode: unknown variant `fast`"),
        ({"compat": "pytorch"}, "compat: unknown compat `pytorch` (headroom or off)"),
        ({"chunk_words": 0}, "chunk_words must be at least 1"),
        ({"chunk_tokens": 9999}, "chunk_tokens 9999 exceeds the model's maximum of 512"),
        ({"colour": "red"}, "colour: unknown field `colour`"),
        ({"protect": "yes"}, "protect: must be True or False"),
        ({"time_budget_ms": 0}, "time_budget_ms: must be at least 1 ms"),
        ({"time_budget_ms": 86400001}, "time_budget_ms: 86400001 ms is more than the most allowed"),
        ({"time_budget_ms": -5}, "time_budget_ms: -5: must be 0 or more"),
        ({"time_budget_ms": "soon"}, "time_budget_ms: must be an int, not str"),
        ({"time_budget_ms": 1.5}, "time_budget_ms: must be an int, not float"),
    ],
)
def test_bad_options(runner, kwargs, message):
    with pytest.raises(kompress.InvalidOptionError) as e:
        runner.compress("some words " * 50, **kwargs)
    assert str(e.value).startswith(message), str(e.value)


def test_a_missing_model_dir_has_the_clis_message(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(kompress.ModelNotFoundError) as e:
        kompress.KompressRunner(model=missing)
    text = tmp_path / "text.txt"
    text.write_text("some words")
    assert str(e.value) == cli_error("score", "--model", missing, str(text))


def test_a_model_dir_without_its_files(tmp_path):
    with pytest.raises(kompress.ModelNotFoundError, match="model directory"):
        kompress.KompressRunner(model=str(tmp_path))


def test_offline_with_an_empty_cache_names_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(kompress.ModelNotFoundError, match="offline"):
        kompress.KompressRunner(model="chopratejas/kompress-base", offline=True)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"device": "tpu"}, "device: "),
        ({"dtype": "f64"}, "dtype: "),
        ({"threads": 0}, "threads: 0: the thread count must be at least 1"),
        # Found in a user's trial: these started threads until killed, or raised TypeError/OverflowError.
        ({"threads": 100000}, "threads: 100000: at most "),
        ({"threads": "2"}, "threads: must be an int or None, not str"),
        ({"max_text_bytes": -1}, "max_text_bytes: -1: must be 0 or more"),
        ({"dtype": "int8", "device": "cuda"}, ""),
    ],
)
def test_bad_runner_arguments(kwargs, message):
    with pytest.raises(kompress.InvalidOptionError) as e:
        kompress.KompressRunner(model=model_dir("v5"), **kwargs)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"ratio": float("nan")}, "ratio: nan: must be a finite number"),
        ({"ratio": float("inf")}, "ratio: inf: must be a finite number"),
        ({"threshold": float("nan")}, "threshold: nan: must be a finite number"),
        ({"ratio": "0.5"}, "ratio: must be a number, not str"),
        ({"target_tokens": -5}, "target_tokens: -5: must be 0 or more"),
        ({"target_tokens": 2.5}, "target_tokens: must be an int, not float"),
        ({"chunk_words": -1}, "chunk_words: -1: must be 0 or more"),
    ],
)
def test_bad_numeric_options_are_named_in_pythons_words(runner, kwargs, message):
    with pytest.raises(kompress.InvalidOptionError) as e:
        runner.compress("Some text to compress.", **kwargs)
    assert str(e.value) == message


def test_a_rust_panic_is_a_kompress_error():
    with pytest.raises(kompress.KompressError, match="internal error .*: boom"):
        kompress._kompress._panic("boom")


def test_a_caught_panic_prints_nothing_on_stderr():
    """The panic's message is in the KompressError; Rust's hook no longer prints it as well."""
    script = (
        "import kompress\n"
        "try:\n    kompress._kompress._panic('boom')\n"
        "except kompress.KompressError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and "boom" in proc.stdout, proc.stderr
    assert "panicked" not in proc.stderr and proc.stderr == "", proc.stderr


def test_bad_eviction_arguments():
    with pytest.raises(kompress.InvalidOptionError, match=r"budget ratio must be in \(0, 1\], got -0.5"):
        kompress.compress_context("a\nb", "q", budget_ratio=-0.5)
    with pytest.raises(kompress.InvalidOptionError, match="policy: unknown policy `best`"):
        kompress.compress_context("a\nb", "q", policy="best")
    with pytest.raises(kompress.InvalidInputError, match="context must be str, not NoneType"):
        kompress.compress_context(None, "q")
    with pytest.raises(kompress.InvalidInputError, match="question is not valid Unicode"):
        kompress.compress_context("a", "\udfff")
    with pytest.raises(kompress.ModelNotFoundError):
        kompress.compress_context("a\nb", "q", checkpoint="/no/such/net.safetensors")
