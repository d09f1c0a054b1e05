"""Keep-decision agreement of the int8 forms with f32, word by word, on one long text and one model.

For each keep rule, `threshold` (final score > 0.5, Headroom's ONNX rule) and `card` (the model
card's: token head argmax, or 0.3 < p <= 0.5 with span score > 0.5; src/pipeline/keep.rs and
Headroom's `HeadroomCompressorModel.get_keep_mask`), the fraction of words whose keep decision
equals kompress f32's:

- kompress f32 (the reference) and int8: `$KOMPRESS_BIN compress -m MODEL --compat headroom --mode
  RULE --dtype f32|int8 --json --explain TEXT`, whose "words" list gives each word's fate. int8 is
  skipped, with a line saying so, while the binary rejects `--dtype int8`.
- ONNX Runtime fp32, int8 weight-only and int8 dynamic (scripts/ort_models.py, exported from the
  model directory with the token logits and span score as extra outputs, cached), run through
  Headroom 0.42's own `KompressCompressor.compress` (its word split, 350-word/512-token chunks,
  must-keep words and table rule; CCR, deadlines and time budgets off), the kept word indices read
  by wrapping `_join_kept_words_by_line`. The threshold rule is Headroom's `_OnnxModel.get_keep_mask`;
  the card rule is Headroom's PyTorch-backend rule computed in numpy from the same ONNX outputs. Each
  chunk runs once per form (both rules reuse its outputs).

Two denominators: all words, and the words the model decided (kompress f32's fate `model` or
`dropped`; protected words, table rows and unscored words are kept by rule on both sides). ONNX
Runtime rows also give the agreement with ORT fp32 through Headroom, the like-for-like reference.
After the table, for the threshold rule: the share of model-decided words whose f32 final score lies
within 0.01 / 0.02 / 0.05 of 0.5, and how far kompress int8's scores move from f32's (median, 99th
percentile, max). Their product roughly gives the disagreement: the words that flip are those nearer
the threshold than int8 moves them.

    python scripts/int8_agreement.py [TEXT] [--model DIR] [--threads 2] [--rules threshold,card]

TEXT defaults to /usr/share/common-licenses/GPL-3; --model to scripts/bench_e2e.py's default
full-size random model. KOMPRESS_BIN defaults to target/release/kompress (built when that default is
used). Requirements: as scripts/bench_e2e.py (torch, transformers, onnx, onnxruntime, headroom-ai 0.42).
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FORMS = ("fp32", "int8-wo", "int8-dyn")


def kompress_fates(binary, model_dir, text, rule, dtype, threads):
    """[(kept, reason, score)] per word (score None where the model did not decide), or None when the
    binary rejects the dtype."""
    cmd = [binary, "compress", "-m", model_dir, "--device", "cpu", "--dtype", dtype, "--threads", str(threads),
           "--compat", "headroom", "--mode", rule, "--json", "--explain", text]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        if re.search(rf"invalid value '{dtype}'|unknown dtype", proc.stderr):
            return None
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return [(w["kept"], w.get("reason"), w.get("score")) for w in json.loads(proc.stdout)["words"]]


class CachedSession:
    """An ONNX Runtime session whose outputs are remembered per input, so two rules cost one pass."""

    def __init__(self, session):
        self.session, self.memo = session, {}

    def outputs(self, input_ids, attention_mask):
        ids = np.asarray(input_ids, dtype=np.int64)
        mask = np.asarray(attention_mask, dtype=np.int64)
        key = (ids.tobytes(), mask.tobytes(), ids.shape)
        if key not in self.memo:
            self.memo[key] = self.session.run(["final_scores", "token_logits", "span_score"],
                                              {"input_ids": ids, "attention_mask": mask})
        return self.memo[key]


class RuleModel:
    """Stands in for Headroom's `_OnnxModel` with the threshold or the card rule."""

    def __init__(self, cached: CachedSession, rule: str):
        self.cached, self.rule = cached, rule

    def get_scores(self, input_ids, attention_mask):
        return self.cached.outputs(input_ids, attention_mask)[0]

    def get_keep_mask(self, input_ids, attention_mask):
        final, logits, span = self.cached.outputs(input_ids, attention_mask)
        if self.rule == "threshold":  # _OnnxModel.get_keep_mask
            return (np.array(final) > 0.5).tolist()
        # HeadroomCompressorModel.get_keep_mask, in numpy
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        prob = shifted[..., 1] / shifted.sum(axis=-1)
        keep = (logits[..., 1] > logits[..., 0]) | ((prob > 0.3) & (prob <= 0.5) & (span > 0.5))
        return keep.tolist()


def headroom_kept(kc, model, tokenizer, text):
    """Headroom's kept word indices for the text with this model, and its word count."""
    from bench_e2e import headroom_compressor

    join = kc._join_kept_words_by_line
    comp, kept = headroom_compressor(kc, model, tokenizer)
    try:
        comp.compress(text)
    finally:
        kc._join_kept_words_by_line = join
    n = len(kc._words_by_line(text)[0])
    ids = set(kept[0]) if kept else set(range(n))
    return [i in ids for i in range(n)]


def score_note(ref, int8):
    """How near the threshold f32's final scores lie, and how far int8's move from them: what bounds the
    agreement of any 8-bit form on a given model."""
    pairs = [(r[2], q[2]) for r, q in zip(ref, int8) if r[1] in ("model", "dropped") and None not in (r[2], q[2])]
    if not pairs:
        return "scores: none decided by the model"
    f32, q8 = np.array(pairs, dtype=np.float64).T
    near = [f"{np.mean(np.abs(f32 - 0.5) < d):.1%} within {d}" for d in (0.01, 0.02, 0.05)]
    moved = np.abs(q8 - f32)
    return (f"threshold rule, {len(pairs)} model-decided words: f32 final scores {', '.join(near)} of 0.5; "
            f"|int8 - f32| median {np.median(moved):.4f}, 99th percentile {np.percentile(moved, 99):.4f}, "
            f"max {moved.max():.4f}")


def agreement(a, b, mask=None):
    pairs = [(x, y) for i, (x, y) in enumerate(zip(a, b)) if mask is None or mask[i]]
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("text", nargs="?", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rules", default="threshold,card")
    args = ap.parse_args()
    rules = args.rules.split(",")
    if any(r not in ("threshold", "card") for r in rules):
        ap.error("--rules: threshold and/or card")
    if not os.path.isfile(args.text):
        sys.exit(f"error: no such text file {args.text}")
    os.environ["HEADROOM_COMPRESSION_DEADLINE_MS"] = "0"
    os.environ["HEADROOM_KOMPRESS_TIME_BUDGET_SECONDS"] = "0"
    os.environ["HEADROOM_KOMPRESS_ONNX_INTRA_THREADS"] = str(args.threads)
    os.environ["HEADROOM_KOMPRESS_ONNX_INTER_THREADS"] = "1"
    try:
        import headroom.transforms.kompress_compressor as kc
        import onnxruntime as ort
        from transformers import PreTrainedTokenizerFast

        from kompress_ref import load_dir
    except ImportError as e:
        sys.exit(f"error: {sys.executable} lacks a requirement ({e}); see this script's header")
    import ort_models
    from bench_e2e import default_model, kompress_binary, machine_line, read_text

    logging.getLogger("headroom").setLevel(logging.WARNING)  # its per-call "slow compress" INFO lines

    model_dir = os.path.abspath(args.model or default_model())
    binary = kompress_binary()
    text = read_text(args.text)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    key = ort_models.key_of(config, ort_models.weights_origin(model_dir), extra_outputs=True)
    paths = {form: ort_models.ensure(form, key, lambda: load_dir(model_dir)[0], extra_outputs=True) for form in FORMS}
    print(machine_line(args.threads))
    print(f"text: {args.text}, {len(text.split())} words; model: {model_dir}; {args.threads} threads; "
          f"{subprocess.run([binary, '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"onnxruntime {ort.__version__}", flush=True)

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    tokenizer.pad_token = "[PAD]"
    ort_kept = {rule: {} for rule in rules}
    for form in FORMS:
        session = ort.InferenceSession(paths[form], kc._onnx_session_options(ort), providers=["CPUExecutionProvider"])
        cached = CachedSession(session)
        for rule in rules:
            ort_kept[rule][form] = headroom_kept(kc, RuleModel(cached, rule), tokenizer, text)
            print(f"ORT {form} {rule}: {sum(ort_kept[rule][form])} kept", file=sys.stderr, flush=True)

    notes, int8_rejected = [], False
    print("| rule | engine | kept words | agrees with kompress f32: all words | model-decided words "
          "| agrees with ORT fp32: model-decided words |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rule in rules:
        ref = kompress_fates(binary, model_dir, args.text, rule, "f32", args.threads)
        ref_kept = [k for k, _, _ in ref]
        decided = [reason in ("model", "dropped") for _, reason, _ in ref]
        n = len(ref)
        rows = [("kompress f32", ref_kept)]
        int8 = None if int8_rejected else kompress_fates(binary, model_dir, args.text, rule, "int8", args.threads)
        if int8 is None and not int8_rejected:
            int8_rejected = True
            notes.append(f"kompress int8: skipped, {binary} rejects --dtype int8")
        elif int8 is not None:
            rows.append(("kompress int8", [k for k, _, _ in int8]))
            if rule == "threshold":
                notes.append(score_note(ref, int8))
        for form in FORMS:
            rows.append((f"ORT {form} (Headroom)", ort_kept[rule][form]))
        for name, kept in rows:
            if len(kept) != n:
                sys.exit(f"error: {name} has {len(kept)} words, kompress f32 {n}: the word splits differ")
            vs_ort = agreement(kept, ort_kept[rule]["fp32"], decided) if name.startswith("ORT") else None
            print(f"| {rule} | {name} | {sum(kept)}/{n} | {agreement(kept, ref_kept):.2%} | "
                  f"{agreement(kept, ref_kept, decided):.2%} ({sum(decided)}) | "
                  f"{'-' if vs_ort is None else f'{vs_ort:.2%}'} |", flush=True)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
