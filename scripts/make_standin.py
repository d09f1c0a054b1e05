"""Trains a small stand-in Kompress model (ModernBERT + token head + span head) on real local text.

Why: the published kompress checkpoints cannot be downloaded here, and random weights put most final
scores near 0.5, where any rounding flips keep decisions; agreement figures for int8/bf16 forms on
random weights say little. This model is trained until its scores are confident (most near 0 or 1), as a
real classifier's are, so agreement measured on it is less meaningless. It is NOT kompress-base: it is
6 layers of hidden 384 (kompress-small has 6 layers of hidden 768; this is smaller so that it trains on
one CPU thread in under 30 minutes), its vocabulary is a local byte-level BPE of 8,192 tokens, its labels
come from the rule below, not from human/LLM annotation, and it says nothing about the activation
outlier channels of the real model (docs/STANDIN.md).

Shape (the `layer_types` config dialect): 6 layers, hidden 384, 6 heads (head_dim 64), GeGLU
intermediate 576, global attention at layers 0, 3 and 5 (kompress-small's reported layout), 128-token
local window, RoPE theta 160000 (global) / 10000 (local), 512 positions, no biases, span head
Conv1d(384->256, k5) -> GELU -> Conv1d(256->1, k3) -> sigmoid. Weights in the v1 layout
(`model.safetensors`: `encoder.*`, `token_head.*`, `span_conv.*`), `config.json`, `tokenizer.json`.

Text: Debian's /usr/share/common-licenses/*, /usr/share/doc/**/copyright and the README/NEWS/changelog
files under /usr/share/doc (gzipped ones too), read in sorted order, exact duplicates dropped. A file
is held out (never trained on) when the first byte of sha1(its path) is below 26 (about 10%).

Labels (the proxy keep/drop rule, LLMLingua-like, on whitespace words in the order the model sees
them; the context is the chunk of words the model is given, so that the rule is learnable):
  1. a word with no letter or digit (pure punctuation) is dropped;
  2. a word with a digit is kept (numbers, versions, dates);
  3. a word whose core (lowercased, leading/trailing punctuation stripped) occurred among the previous
     20 words of the chunk is dropped (repetition carries no new information);
  4. a capitalised word that does not start a sentence (it is not the chunk's first word and the
     previous word does not end in . ! ? or :) is kept (names, defined terms);
  5. a stopword (function words: articles, pronouns, auxiliaries, prepositions, conjunctions, common
     adverbs; STOPWORDS below) is dropped;
  6. a core shorter than 3 characters is dropped;
  7. anything else (content words) is kept.
Every token of a word gets the word's label (token head target). The span head's target is the word's
label, widened over one-word gaps: 1 when the word is kept or both its neighbours are kept, else 0.
[CLS], [SEP] and padding carry no target.

Training: PyTorch on CPU, one thread, seeded; chunks of at most 254 tokens + [CLS]/[SEP], batch 8,
AdamW (lr 1e-3, warmup 100 steps then linear decay, weight decay 0.01), loss = CE(token head) +
BCE(span head); --steps (default 1200) fixes the amount of work so the result does not depend on the
clock. At the end it prints, on held-out chunks of up to 510 tokens (the reference's length), the
accuracy of the card and threshold keep rules against the labelling rule, and the histogram of final
scores.

    python scripts/make_standin.py [OUT_DIR] [--steps 1200] [--seed 0]

OUT_DIR defaults to $KOMPRESS_ONNX_CACHE/standin-model, else target/standin-model.
Requirements: torch, transformers (5.x tested), tokenizers, safetensors.
"""

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time

os.environ.setdefault("RAYON_RS_NUM_THREADS", "1")  # one thread for the tokenizer trainer too

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import ModernBertConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kompress_ref import KompressRef  # noqa: E402

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
VOCAB = 8192
MAX_TRAIN_TOKENS = 254  # + [CLS] and [SEP]
MAX_EVAL_TOKENS = 510
REPEAT_WINDOW = 20
MAX_WORDS_PER_FILE = 4000
STOPWORDS = set(
    """a an the this that these those such
    i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
    who whom whose which what whatever whoever
    am is are was were be been being do does did done doing have has had having
    will would shall should can could may might must
    of in on at by for from to into onto upon with within about above below over under between among
    through during before after since until against across along around behind beyond near off out up down
    and or nor but so yet if then else than as because while whether although though unless
    not no also just very too only even still already again ever here there where when how why
    all any each every some both either neither other others another same
    more most less many much few own
    there's it's that's let's""".split()
)
_EDGE = re.compile(r"^[^\w]+|[^\w]+$")


def labels_of(words: list[str]) -> list[int]:
    """The keep (1) / drop (0) rule of the module docstring over one chunk of words."""
    labels, cores = [], []
    for i, word in enumerate(words):
        core = _EDGE.sub("", word).lower()
        recent = cores[max(0, i - REPEAT_WINDOW):]
        sentence_start = i == 0 or words[i - 1][-1:] in ".!?:"
        if not re.search(r"[A-Za-z0-9]", word):
            keep = 0
        elif re.search(r"\d", word):
            keep = 1
        elif core in recent:
            keep = 0
        elif word[:1].isupper() and not sentence_start:
            keep = 1
        elif core in STOPWORDS or len(core) < 3:
            keep = 0
        else:
            keep = 1
        labels.append(keep)
        cores.append(core)
    return labels


def span_targets(labels: list[int]) -> list[int]:
    """Kept words, and dropped words whose two neighbours are kept (one-word gaps in a kept run)."""
    n = len(labels)
    return [int(labels[i] or (0 < i < n - 1 and labels[i - 1] and labels[i + 1])) for i in range(n)]


def read_corpus() -> list[tuple[str, str]]:
    """(path, text) of the local documents, sorted by path, exact duplicates dropped."""
    paths = [os.path.join("/usr/share/common-licenses", p) for p in os.listdir("/usr/share/common-licenses")]
    for root, _, files in os.walk("/usr/share/doc"):
        for name in files:
            low = name.lower()
            if low == "copyright" or re.match(r"(readme|news|changelog)([._-].*)?$", low):
                paths.append(os.path.join(root, name))
    docs, seen = [], set()
    for path in sorted(set(paths)):
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        try:
            raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        words = text.split()
        digest = hashlib.sha1(text.encode()).digest()
        if len(words) < 30 or digest in seen:
            continue
        seen.add(digest)
        docs.append((path, " ".join(words[:MAX_WORDS_PER_FILE])))
    return docs


def held_out(path: str) -> bool:
    return hashlib.sha1(path.encode()).digest()[0] < 26


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def chunks_of(tok: Tokenizer, text: str, max_tokens: int):
    """Chunks of whole words of at most max_tokens tokens: (ids with [CLS]/[SEP], token labels, token span
    targets, word ids), the labels computed over the chunk's words (the model's context)."""
    words = text.split()
    enc = tok.encode(words, is_pretokenized=True, add_special_tokens=False)
    per_word: list[list[int]] = [[] for _ in words]
    for t, w in zip(enc.ids, enc.word_ids):
        per_word[w].append(t)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    start = 0
    while start < len(words):
        end, count = start, 0
        while end < len(words) and count + len(per_word[end]) <= max_tokens:
            count += len(per_word[end])
            end += 1
        if end == start:  # one word longer than the limit: skip it
            start += 1
            continue
        chunk_words = words[start:end]
        lab = labels_of(chunk_words)
        span = span_targets(lab)
        ids, tl, ts, wid = [cls], [-100], [-1], [None]
        for j in range(len(chunk_words)):
            for t in per_word[start + j]:
                ids.append(t)
                tl.append(lab[j])
                ts.append(span[j])
                wid.append(j)
        ids.append(sep)
        tl.append(-100)
        ts.append(-1)
        wid.append(None)
        yield ids, tl, ts, wid
        start = end


def config(tok: Tokenizer) -> dict:
    layers = 6
    return {
        "model_type": "modernbert",
        "architectures": ["ModernBertModel"],
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": 384,
        "intermediate_size": 576,
        "num_hidden_layers": layers,
        "num_attention_heads": 6,
        "max_position_embeddings": 512,
        "local_attention": 128,
        "layer_types": ["full_attention" if i in (0, 3, 5) else "sliding_attention" for i in range(layers)],
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": 160000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        "hidden_activation": "gelu",
        "norm_eps": 1e-5,
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
        "pad_token_id": tok.token_to_id("[PAD]"),
        "cls_token_id": tok.token_to_id("[CLS]"),
        "sep_token_id": tok.token_to_id("[SEP]"),
        "bos_token_id": tok.token_to_id("[CLS]"),
        "eos_token_id": tok.token_to_id("[SEP]"),
    }


def batch_of(examples, pad: int):
    n = max(len(e[0]) for e in examples)
    ids = torch.full((len(examples), n), pad, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    tl = torch.full((len(examples), n), -100, dtype=torch.long)
    ts = torch.full((len(examples), n), -1.0)
    for i, (a, b, c, _) in enumerate(examples):
        ids[i, : len(a)] = torch.tensor(a)
        mask[i, : len(a)] = 1
        tl[i, : len(b)] = torch.tensor(b)
        ts[i, : len(c)] = torch.tensor(c, dtype=torch.float)
    return ids, mask, tl, ts


def forward(model: KompressRef, ids, mask):
    """Token logits and span logits (before the sigmoid), for training."""
    hidden = model.encoder(ids, attention_mask=mask).last_hidden_state
    logits = model.token_head(hidden)
    conv = model.span_conv
    span_logit = conv[2](conv[1](conv[0](hidden.transpose(1, 2)))).squeeze(1)
    return logits, span_logit


def evaluate(model: KompressRef, examples, pad: int) -> dict:
    """Word-level accuracy of the card and threshold rules against the labels, and the score histogram."""
    model.eval()
    scores, agree = [], {"card": 0, "threshold": 0}
    words = 0
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            group = examples[i : i + 8]
            ids, mask, _, _ = batch_of(group, pad)
            out = model.score(ids, mask)
            for b, (_, tl, _, wid) in enumerate(group):
                n = len(tl)
                logits, prob = out["logits"][b, :n], out["token_prob"][b, :n]
                span, final = out["span_score"][b, :n], out["score"][b, :n]
                card = (logits[:, 1] > logits[:, 0]) | ((prob > 0.3) & (prob <= 0.5) & (span > 0.5))
                kept_c, kept_t, label, best = {}, {}, {}, {}
                for t in range(n):
                    w = wid[t]
                    if w is None:
                        continue
                    kept_c[w] = kept_c.get(w, False) or bool(card[t])
                    kept_t[w] = kept_t.get(w, False) or bool(final[t] > 0.5)
                    best[w] = max(best.get(w, 0.0), float(final[t]))
                    label[w] = tl[t]
                for w in label:
                    agree["card"] += kept_c[w] == bool(label[w])
                    agree["threshold"] += kept_t[w] == bool(label[w])
                words += len(label)
                scores.extend(float(s) for t, s in enumerate(final) if wid[t] is not None)
    s = torch.tensor(scores)
    return {
        "words": words,
        "tokens": len(scores),
        "card_accuracy": agree["card"] / words,
        "threshold_accuracy": agree["threshold"] / words,
        "final_within_0.1_of_0_or_1": float(((s < 0.1) | (s > 0.9)).float().mean()),
        "final_within_0.05_of_0.5": float(((s - 0.5).abs() < 0.05).float().mean()),
        "histogram_tenths": [int(x) for x in torch.histc(s, bins=10, min=0.0, max=1.0).tolist()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_out = os.path.join(os.environ["KOMPRESS_ONNX_CACHE"], "standin-model") if os.environ.get(
        "KOMPRESS_ONNX_CACHE") else os.path.join(HERE, "..", "target", "standin-model")
    ap.add_argument("out", nargs="?", default=default_out)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-chunks", type=int, default=200, help="held-out chunks of <= 510 tokens to evaluate")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, not {args.steps}")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    docs = read_corpus()
    train_docs = [t for p, t in docs if not held_out(p)]
    eval_docs = [t for p, t in docs if held_out(p)]
    tok = train_tokenizer(train_docs)
    train = [c for t in train_docs for c in chunks_of(tok, t, MAX_TRAIN_TOKENS)]
    evals = [c for t in eval_docs for c in chunks_of(tok, t, MAX_EVAL_TOKENS)]
    random.Random(args.seed).shuffle(evals)
    evals = evals[: args.eval_chunks]
    n_words = sum(len(t.split()) for t in train_docs)
    kept = sum(x == 1 for c in train for x in c[1]) / sum(x != -100 for c in train for x in c[1])
    print(f"corpus: {len(docs)} files ({len(train_docs)} train, {len(eval_docs)} held out), {n_words} train words, "
          f"{len(train)} train chunks; label keep share (tokens) {kept:.1%}; tokenizer vocab "
          f"{tok.get_vocab_size()}; {time.perf_counter() - started:.0f} s", flush=True)

    cfg = config(tok)
    model = KompressRef(ModernBertConfig(**cfg), span_channels=256)
    model.encoder.config._attn_implementation = "sdpa"  # training speed; the saved weights are the same
    pad = cfg["pad_token_id"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    warmup = min(100, args.steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / max(1, args.steps - warmup))))
    order = random.Random(args.seed + 1)
    indices: list[int] = []
    model.train()
    t0 = time.perf_counter()
    for step in range(args.steps):
        if len(indices) < 8:
            more = list(range(len(train)))
            order.shuffle(more)
            indices += more
        group, indices = [train[i] for i in indices[:8]], indices[8:]
        ids, mask, tl, ts = batch_of(group, pad)
        logits, span_logit = forward(model, ids, mask)
        loss_tok = F.cross_entropy(logits.reshape(-1, 2), tl.reshape(-1), ignore_index=-100)
        valid = ts >= 0
        loss_span = F.binary_cross_entropy_with_logits(span_logit[valid], ts[valid])
        loss = loss_tok + loss_span
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            el = time.perf_counter() - t0
            print(f"step {step}: token CE {loss_tok.item():.4f}, span BCE {loss_span.item():.4f}, "
                  f"{el:.0f} s ({el / (step + 1):.2f} s/step)", flush=True)
    train_s = time.perf_counter() - t0

    model.encoder.config._attn_implementation = "eager"  # the reference's setting, for the evaluation
    stats = evaluate(model, evals, pad)
    stats.update(train_seconds=round(train_s), total_seconds=round(time.perf_counter() - started),
                 steps=args.steps, seed=args.seed)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tok.save(os.path.join(out, "tokenizer.json"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
