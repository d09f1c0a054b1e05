"""Turns scripts/gpu_check.sh's results into the GPU tables of docs/GPU.md (markdown on stdout).

    python scripts/gpu_summary.py OUT_DIR

Reads OUT_DIR/parity.jsonl, OUT_DIR/bench.jsonl and OUT_DIR/gpu.txt (`nvidia-smi -L`). The fraction
of peak counts the useful FLOPs of the kompress-base forward (projections, attention over each
layer's real span: the whole sequence for global layers, the 129-token band for local ones, and
the heads) against the GPU's dense bf16 tensor-core peak.
"""

import json
import os
import sys

# Dense bf16 tensor-core peaks (NVIDIA data sheets), FLOP/s.
PEAKS = [("H100 PCIe", 756e12), ("H100", 989.4e12), ("H200", 989.4e12), ("A100", 312e12), ("L4", 121e12)]

# kompress-base = ModernBERT-base + span head.
HIDDEN, INTER, LAYERS, GLOBAL_EVERY, HALF_WINDOW, SPAN = 768, 1152, 22, 3, 64, 256


def forward_flops(seq: int) -> float:
    """Multiply-adds x 2 of one sequence's forward."""
    proj = 2 * seq * (HIDDEN * 3 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2 * INTER + INTER * HIDDEN)
    total = 0.0
    for layer in range(LAYERS):
        span = seq if layer % GLOBAL_EVERY == 0 else min(seq, 2 * HALF_WINDOW + 1)
        total += proj + 2 * 2 * seq * span * HIDDEN  # q k^T and p v
    heads = 2 * seq * (HIDDEN * SPAN * 5 + SPAN * 3 + HIDDEN * 2)
    return total + heads


def read_jsonl(path: str) -> list:
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip().startswith("{")]


def main() -> None:
    out = sys.argv[1]
    gpu = open(os.path.join(out, "gpu.txt")).read().strip() if os.path.exists(os.path.join(out, "gpu.txt")) else "?"
    peak_name, peak = next(((n, p) for n, p in PEAKS if n in gpu), (None, None))
    print(f"GPU: {gpu}\n")

    print("| model | dtype | tokens | max abs diff, score | card rule agree | score > 0.5 agree | PyTorch same dtype: card rule agree |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in read_jsonl(os.path.join(out, "parity.jsonl")):
        k, p = r["kompress"], r.get("pytorch_same_dtype")
        agree = lambda d, key: f"{d[key][0]}/{d[key][1]} ({100 * d[key][0] / d[key][1]:.2f}%)" if d else "-"
        print(
            f"| {os.path.basename(r['model'])} | {r['dtype']} | {r['tokens']} | {k['score_max_abs_diff']:.2e} "
            f"| {agree(k, 'card rule agree')} | {agree(k, 'score > 0.5 agree')} | {agree(p, 'card rule agree')} |"
        )

    print(f"\n| batch x tokens | engine | median ms | tokens/s | TFLOP/s | of {peak_name or '?'} bf16 peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in read_jsonl(os.path.join(out, "bench.jsonl")):
        engine = r.get("engine", "kompress")
        flops = r["batch"] * forward_flops(r["seq_len"]) / (r["ms_median"] / 1e3)
        share = f"{100 * flops / peak:.1f}%" if peak else "-"
        print(
            f"| {r['batch']} x {r['seq_len']} | {engine} | {r['ms_median']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {flops / 1e12:.1f} | {share} |"
        )


if __name__ == "__main__":
    main()
