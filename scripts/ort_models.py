"""ONNX exports of the Kompress scoring graph and their ONNX Runtime int8 forms, cached on disk.

Shared by scripts/bench_pytorch.py, scripts/bench_e2e.py and scripts/int8_agreement.py. Three forms
of one graph (`input_ids`, `attention_mask` -> `final_scores`, what Headroom's ONNX backend runs):

- `fp32`: `torch.onnx.export` (TorchScript exporter, opset 17, dynamic batch and length) of the eager
  model; Headroom ships such a file as `onnx/kompress-fp32.onnx`.
- `int8-wo`: weight-only 8-bit, `MatMulNBitsQuantizer(bits=8, block_size=128, is_symmetric=True,
  accuracy_level=4)` on the fp32 export: every MatMul weight becomes a `com.microsoft.MatMulNBits`
  node, embeddings and norms stay fp32. What Headroom ships as `onnx/kompress-int8-wo.onnx` (its
  recipe is not published; a 128 block gives about the shipped file's 261 MB on the real vocabulary).
- `int8-dyn`: `quantize_dynamic(weight_type=QInt8, per_channel=False)` (ONNX Runtime's defaults:
  per-tensor weight scales, activations quantized per call); the v1-era `onnx/kompress-int8.onnx`.

The files live in $KOMPRESS_ONNX_CACHE (default ~/.cache/kompress-onnx), one folder per key: the
model's config (its shape), where its weights came from (a seed, or a weights file's path, size and
mtime), torch's version and the outputs. A second run with the same key reuses them; delete the
folder to rebuild. With `extra_outputs`, the graph also returns `token_logits` [b, t, 2] and
`span_score` [b, t] (for the card rule); Headroom only asks for `final_scores`.

Requirements: torch, transformers, onnx, onnxruntime (>= 1.20 for 8-bit MatMulNBits).
"""

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
import warnings

import torch


def require_ort():
    """Imports onnxruntime and onnx, or exits with a message naming what is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        sys.exit(f"error: the ONNX engines need onnx and onnxruntime in this Python ({sys.executable}): {e}")
    return onnxruntime


class Scoring(torch.nn.Module):
    """ids + mask -> final scores (what Headroom's ONNX graph returns), optionally logits and span too."""

    def __init__(self, model, extra_outputs: bool = False):
        super().__init__()
        self.model = model
        self.extra_outputs = extra_outputs

    def forward(self, input_ids, attention_mask):
        hidden = self.model.encoder(input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.model.token_head(hidden)
        prob = torch.softmax(logits, dim=-1)[:, :, 1]
        span = self.model.span_conv(hidden.transpose(1, 2)).squeeze(1)
        final = prob * (0.5 + 0.5 * span)
        if self.extra_outputs:
            return final, logits, span
        return final


FORMS = ("fp32", "int8-wo", "int8-dyn")
WO = dict(bits=8, block_size=128, is_symmetric=True, accuracy_level=4)


def cache_root() -> str:
    return os.environ.get("KOMPRESS_ONNX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kompress-onnx")


def weights_origin(model_dir: str) -> str:
    """Identifies a model directory's weights without reading them: path, size and mtime."""
    for name in ("model.safetensors", "merged.pt"):
        p = os.path.join(model_dir, name)
        if os.path.exists(p):
            st = os.stat(p)
            return f"{os.path.realpath(p)}:{st.st_size}:{int(st.st_mtime)}"
    raise FileNotFoundError(f"no model.safetensors or merged.pt in {model_dir}")


def key_of(config: dict, origin: str, extra_outputs: bool) -> str:
    blob = json.dumps({"config": config, "weights": origin, "torch": torch.__version__, "extra": extra_outputs,
                       "wo": WO, "opset": 17}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def log(msg: str) -> None:
    print(f"[ort_models] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet():
    """Silences the exporter's tracer warnings and the quantizers' per-node logging (errors still show)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def ensure(form: str, key: str, build_model, extra_outputs: bool = False) -> str:
    """The path of `form` for `key`, exporting/quantizing on a miss. `build_model()` -> KompressRef."""
    if form not in FORMS:
        raise ValueError(f"unknown ONNX form {form!r} (expected one of {', '.join(FORMS)})")
    require_ort()
    folder = os.path.join(cache_root(), key)
    os.makedirs(folder, exist_ok=True)
    fp32 = os.path.join(folder, "kompress-fp32.onnx")
    if not os.path.exists(fp32):
        started = time.perf_counter()
        scoring = Scoring(build_model(), extra_outputs).eval()
        # The trace length does not matter: batch and length are dynamic axes (checked: a 64-token
        # trace gives PyTorch's scores to 1e-5 at 300 tokens).
        vocab = scoring.model.encoder.config.vocab_size
        ids = torch.randint(4, min(300, vocab), (1, 64), generator=torch.Generator().manual_seed(0))
        outputs = ["final_scores", "token_logits", "span_score"] if extra_outputs else ["final_scores"]
        axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}}
        axes.update({name: {0: "b", 1: "t"} for name in outputs})
        tmp = fp32 + ".partial"
        with torch.no_grad(), quiet():
            torch.onnx.export(scoring, (ids, torch.ones_like(ids)), tmp, input_names=["input_ids", "attention_mask"],
                              output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(tmp, fp32)
        log(f"exported {fp32} in {time.perf_counter() - started:.0f} s")
    if form == "fp32":
        return fp32
    path = os.path.join(folder, f"kompress-{form}.onnx")
    if os.path.exists(path):
        return path
    started = time.perf_counter()
    tmp = path + ".partial"
    with quiet():
        quantize(form, fp32, tmp)
    os.replace(tmp, path)
    log(f"quantized {path} ({os.path.getsize(path) / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    return path


def quantize(form: str, fp32: str, out: str) -> None:
    if form == "int8-wo":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quant = MatMulNBitsQuantizer(onnx.load(fp32), **WO)
        quant.process()
        quant.model.save_model_to_file(out, use_external_data_format=False)
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=False)


def session(path: str, threads: int, headroom_options: bool = False):
    """A CPU InferenceSession: intra-op = threads, inter-op = 1 (the benchmark's), or Headroom 0.42's
    own options (`create_cpu_session_options`: no idle spinning, no CPU arena or memory patterns)."""
    ort = require_ort()
    if headroom_options:
        from headroom.onnx_runtime import create_cpu_session_options

        opts = create_cpu_session_options(ort, intra_op_num_threads=threads, inter_op_num_threads=1)
    else:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
