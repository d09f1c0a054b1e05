"""The Ray Data example (examples/ray_compress.py) on a local Ray with 2 CPUs: every output equals the
CLI's `compress --json` for that text."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, cli, fixture_texts, model_dir, without_input

pytest.importorskip("ray", reason="the Ray example needs `ray[data]` (.ci/run installs it)")

pytestmark = pytest.mark.ray


def test_the_ray_example_matches_the_cli(tmp_path):
    texts = []
    for path in fixture_texts():
        lines = path.read_text().splitlines()
        texts += ["\n".join(lines[i : i + 9]) for i in range(0, len(lines), 9)]
    texts = [t for t in texts if t.strip()][:24]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ray_compress.py"), str(corpus), str(out),
         "--model", model_dir("v5"), "--actors", "2", "--threads", "1", "--batch-size", "4",
         "--ratio", "0.5", "--num-cpus", "2"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    rows = [json.loads(l) for f in sorted(out.glob("*.json*")) for l in f.read_text().splitlines() if l]
    assert sorted(r["id"] for r in rows) == list(range(len(texts)))
    jsonl = cli("compress", "--jsonl", "--model", model_dir("v5"), "--device", "cpu", "--ratio", "0.5", str(corpus))
    by_line = {}
    for line in jsonl.splitlines():
        n = json.loads(line)["line"]
        by_line[n - 1] = without_input(line.replace(f',"line":{n}', "", 1), str(corpus))
    for r in rows:
        assert r["text"] == texts[r["id"]]
        assert r["result"] == by_line[r["id"]], r["id"]
        assert r["compressed"] == json.loads(r["result"])["compressed"]
