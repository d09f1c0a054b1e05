"""Compress a JSONL dataset with Ray Data, one KompressRunner per actor.

Every input line is a JSON object with a "text" field (other fields, such as an "id", are kept). Every
output row adds the result's fields (compressed, original_tokens, compressed_tokens, compression_ratio,
...) and "result": the JSON ``kompress compress --json`` prints for that text (less its "input").

    pip install ./bindings/python "ray[data]"
    python examples/ray_compress.py corpus.jsonl out/ --model chopratejas/kompress-base \
        --actors 2 --threads 1 --ratio 0.5

On a laptop this starts a local Ray; on a cluster run it with ``--address auto`` (or RAY_ADDRESS set),
unchanged. Each actor reserves --threads CPUs and its runner uses exactly that many worker threads, so
actors x threads should equal the cores Ray may use (see docs/PYTHON.md for which split to pick).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Dict, Optional

import numpy as np


class Compressor:
    """A Ray Data callable class: loads the model once per actor, then compresses batch after batch."""

    def __init__(self, model: str, threads: int, device: str = "cpu", dtype: str = "auto", options: Optional[Dict[str, Any]] = None):
        # candle sizes its element-wise pool from this variable when it first starts (in this actor's
        # process, not yet): keep it to the actor's share of the cores.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        from kompress import KompressRunner

        self.runner = KompressRunner(model=model, device=device, dtype=dtype, threads=threads)
        self.options = options or {}

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        results = self.runner.compress_batch(texts, **self.options)
        out = dict(batch)
        out["compressed"] = np.array([r.compressed for r in results], dtype=object)
        for field in ("original_tokens", "compressed_tokens", "original_words", "kept_words", "tokens_saved"):
            out[field] = np.array([getattr(r, field) for r in results], dtype=np.int64)
        out["compression_ratio"] = np.array([r.compression_ratio for r in results], dtype=np.float64)
        out["result"] = np.array([r.to_json() for r in results], dtype=object)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="JSONL file (or folder of them) with a \"text\" field per line")
    p.add_argument("output", help="folder for the JSONL results")
    p.add_argument("--model", default="chopratejas/kompress-base", help="hub id or local model directory")
    p.add_argument("--dtype", default="auto", help="as the CLI's --dtype: auto, f32, bf16, int8, int8-wo, ...")
    p.add_argument("--actors", type=int, default=2, help="Ray actors, each with its own runner")
    p.add_argument("--threads", type=int, default=1, help="threads per actor (CPUs each actor reserves)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per map_batches call")
    p.add_argument("--ratio", type=float, help="keep this share of the words (default: the model card's rule)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    args = p.parse_args()

    import ray

    ray.init(address=args.address, num_cpus=args.num_cpus if args.address is None else None, include_dashboard=False)
    options = {} if args.ratio is None else {"ratio": args.ratio}
    started = time.perf_counter()
    # Reading and writing reserve no CPU: with actors x threads = all the CPUs, tasks that wait for a CPU
    # would never run (measured: the pipeline stalls). Enough blocks for every actor to get work,
    # whatever the input's file layout.
    light = {"num_cpus": 0}
    ds = ray.data.read_json(args.input, override_num_blocks=max(args.actors * 4, 1), ray_remote_args=light)
    ds = ds.map_batches(
        Compressor,
        fn_constructor_kwargs={"model": args.model, "threads": args.threads, "dtype": args.dtype, "options": options},
        concurrency=args.actors,
        num_cpus=args.threads,
        batch_size=args.batch_size,
        batch_format="numpy",
    )
    ds.write_json(args.output, ray_remote_args=light)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 3), "actors": args.actors, "threads": args.threads}))


if __name__ == "__main__":
    main()
