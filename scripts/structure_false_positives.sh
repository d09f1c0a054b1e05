#!/usr/bin/env bash
# Measures how many lines of prose-only texts the structure rules of `kompress compress` take for a
# table or a code block (docs/COMPRESS.md quotes the output). Each file is compressed with the tiny
# fixture model (the rules do not depend on the model) and `--explain --json`; a line counts when its
# words have the reason `table` or `code`.
#
# Usage: scripts/structure_false_positives.sh [FILE...]
#   (default: seven licence texts of Debian's /usr/share/common-licenses, GPL-3 first)
# Needs: a release build (cargo build --release), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/kompress
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ $# -gt 0 ] || set -- /usr/share/common-licenses/{GPL-3,GPL-2,LGPL-2.1,GFDL-1.3,MPL-2.0,Apache-2.0,Artistic}
for f in "$@"; do
  "$bin" compress --model tests/fixtures/models/v5 --device cpu --explain --json "$f" | python3 -c '
import json, sys
name = sys.argv[1]
r = json.load(sys.stdin)
lines = {w["line"] for w in r["words"]}
text = open(name, encoding="utf-8").read()
report = [f"{name}: {len(text.splitlines())} lines, {len(lines)} with words"]
for kind in ("table", "code"):
    marked = sorted({w["line"] for w in r["words"] if w["reason"] == kind})
    report.append(f"{kind}: {len(marked)} lines {marked[:10]}")
print("; ".join(report))
' "$f"
done
