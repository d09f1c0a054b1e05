"""Shared fixtures: the repository's fixture models and texts, and the CLI the results are checked
against (``KOMPRESS_BIN``, default ``target/release/kompress`` of the repository root, which
``cargo build --release`` and ``.ci/run`` build)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "tests" / "fixtures" / "models"
TEXTS = ROOT / "tests" / "fixtures" / "texts"
BIN = Path(os.environ.get("KOMPRESS_BIN", ROOT / "target" / "release" / "kompress"))


def pytest_configure(config):
    if not BIN.is_file():
        raise pytest.UsageError(
            f"the kompress CLI is not at {BIN}: build it (cargo build --release) or point KOMPRESS_BIN at it"
        )


def model_dir(name: str) -> str:
    """A fixture model's directory, as a relative path from the repository root would differ: the
    absolute path is what both the CLI and the runner are given (it appears in the results)."""
    return str(MODELS / name)


def cli(*args: str, stdin: str | None = None) -> str:
    """Runs the CLI; its standard output, or a test failure with its standard error."""
    proc = subprocess.run(
        [str(BIN), *args],
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        env={**os.environ, "RAYON_NUM_THREADS": "2"},
    )
    if proc.returncode != 0:
        pytest.fail(f"kompress {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode()


def cli_error(*args: str) -> str:
    """The one-line error of a CLI run that must fail, without its `error: ` prefix."""
    proc = subprocess.run([str(BIN), *args], capture_output=True)
    assert proc.returncode != 0, f"kompress {' '.join(args)} succeeded"
    return proc.stderr.decode().strip().removeprefix("error: ")


def without_input(line: str, name: str) -> str:
    """A `compress --json` line less its "input" field (the runner has no file name), byte for byte."""
    field = ',"input":' + json.dumps(name)
    assert field in line, line
    return line.replace(field, "", 1)


def fixture_texts() -> List[Path]:
    return sorted(p for p in TEXTS.iterdir() if p.is_file())
