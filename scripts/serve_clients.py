"""Drives `kompress serve` with the real clients and checks they get what the CLI gives.

Headroom 0.42's own `RemoteKompressCompressor` (headroom-ai, `headroom/transforms/kompress_remote.py`)
and SuperCompress 0.5.0's own `SuperCompress` client (`supercompress/client.py`) talk to a server
started here on a free loopback port with a token; every answer must equal `kompress compress --json`
or `kompress evict --json` on the same text. Headroom's client is pointed at `/compress` and, with its
`path=""` (HEADROOM_KOMPRESS_ENDPOINT_PATH=""), at the serving engines' full URLs: TorchServe's
`/predictions/kompress`, KServe v1's `/v1/models/kompress:predict` and SageMaker's `/invocations`.

    python scripts/serve_clients.py [--binary target/release/kompress] [--model tests/fixtures/models/v5]

Requirements: headroom-ai==0.42.0, supercompress==0.5.0 (pip install; no torch needed).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from headroom.transforms.kompress_compressor import KompressConfig
from headroom.transforms.kompress_remote import RemoteKompressCompressor
from supercompress.client import SuperCompress

TOKEN = "sc_live_serve-clients-check"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts() -> list:
    """Prose with numbers, paths and negations, code, a table, and a short text."""
    prose = (
        "Please make sure that you do not delete the file /etc/hosts before the backup has finished. "
        "The deployment on 2024-05-01 failed because the config at ./deploy/prod.yaml had 3 typos, "
        "and the on-call engineer never got paged. "
    )
    code = "\n".join(
        f"def handler_{i}(request):\n    # fetch row {i} from the users table\n    return db.fetch({i}) or None"
        for i in range(40)
    )
    table = "\n".join(f"service-{i}    up    {i * 17 % 100} ms    eu-west-{i % 3}" for i in range(30))
    return [prose * 12, prose * 60 + "\n" + table, code, "too short to compress at all"]


def run(cmd: list, stdin: str) -> dict:
    out = subprocess.run(cmd, input=stdin.encode(), capture_output=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="target/release/kompress")
    ap.add_argument("--model", default="tests/fixtures/models/v5")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.binary, "serve", "--model", args.model, "--port", str(port), "--device", "cpu"],
        env={**os.environ, "KOMPRESS_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    failures = 0
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server never became ready")

        # Headroom: CCR off so the answer is the server's text itself (CCR only appends a marker).
        compress = [args.binary, "compress", "--model", args.model, "--device", "cpu", "--json"]
        wants = {}
        for url, path in ((base, "/compress"), (base + "/predictions/kompress", ""),
                          (base + "/v1/models/kompress:predict", ""), (base + "/invocations", "")):
            headroom = RemoteKompressCompressor(url, token=TOKEN, config=KompressConfig(enable_ccr=False), path=path)
            for i, text in enumerate(texts()):
                for ratio in (None, 0.5):
                    got = headroom.compress(text, target_ratio=ratio)
                    flags = [] if ratio is None else ["--ratio", str(ratio)]
                    if (i, ratio) not in wants:
                        wants[(i, ratio)] = run(compress + flags, text)
                    want = wants[(i, ratio)]
                    ok = (got.compressed, got.original_tokens, got.compressed_tokens) == (
                        want["compressed"],
                        want["original_words"],
                        want["kept_words"],
                    ) and abs(got.compression_ratio - want["kept_words"] / want["original_words"]) < 1e-12
                    # Headroom passes texts under 10 words through itself, without calling the server.
                    failures += not ok
                    print(f"headroom {headroom.url[len(base):]} text {i} target_ratio={ratio}: "
                          f"{'ok' if ok else 'MISMATCH'} "
                          f"({got.original_tokens} -> {got.compressed_tokens} words, model {got.model_used})")

        client = SuperCompress(api_key=TOKEN, base_url=base)
        evict = [args.binary, "evict", "--json"]
        for i, text in enumerate(texts()):
            for query, budget in (("What does handler_7 return?", 0.35), ("Which file must not be deleted?", 0.2)):
                got = client.compress(text, query, budget_ratio=budget)
                want = run(evict + ["--question", query, "--budget", str(budget)], text)
                lines = max(len(text.splitlines()), 1)
                ok = (
                    got.compressed_text == want["compressed_text"]
                    and got.original_tokens == want["original_tokens"]
                    and got.kept_tokens == want["kept_tokens"]
                    and got.kv_savings_pct == round(want["kv_savings_pct"], 2)
                    and got.kept_line_ratio == round(len(want["kept_lines"]) / lines, 3)
                    and got.policy_name == want["policy"]
                    and got.budget_ratio == budget
                )
                failures += not ok
                print(f"supercompress text {i} budget {budget}: {'ok' if ok else 'MISMATCH'} "
                      f"({got.original_tokens} -> {got.kept_tokens} tokens, {got.kv_savings_pct}% KV saved)")

        # A wrong key: SuperCompress's client raises with the server's `detail`; Headroom fails open.
        try:
            SuperCompress(api_key="wrong", base_url=base).compress("x", "y")
            failures += 1
            print("supercompress wrong key: MISMATCH (no error)")
        except RuntimeError as e:
            ok = "401" in str(e) and "wrong token" in str(e)
            failures += not ok
            print(f"supercompress wrong key: {'ok' if ok else 'MISMATCH'} ({e})")
        text = texts()[0]
        passed = RemoteKompressCompressor(base, token="wrong", config=KompressConfig(enable_ccr=False)).compress(text)
        ok = passed.compressed == text
        failures += not ok
        print(f"headroom wrong token fails open: {'ok' if ok else 'MISMATCH'}")
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        print(f"server exit status after SIGTERM: {code}")
        failures += code != 0
    print("all equal" if failures == 0 else f"{failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
