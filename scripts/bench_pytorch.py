"""Times the Kompress scoring forward (encoder + heads) with PyTorch and ONNX Runtime.

The counterpart of `kompress bench --random-weights`: same shape (the model directory's config.json,
or ModernBERT-base's), random weights, random token ids, batch x seq_len, median of --iters runs.

    python scripts/bench_pytorch.py [--model DIR] --seq-len 512 [--batch 1] [--iters 10] [--warmup 2]
        [--threads 2] [--engines sdpa,eager,onnx,onnx-int8-wo,onnx-int8-dyn] [--device cpu] [--dtype f32]

Engines: `sdpa`, `eager` (PyTorch attention implementations); `onnx` (ONNX Runtime on an fp32 export
of the eager model); `onnx-int8-wo` (that export, weight-only 8-bit MatMulNBits, block 128, symmetric,
accuracy level 4: Headroom's shipped `kompress-int8-wo.onnx` kind); `onnx-int8-dyn` (that export,
`quantize_dynamic` QInt8 per tensor). The ONNX files are cached by shape (scripts/ort_models.py,
$KOMPRESS_ONNX_CACHE, default ~/.cache/kompress-onnx), so only the first run exports and quantizes.
All ONNX sessions: CPU provider, intra-op threads = --threads, inter-op 1, ORT's other defaults.

Prints one JSON object per engine: {"engine", "seq_len", "batch", "ms_min", "ms_median", "tokens_per_s",
"threads", "device", "dtype", "torch"} (+ "onnxruntime", its version, on the ONNX engines; engine `pytorch-<attn>`, `onnxruntime`, `onnxruntime-int8-wo`,
`onnxruntime-int8-dyn`). Requirements: torch, transformers (and onnx + onnxruntime for the ONNX engines).
"""

import argparse
import json
import os
import statistics
import time

import torch
from transformers import ModernBertConfig

import ort_models
from kompress_ref import KompressRef
from ort_models import Scoring

# engine -> (ONNX form, reported engine name)
ONNX_ENGINES = {
    "onnx": ("fp32", "onnxruntime"),
    "onnx-int8-wo": ("int8-wo", "onnxruntime-int8-wo"),
    "onnx-int8-dyn": ("int8-dyn", "onnxruntime-int8-dyn"),
}


def config_of(model_dir: str | None) -> dict:
    if not model_dir:
        return {}
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def build(model_dir: str | None, attn: str) -> KompressRef:
    config = ModernBertConfig(**config_of(model_dir))
    torch.manual_seed(0)
    model = KompressRef(config, span_channels=256)
    model.encoder.config._attn_implementation = attn
    for layer in model.encoder.layers:
        layer.attn.config._attn_implementation = attn
    return model.eval()


def time_it(fn, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engines", default="sdpa,eager,onnx")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    gen = torch.Generator().manual_seed(0)
    vocab = ModernBertConfig(**config_of(args.model)).vocab_size
    ids = torch.randint(min(1000, vocab // 2), min(50000, vocab), (args.batch, args.seq_len), generator=gen)
    mask = torch.ones_like(ids)

    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in ONNX_ENGINES and e not in ("sdpa", "eager")]
    if unknown:
        ap.error(f"unknown engine(s) {', '.join(unknown)}: expected sdpa, eager, {', '.join(ONNX_ENGINES)}")
    if any(e in ONNX_ENGINES for e in engines):
        ort_models.require_ort()
    for engine in engines:
        if engine in ONNX_ENGINES:
            fn = onnx_runner(args.model, ONNX_ENGINES[engine][0], ids, mask, args.threads)
        else:
            model = Scoring(build(args.model, engine)).to(args.device, dtype)
            dev_ids, dev_mask = ids.to(args.device), mask.to(args.device)

            def fn():
                with torch.inference_mode():
                    model(dev_ids, dev_mask)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

        times = time_it(fn, args.iters, args.warmup)
        median = statistics.median(times)
        onnx = engine in ONNX_ENGINES
        print(json.dumps({
            "engine": ONNX_ENGINES[engine][1] if onnx else f"pytorch-{engine}",
            "seq_len": args.seq_len,
            "batch": args.batch,
            "ms_min": times[0],
            "ms_median": median,
            "tokens_per_s": args.batch * args.seq_len / (median / 1e3),
            "threads": args.threads,
            "device": "cpu" if onnx else args.device,
            "dtype": {"fp32": "f32"}.get(ONNX_ENGINES[engine][0], ONNX_ENGINES[engine][0]) if onnx else args.dtype,
            "torch": torch.__version__,
            **({"onnxruntime": ort_models.require_ort().__version__} if onnx else {}),
        }), flush=True)


def onnx_runner(model_dir, form, ids, mask, threads):
    """A session on the cached ONNX form of the random model (seed 0) of model_dir's shape."""
    key = ort_models.key_of(config_of(model_dir), "random-seed0", extra_outputs=False)
    path = ort_models.ensure(form, key, lambda: build(model_dir, "eager"))
    session = ort_models.session(path, threads)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    return lambda: session.run(["final_scores"], feeds)


if __name__ == "__main__":
    main()
