"""Record Headroom 0.42's real compression pipeline on the fixture models, for tests/pipeline_parity.rs.

Drives `headroom.transforms.kompress_compressor.KompressCompressor.compress` (headroom-ai 0.42.0 from
PyPI, unpacked: `pip download --no-deps headroom-ai==0.42.0` and unzip) with a fixture model loaded by
`kompress_ref.load_dir`, CCR marker off, deadlines and time budgets off. Three keep rules, each through
Headroom's own code path:
- `card`: the PyTorch backend (`HeadroomCompressorModel.get_keep_mask`, Headroom's class and method);
- `threshold`: the ONNX backend (`_OnnxModel.get_keep_mask`, final score > 0.5), its session replaced
  by the PyTorch model computing `final_scores`;
- `ratio`: `compress(target_ratio=R)` (`get_scores`, top max(1, int(n*R)) words per chunk).
The token cap `_KOMPRESS_MAX_TOKENS` (512) is patched per case to exercise carry-over on small
inputs. Headroom's word-level decisions are read by wrapping `_join_kept_words_by_line`.

Usage: python scripts/headroom_parity.py [--headroom /path/to/unpacked/headroom] [--out tests/fixtures/pipeline]
Requirements: torch, transformers, tokenizers, safetensors, numpy, and headroom's import-time deps
(pydantic, tiktoken, opentelemetry-api, rich, pyyaml, click, tomlkit, truststore).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kompress_ref import load_dir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROSE = (
    "The deployment script copies the build artifacts to the staging server and then restarts the "
    "service. Please make sure that you do not delete /etc/kompress/config.toml before the backup has "
    "finished, because the service cannot start without it. If the restart fails, check the logs with "
    "--verbose and look for ConnectionRefused errors on port 8443 or 0x1F90. The team usually reviews "
    "these logs every morning, and in most cases the problem turns out to be a simple typo in the "
    "configuration file that was introduced during the last release."
)
TABLE = "NAME        STATUS    AGE\napi-7f9c    Running   3d\nworker-2b   Pending   5m\ncache-0     Running   12d"
CODE = (
    "def compute_total(items):\n    # never return None here, always a number\n"
    "    return sum(item.price * item.qty for item in items if item.qty > 0)\n"
)
CHAT = (
    "User: could you summarize what happened in the incident yesterday and why the pager went off?\n"
    "Assistant: the database replica fell behind by about forty minutes because a long running "
    "migration held a lock, so reads were served stale data until the on call engineer killed it."
)

# name -> (text, chunk_words, chunk_tokens)
CASES = {
    "prose": (PROSE, 350, 512),
    "prose_multichunk": ((PROSE + "\n") * 3, 40, 512),
    "token_cap_carry": (PROSE + "\n" + CHAT, 60, 48),
    "table_and_code": ("Pods in the cluster right now:\n" + TABLE + "\n" + CODE + PROSE, 350, 512),
    "mixed_long": ("\n\n".join([CHAT, TABLE, PROSE, CODE, CHAT]), 50, 96),
    "overlong_word": (PROSE[:300] + " " + "x" * 200 + "-" + "ab7" * 60 + " " + PROSE[300:], 80, 64),
    "short": ("Too short to compress: only a dozen words are here, so it passes.", 350, 512),
}
RATIO = 0.5


def load_headroom(path: str):
    sys.path.insert(0, path)
    import headroom.transforms.kompress_compressor as kc

    os.environ["HEADROOM_COMPRESSION_DEADLINE_MS"] = "0"
    os.environ["HEADROOM_KOMPRESS_TIME_BUDGET_SECONDS"] = "0"
    return kc


def headroom_model(kc, ref):
    """Headroom's own HeadroomCompressorModel class, holding the fixture's encoder and heads."""
    cls = kc._get_model_class()
    model = cls.__new__(cls)
    torch.nn.Module.__init__(model)
    model.encoder, model.token_head, model.span_conv = ref.encoder, ref.token_head, ref.span_conv
    return model.eval()


class FakeSession:
    """An ONNX Runtime session stand-in: `final_scores` from the PyTorch model."""

    def __init__(self, model):
        self.model = model

    def run(self, names, feeds):
        assert names == ["final_scores"]
        ids = torch.from_numpy(np.asarray(feeds["input_ids"]))
        mask = torch.from_numpy(np.asarray(feeds["attention_mask"]))
        return [self.model.get_scores(ids, mask).numpy()]


def run_case(kc, backends, text, chunk_words, chunk_tokens, mode):
    kc._KOMPRESS_MAX_TOKENS = chunk_tokens
    model, tokenizer, backend = backends[mode]
    kc._load_kompress = lambda *a, **k: (model, tokenizer, backend)
    captured = []
    join = kc._join_kept_words_by_line

    def spy(words, line_ids, kept_ids):
        captured.append(sorted(kept_ids))
        return join(words, line_ids, kept_ids)

    kc._join_kept_words_by_line = spy
    config = kc.KompressConfig(device="cpu", enable_ccr=False, chunk_words=chunk_words, min_input_words=64)
    comp = kc.KompressCompressor(config)

    def fail(exc):  # Headroom hides inference errors as passthrough: surface them instead.
        raise exc

    comp._record_inference_failure = fail
    result = comp.compress(text, target_ratio=RATIO if mode == "ratio" else None)
    kc._join_kept_words_by_line = join
    n_words = len(kc._words_by_line(text)[0])
    passthrough = not captured
    return {
        "kept": list(range(n_words)) if passthrough else captured[0],
        "passthrough": passthrough,
        "compressed": result.compressed,
        "original_words": n_words,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--headroom", default=os.environ.get("HEADROOM_SRC", "/work/ref/headroom"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/pipeline"))
    ap.add_argument("--models", default="v5,v4,v2")
    args = ap.parse_args()
    kc = load_headroom(args.headroom)
    os.makedirs(args.out, exist_ok=True)
    for name in args.models.split(","):
        ref, tokenizer = load_dir(os.path.join(ROOT, "tests/fixtures/models", name))
        tokenizer.pad_token = "[PAD]"
        model = headroom_model(kc, ref)
        backends = {
            "card": (model, tokenizer, "pytorch"),
            "threshold": (kc._OnnxModel(FakeSession(model)), tokenizer, "onnx_cpu"),
            "ratio": (model, tokenizer, "pytorch"),
        }
        cases = []
        for case, (text, chunk_words, chunk_tokens) in CASES.items():
            for mode in backends:
                rec = run_case(kc, backends, text, chunk_words, chunk_tokens, mode)
                rec.update(name=case, mode=mode, ratio=RATIO, text=text, chunk_words=chunk_words,
                           chunk_tokens=chunk_tokens)
                cases.append(rec)
                print(f"{name}/{case}/{mode}: kept {len(rec['kept'])}/{rec['original_words']}"
                      f"{' (passthrough)' if rec['passthrough'] else ''}")
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump({"model": name, "headroom": "headroom-ai 0.42.0", "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
