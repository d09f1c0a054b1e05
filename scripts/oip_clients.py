"""Drives `kompress serve`'s Open Inference Protocol v2 routes with NVIDIA's own client.

`tritonclient.http` (tritonclient[http], the KServe v2 / Triton REST client) talks to a server started
here on a free loopback port with a token and a custom `--model-name`: server and model liveness,
readiness and metadata, then `infer` with a BYTES tensor of texts (JSON data: the binary extension is
not served), with and without `target_ratio` and with the outputs named or not; every answer must
equal `kompress compress --json` on the same text (words, as `/compress` counts them).

    python scripts/oip_clients.py [--binary target/release/kompress] [--model tests/fixtures/models/v5]

Requirements: tritonclient[http], numpy (pip install; no GPU or Triton server needed).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

TOKEN = "oip-clients-check"
NAME = "kompress-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts() -> list:
    prose = (
        "Please make sure that you do not delete the file /etc/hosts before the backup has finished. "
        "The deployment on 2024-05-01 failed because the config at ./deploy/prod.yaml had 3 typos, "
        "and the on-call engineer never got paged. "
    )
    return [prose * 12, prose * 30, "too short to compress at all"]


def cli(binary: str, model: str, text: str, ratio) -> dict:
    cmd = [binary, "compress", "--model", model, "--device", "cpu", "--json"]
    cmd += [] if ratio is None else ["--ratio", str(ratio)]
    return json.loads(subprocess.run(cmd, input=text.encode(), capture_output=True, check=True).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="target/release/kompress")
    ap.add_argument("--model", default="tests/fixtures/models/v5")
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [args.binary, "serve", "--model", args.model, "--port", str(port), "--device", "cpu", "--model-name", NAME],
        env={**os.environ, "KOMPRESS_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    failures = 0

    def check(what: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        print(f"{what}: {'ok' if ok else 'MISMATCH'} {detail}")

    try:
        for _ in range(300):
            try:
                if client.is_server_ready():
                    break
            except Exception:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the server never became ready")
        check("is_server_live", client.is_server_live())
        check("is_model_ready", client.is_model_ready(NAME, headers=auth))
        meta = client.get_model_metadata(NAME, headers=auth)
        check("get_model_metadata", meta["name"] == NAME and meta["inputs"][0]["datatype"] == "BYTES",
              json.dumps(meta["inputs"]))
        check("server metadata", client.get_server_metadata(headers=auth)["name"] == "kompress")
        try:
            client.is_model_ready("other", headers=auth)
            unknown = client.get_model_metadata("other", headers=auth)
            check("unknown model", False, str(unknown))
        except InferenceServerException as e:
            check("unknown model", "no model named `other`" in str(e), str(e))

        batch = texts()
        for ratio in (None, 0.5):
            for named in (False, True):
                data = np.array([t.encode() for t in batch], dtype=np.object_).reshape(len(batch), 1)
                tensor = http.InferInput("text", list(data.shape), "BYTES")
                tensor.set_data_from_numpy(data, binary_data=False)
                outputs = None
                if named:
                    outputs = [http.InferRequestedOutput(n, binary_data=False)
                               for n in ("compressed", "original_tokens", "compressed_tokens")]
                params = None if ratio is None else {"target_ratio": ratio}
                result = client.infer(NAME, [tensor], outputs=outputs, headers=auth, parameters=params,
                                      request_id="r1")
                compressed = [c.decode() if isinstance(c, bytes) else c for c in result.as_numpy("compressed")]
                original = result.as_numpy("original_tokens").tolist()
                kept = result.as_numpy("compressed_tokens").tolist()
                for i, text in enumerate(batch):
                    want = cli(args.binary, args.model, text, ratio)
                    ok = (compressed[i], original[i], kept[i]) == (
                        want["compressed"], want["original_words"], want["kept_words"])
                    check(f"infer text {i} target_ratio={ratio} outputs {'named' if named else 'all'}", ok,
                          f"({original[i]} -> {kept[i]} words)")
                check("infer id", result.get_response()["id"] == "r1")
        try:
            client.infer(NAME, [tensor], headers={"Authorization": "Bearer wrong"})
            check("wrong token", False)
        except InferenceServerException as e:
            check("wrong token", "wrong token" in str(e), str(e))
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        check("server exit status after SIGTERM", code == 0, str(code))
    print("all equal" if failures == 0 else f"{failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
