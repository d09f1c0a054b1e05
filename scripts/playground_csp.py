#!/usr/bin/env python3
"""Prints the SHA-256 hashes (CSP form) of the playground page's inline <script> and <style>, which
src/server/playground/mod.rs's CSP must list; with --write, puts them there."""
import base64
import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "src/server/playground/index.html"
MODULE = ROOT / "src/server/playground/mod.rs"


def hashes(html: str) -> dict:
    out = {}
    for tag in ("script", "style"):
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert len(bodies) == 1, f"expected one inline <{tag}>"
        out[tag] = base64.b64encode(hashlib.sha256(bodies[0].encode()).digest()).decode()
    return out


if __name__ == "__main__":
    h = hashes(PAGE.read_text())
    print(f"script sha256-{h['script']}\nstyle  sha256-{h['style']}")
    if "--write" in sys.argv:
        src = MODULE.read_text()
        src = re.sub(r'(const SCRIPT_SHA256: &str = ")[^"]*(";)', rf"\g<1>{h['script']}\g<2>", src)
        src = re.sub(r'(const STYLE_SHA256: &str = ")[^"]*(";)', rf"\g<1>{h['style']}\g<2>", src)
        MODULE.write_text(src)
