"""Keep-decision agreement of the reduced-precision forms with f32, word by word, on one model and texts.

For each keep rule, `threshold` (final score > 0.5, Headroom's ONNX rule) and `card` (the model
card's: token head argmax, or 0.3 < p <= 0.5 with span score > 0.5; src/pipeline/keep.rs and
Headroom's `HeadroomCompressorModel.get_keep_mask`), the fraction of words whose keep decision
equals kompress f32's:

- kompress f32 (the reference) and each of --dtypes (default int8,int8-wo,int8-wo-g128,bf16):
  `$KOMPRESS_BIN compress -m MODEL --compat headroom --mode RULE --dtype DTYPE --json --explain TEXT`,
  whose "words" list gives each word's fate. A dtype the binary rejects (an older binary, or a form
  another CPU lacks) is skipped with a line saying so.
- ONNX Runtime fp32, int8 weight-only and int8 dynamic (scripts/ort_models.py, exported from the
  model directory with the token logits and span score as extra outputs, cached), run through
  Headroom 0.42's own `KompressCompressor.compress` (its word split, 350-word/512-token chunks,
  must-keep words and table rule; CCR, deadlines and time budgets off), the kept word indices read
  by wrapping `_join_kept_words_by_line`. The threshold rule is Headroom's `_OnnxModel.get_keep_mask`;
  the card rule is Headroom's PyTorch-backend rule computed in numpy from the same ONNX outputs. Each
  chunk runs once per form (both rules reuse its outputs). --ort '' leaves ONNX Runtime out.

Words of all TEXTs are pooled (each text is compressed on its own). Two denominators: all words, and
the words the model decided (kompress f32's fate `model` or `dropped`; protected words, table rows and
unscored words are kept by rule on both sides). ORT rows also give the agreement with ORT fp32
through Headroom (threshold rule, model-decided words), the like-for-like reference.
After the table, the score distances that bound any form's agreement: the share of model-decided
words whose f32 final score lies within 0.01 / 0.02 / 0.05 of 0.5 (and within 0.1 of 0 or 1), and
for each form how far its final scores move from its reference's (kompress forms: per word, against
kompress f32; ORT forms: per token, against ORT fp32 on the same chunks): median, 99th percentile,
max. Their product roughly gives the disagreement: the words that flip are those nearer the
threshold than a form moves them.

    python scripts/int8_agreement.py [TEXT ...] [--model DIR] [--threads 2] [--rules threshold,card]
        [--dtypes int8,int8-wo,int8-wo-g128,bf16] [--ort fp32,int8-wo,int8-dyn]

TEXT defaults to /usr/share/common-licenses/GPL-3; --model to scripts/bench_e2e.py's default
full-size random model (scripts/make_standin.py writes the trained stand-in). KOMPRESS_BIN defaults
to target/release/kompress (built when that default is used). Requirements: as scripts/bench_e2e.py
(torch, transformers, onnx, onnxruntime, headroom-ai 0.42), and onnx-ir, which onnxruntime 1.32's
MatMulNBitsQuantizer (the int8-wo form) imports.
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

from bench_e2e import read_text  # noqa: E402

FORMS = ("fp32", "int8-wo", "int8-dyn")
DEFAULT_DTYPES = "int8,int8-wo,int8-wo-g128,bf16"


class Rejected(Exception):
    """The binary refuses this dtype (its message is the exception's)."""


def kompress_fates(binary, model_dir, text, rule, dtype, threads):
    """[(kept, reason, score)] per word (score None where the model did not decide); raises Rejected when
    the binary refuses the dtype."""
    cmd = [binary, "compress", "-m", model_dir, "--device", "cpu", "--dtype", dtype, "--threads", str(threads),
           "--compat", "headroom", "--mode", rule, "--json", "--explain", text]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        # clap's "invalid value 'X' for '--dtype'", or a load-time refusal that names the dtype.
        first = next((line for line in proc.stderr.splitlines() if line.strip()), "")
        if re.search(rf"invalid value '{re.escape(dtype)}'|unknown dtype|dtype", first, re.IGNORECASE):
            raise Rejected(first.strip())
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


def distance_stats(ref, other) -> str:
    """Median, 99th percentile and max of |other - ref| over paired scores."""
    moved = np.abs(np.asarray(other, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    if moved.size == 0:
        return "no scores"
    return f"median {np.median(moved):.4f}, p99 {np.percentile(moved, 99):.4f}, max {moved.max():.4f}"


def decided_scores(ref, other):
    """Paired final scores of the words kompress f32's model decided, for one rule's fates."""
    pairs = [(r[2], q[2]) for r, q in zip(ref, other) if r[1] in ("model", "dropped") and None not in (r[2], q[2])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def near_note(scores) -> str:
    """Where kompress f32's final scores lie: what bounds the agreement of any reduced form."""
    f32 = np.asarray(scores, dtype=np.float64)
    if f32.size == 0:
        return "f32 scores: none decided by the model"
    near = ", ".join(f"{np.mean(np.abs(f32 - 0.5) < d):.1%} within {d}" for d in (0.01, 0.02, 0.05))
    sure = np.mean((f32 < 0.1) | (f32 > 0.9))
    return (f"f32 final scores of {f32.size} model-decided words: {near} of 0.5; {sure:.1%} within 0.1 of 0 or 1")


def agreement(a, b, mask=None):
    pairs = [(x, y) for i, (x, y) in enumerate(zip(a, b)) if mask is None or mask[i]]
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else float("nan")


def run_kompress(binary, model_dir, texts, rules, dtypes, threads):
    """{dtype: {rule: pooled fates over the texts}}, f32 first; rejected dtypes are left out with a line."""
    fates = {}
    for dtype in ["f32"] + dtypes:
        try:
            fates[dtype] = {rule: [f for path in texts for f in kompress_fates(binary, model_dir, path, rule, dtype,
                                                                               threads)] for rule in rules}
        except Rejected as e:
            if dtype == "f32":
                sys.exit(f"error: {binary} rejects --dtype f32: {e}")
            print(f"kompress {dtype}: skipped, {binary} rejects it ({e})", flush=True)
        else:
            print(f"kompress {dtype}: done", file=sys.stderr, flush=True)
    return fates


def run_ort(model_dir, texts, rules, forms, threads):
    """{form: {rule: pooled kept flags}} through Headroom, and {form: per-token final scores keyed by chunk}."""
    os.environ["HEADROOM_COMPRESSION_DEADLINE_MS"] = "0"
    os.environ["HEADROOM_KOMPRESS_TIME_BUDGET_SECONDS"] = "0"
    os.environ["HEADROOM_KOMPRESS_ONNX_INTRA_THREADS"] = str(threads)
    os.environ["HEADROOM_KOMPRESS_ONNX_INTER_THREADS"] = "1"
    try:
        import headroom.transforms.kompress_compressor as kc
        import onnxruntime as ort
        from transformers import PreTrainedTokenizerFast

        from kompress_ref import load_dir
    except ImportError as e:
        sys.exit(f"error: {sys.executable} lacks a requirement ({e}); see this script's header")
    import ort_models

    logging.getLogger("headroom").setLevel(logging.WARNING)  # its per-call "slow compress" INFO lines
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    key = ort_models.key_of(config, ort_models.weights_origin(model_dir), extra_outputs=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    tokenizer.pad_token = "[PAD]"
    kept, memos = {}, {}
    for form in forms:
        path = ort_models.ensure(form, key, lambda: load_dir(model_dir)[0], extra_outputs=True)
        session = ort.InferenceSession(path, kc._onnx_session_options(ort), providers=["CPUExecutionProvider"])
        cached = CachedSession(session)
        kept[form] = {rule: [k for text in texts for k in headroom_kept(kc, RuleModel(cached, rule), tokenizer,
                                                                         read_text(text))] for rule in rules}
        memos[form] = cached.memo
        print(f"ORT {form}: {', '.join(f'{r} {sum(kept[form][r])} kept' for r in rules)}", file=sys.stderr, flush=True)
    return kept, memos, ort.__version__


def ort_distance(memos, form) -> str:
    """|form - ORT fp32| over the final scores of the real (unpadded) tokens of every chunk both ran."""
    ref, other = [], []
    for key, (final, _, _) in memos[form].items():
        if key not in memos["fp32"]:
            continue
        mask = np.frombuffer(key[1], dtype=np.int64).reshape(key[2]).astype(bool)
        ref.extend(np.asarray(memos["fp32"][key][0])[mask])
        other.extend(np.asarray(final)[mask])
    return distance_stats(ref, other)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("texts", nargs="*", default=["/usr/share/common-licenses/GPL-3"], metavar="TEXT")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rules", default="threshold,card")
    ap.add_argument("--dtypes", default=DEFAULT_DTYPES, help=f"kompress dtypes beside f32 (default {DEFAULT_DTYPES})")
    ap.add_argument("--ort", default=",".join(FORMS), help="ONNX Runtime forms through Headroom ('' for none)")
    args = ap.parse_args()
    rules = args.rules.split(",")
    if any(r not in ("threshold", "card") for r in rules):
        ap.error(f"--rules: threshold and/or card, not {args.rules!r}")
    dtypes = [d for d in args.dtypes.split(",") if d and d != "f32"]
    forms = [f for f in args.ort.split(",") if f]
    if any(f not in FORMS for f in forms):
        ap.error(f"--ort: a comma list of {', '.join(FORMS)}, not {args.ort!r}")
    if forms and "fp32" not in forms:
        forms.insert(0, "fp32")  # the reference the other ORT forms are compared with
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, not {args.threads}")
    for path in args.texts:
        if not os.path.isfile(path):
            sys.exit(f"error: no such text file {path}")
    from bench_e2e import default_model, kompress_binary, machine_line

    model_dir = os.path.abspath(args.model or default_model())
    binary = kompress_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    print(machine_line(args.threads))
    words = sum(len(read_text(p).split()) for p in args.texts)
    print(f"texts: {', '.join(args.texts)} ({words} words); model: {model_dir}; {args.threads} threads; {version}",
          flush=True)

    fates = run_kompress(binary, model_dir, args.texts, rules, dtypes, args.threads)
    ort_kept, memos, ort_version = run_ort(model_dir, args.texts, rules, forms, args.threads) if forms else ({}, {}, None)
    if ort_version:
        print(f"onnxruntime {ort_version}")

    ref = fates["f32"]
    n = len(ref[rules[0]])
    decided = {rule: [reason in ("model", "dropped") for _, reason, _ in ref[rule]] for rule in rules}
    rows = [(f"kompress {d}", {r: [k for k, _, _ in fates[d][r]] for r in rules}) for d in fates]
    rows += [(f"ORT {f} (Headroom)", ort_kept[f]) for f in forms]
    head = " | ".join(f"{r}: all words ({n}) | {r}: model-decided ({sum(decided[r])})" for r in rules)
    print(f"| form | kept ({rules[0]}) | {head} | {rules[0]}: vs ORT fp32, model-decided |")
    print("| --- | --- |" + " --- | --- |" * len(rules) + " --- |")
    for name, kept in rows:
        for rule in rules:
            if len(kept[rule]) != n:
                sys.exit(f"error: {name} has {len(kept[rule])} words, kompress f32 {n}: the word splits differ")
        cells = " | ".join(f"{agreement(kept[r], [k for k, _, _ in ref[r]]):.2%} | "
                           f"{agreement(kept[r], [k for k, _, _ in ref[r]], decided[r]):.2%}" for r in rules)
        vs_ort = (f"{agreement(kept[rules[0]], ort_kept['fp32'][rules[0]], decided[rules[0]]):.2%}"
                  if name.startswith("ORT") else "-")
        print(f"| {name} | {sum(kept[rules[0]])} | {cells} | {vs_ort} |", flush=True)

    rule = "threshold" if "threshold" in rules else rules[0]
    print(f"score distances ({rule} rule's run):")
    print("  " + near_note(decided_scores(ref[rule], ref[rule])[0]))
    for d in fates:
        if d != "f32":
            print(f"  kompress {d}: |{d} - f32| per model-decided word: {distance_stats(*decided_scores(ref[rule], fates[d][rule]))}")
    for f in forms[1:]:
        print(f"  ORT {f}: |{f} - ORT fp32| per token: {ort_distance(memos, f)}")


if __name__ == "__main__":
    main()
