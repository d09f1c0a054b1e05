"""Times the Kompress scoring forward (encoder + heads) with PyTorch and ONNX Runtime.

The counterpart of `kompress bench --random-weights`: same shape (the model directory's config.json,
or ModernBERT-base's), random weights, random token ids, batch x seq_len, median of --iters runs.

    python scripts/bench_pytorch.py [--model DIR] --seq-len 512 [--batch 1] [--iters 10] [--warmup 2]
                                    [--threads 2] [--engines sdpa,eager,onnx] [--device cpu] [--dtype f32]

Prints one JSON object per engine: {"engine", "seq_len", "batch", "ms_min", "ms_median", "tokens_per_s",
"threads", "device", "dtype", "torch"}. Requirements: torch, transformers (and onnx + onnxruntime for
the onnx engine).
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from transformers import ModernBertConfig

from kompress_ref import KompressRef


class Scoring(torch.nn.Module):
    """The exported/timed function: ids + mask -> final scores (what Headroom's ONNX graph returns)."""

    def __init__(self, model: KompressRef):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        hidden = self.model.encoder(input_ids, attention_mask=attention_mask).last_hidden_state
        prob = torch.softmax(self.model.token_head(hidden), dim=-1)[:, :, 1]
        span = self.model.span_conv(hidden.transpose(1, 2)).squeeze(1)
        return prob * (0.5 + 0.5 * span)


def build(model_dir: str | None, attn: str) -> KompressRef:
    cfg = {}
    if model_dir:
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
    config = ModernBertConfig(**cfg)
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
    ids = torch.randint(1000, 50000, (args.batch, args.seq_len), generator=gen)
    mask = torch.ones_like(ids)

    for engine in args.engines.split(","):
        model = Scoring(build(args.model, "eager" if engine == "onnx" else engine))
        if engine == "onnx":
            fn = onnx_runner(model, ids, mask, args.threads)
        else:
            model = model.to(args.device, dtype)
            dev_ids, dev_mask = ids.to(args.device), mask.to(args.device)

            def fn():
                with torch.inference_mode():
                    model(dev_ids, dev_mask)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

        times = time_it(fn, args.iters, args.warmup)
        median = statistics.median(times)
        print(json.dumps({
            "engine": f"pytorch-{engine}" if engine != "onnx" else "onnxruntime",
            "seq_len": args.seq_len,
            "batch": args.batch,
            "ms_min": times[0],
            "ms_median": median,
            "tokens_per_s": args.batch * args.seq_len / (median / 1e3),
            "threads": args.threads,
            "device": args.device if engine != "onnx" else "cpu",
            "dtype": args.dtype if engine != "onnx" else "f32",
            "torch": torch.__version__,
        }), flush=True)


def onnx_runner(model, ids, mask, threads):
    import onnxruntime as ort

    path = os.path.join(tempfile.mkdtemp(), "kompress.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask), path, input_names=["input_ids", "attention_mask"], output_names=["final_scores"],
            dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}}, dynamo=False,
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    return lambda: session.run(["final_scores"], feeds)


if __name__ == "__main__":
    main()
