#!/usr/bin/env bash
# Measures how many lines of prose-only texts the structure rules of `kompress compress` take for a
# table, a code block, a code-like line or Markdown markup (docs/COMPRESS.md quotes the output). Each
# file is compressed with the tiny fixture model (the rules do not depend on the model) at
# `--threshold 1`, where the model keeps no word, so every word a rule keeps shows its reason, and
# `--explain --json`; a line counts when one of its words has the reason `table`, `code`, `code_line`
# or `markdown` (for `markdown` the marked words are listed too).
#
# Usage: [VERBOSE=1] scripts/structure_false_positives.sh [FILE...]   (VERBOSE: print the markdown lines)
#   (default: seven licence texts of Debian's /usr/share/common-licenses, GPL-3 first)
# Needs: a release build (cargo build --release), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/kompress
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ $# -gt 0 ] || set -- /usr/share/common-licenses/{GPL-3,GPL-2,LGPL-2.1,GFDL-1.3,MPL-2.0,Apache-2.0,Artistic}
for f in "$@"; do
  "$bin" compress --model tests/fixtures/models/v5 --device cpu --mode threshold --threshold 1 --explain --json "$f" | python3 -c '
import json, sys
name = sys.argv[1]
r = json.load(sys.stdin)
lines = {w["line"] for w in r["words"]}
text = open(name, encoding="utf-8").read()
report = [f"{name}: {len(text.splitlines())} lines, {len(lines)} with words"]
for kind in ("table", "code", "code_line", "markdown"):
    marked = sorted({w["line"] for w in r["words"] if w["reason"] == kind})
    report.append(f"{kind}: {len(marked)} lines {marked[:10]}")
    if kind == "markdown" and marked:
        words = sorted({w["word"] for w in r["words"] if w["reason"] == kind})
        report.append(f"markdown words: {words[:12]}")
        if "-v" in sys.argv[2:]:
            lines = text.split("\n")
            report += [f"\n  {n}: {lines[n - 1]}" for n in marked]
print("; ".join(report))
' "$f" ${VERBOSE:+-v}
done
