"""The wheel's ``kompress`` console script (``[project.scripts]``, ``kompress._cli:main``) is the
cargo-built binary's program: the same output bytes, exit statuses and error lines, a closed pipe ends
it quietly, Ctrl-C stops it, and ``serve`` shuts down gracefully on SIGTERM and SIGINT. Every test runs
both, the installed script (next to ``sys.executable``) and ``KOMPRESS_BIN``, and compares them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

import pytest

from conftest import BIN, TEXTS, model_dir

SCRIPT = Path(sys.executable).parent / ("kompress.exe" if os.name == "nt" else "kompress")
ENV = {**os.environ, "RAYON_NUM_THREADS": "2", "KOMPRESS_DTYPE": "f32"}


def script() -> Path:
    if not SCRIPT.is_file():
        pytest.fail(f"the console script is not at {SCRIPT}: pip install the wheel into this interpreter's environment")
    return SCRIPT


def run(program: Path, args: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *args], capture_output=True, env=ENV, timeout=120, **kw)


def both(args: List[str], **kw):
    """The console script's run and the binary's, as (status, stdout, stderr) each."""
    runs = [run(program, args, **kw) for program in (script(), BIN)]
    return [(r.returncode, r.stdout, r.stderr) for r in runs]


def assert_clean(stderr: bytes):
    text = stderr.decode(errors="replace")
    for sign in ("Traceback", "panicked", "KeyboardInterrupt", "Exception"):
        assert sign not in text, text


def test_the_console_script_is_installed_and_is_not_the_binary():
    # The script is pip's wrapper over kompress._cli:main (a Python script here; an .exe launcher
    # on Windows), not a copy of the binary, so the comparisons below compare two programs.
    head = script().read_bytes()[:200]
    assert b"kompress._cli" in head or os.name == "nt", head
    assert script().resolve() != BIN.resolve()


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["compress", "--help"], ["serve", "--help"], ["evict", "--help"], []],
    ids=["help", "version", "compress-help", "serve-help", "evict-help", "no-command"],
)
def test_help_and_usage_are_the_binarys(args):
    (status, out, err), expected = both(args)
    assert (status, out, err) == expected
    if args:
        assert status == 0 and out and not err
    else:  # no subcommand: clap's usage error, the help on standard error
        assert status == 2 and b"\nUsage: kompress [OPTIONS] <COMMAND>\n" in err and not out


@pytest.mark.parametrize("model", ["v5", "nospan"])
def test_compress_json_is_byte_for_byte_the_binarys(model):
    files = [str(TEXTS / "sample.md"), str(TEXTS / "commands.txt")]
    args = ["compress", "--json", "--model", model_dir(model), "--device", "cpu", "--ratio", "0.5", *files]
    (status, out, err), expected = both(args)
    assert (status, out, err) == expected
    assert status == 0 and out.count(b"\n") == 2 and b'"compressed"' in out


def test_compress_reads_standard_input_and_threads_flag():
    args = ["--threads", "1", "compress", "--model", model_dir("v5"), "--device", "cpu"]
    text = (TEXTS / "sample.md").read_bytes()
    (status, out, err), expected = both(args, input=text)
    assert (status, out, err) == expected
    assert status == 0 and out


def test_a_bad_flag_is_clap_usage_error_exit_2():
    (status, out, err), expected = both(["compress", "--no-such-flag"])
    assert (status, out, err) == expected
    assert status == 2 and not out
    assert err.splitlines()[0] == b"error: unexpected argument '--no-such-flag' found", err


@pytest.mark.parametrize("args", [["--threads", "0", "compress", "x"], ["--threads", "nine", "compress", "x"]])
def test_bad_values_are_the_binarys(args):
    (status, out, err), expected = both(args)
    assert (status, out, err) == expected
    assert status in (1, 2) and not out


def test_a_missing_model_dir_is_one_error_line_exit_1(tmp_path):
    missing = tmp_path / "no-such-model"
    args = ["compress", "--model", str(missing), "--device", "cpu", str(TEXTS / "sample.md")]
    (status, out, err), expected = both(args)
    assert (status, out, err) == expected
    assert status == 1 and not out
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0], err
    assert_clean(err)


def test_a_missing_input_file_is_named_then_one_error_line(tmp_path):
    absent = tmp_path / "absent.txt"
    args = ["compress", "--model", model_dir("v5"), "--device", "cpu", str(absent)]
    (status, out, err), expected = both(args)
    assert (status, out, err) == expected
    lines = err.decode().splitlines()
    assert status == 1 and not out and len(lines) == 2, err
    assert lines[0].startswith(f"kompress: cannot read {absent}: ") and lines[1] == "error: 1 of 1 inputs could not be read"


def test_a_pipe_closed_before_the_first_write_ends_quietly_with_0():
    args = ["compress", "--json", "--model", model_dir("v5"), "--device", "cpu", str(TEXTS / "sample.md")]
    results = []
    for program in (script(), BIN):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the program writes
        try:
            r = subprocess.run([str(program), *args], stdout=write_end, stderr=subprocess.PIPE, env=ENV, timeout=120)
        finally:
            os.close(write_end)
        results.append((r.returncode, r.stderr))
    assert results[0] == results[1] == (0, b"")


def test_head_c_10_ends_quietly_with_0(tmp_path):
    # More output than a pipe holds (64 KiB), so the writer meets the closed pipe after head exits.
    big = tmp_path / "big.md"
    big.write_text("\n\n".join((TEXTS / name).read_text() for name in ("sample.md", "sample.py", "ls_l.txt")) * 40)
    args = ["compress", "--model", model_dir("v5"), "--device", "cpu", "--ratio", "0.9", str(big)]
    assert len(run(BIN, args).stdout) > 2 * 65536
    for program in (script(), BIN):
        r = subprocess.run(
            ["bash", "-c", 'set -o pipefail; "$@" | head -c 10', "sh", str(program), *args],
            capture_output=True,
            env=ENV,
            timeout=120,
        )
        assert (r.returncode, len(r.stdout), r.stderr) == (0, 10, b""), (program, r)


def wait_blocked_on_stdin(pid: int):
    """Waits until the process sleeps in a read of its standard input pipe (so it is in Rust's code,
    not still starting the interpreter)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        if "pipe" in wchan:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} never blocked on its standard input (wchan {wchan!r})")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_a_command_at_once_as_the_binarys():
    # Python's own SIGINT handler only sets a flag for the interpreter, which would not run again
    # until the command ended: the script must restore the default action, as the binary has.
    args = ["compress", "--model", model_dir("v5"), "--device", "cpu", "-"]
    results = []
    for program in (script(), BIN):
        # As from a terminal: SIGINT at its default action even where this test runs with it ignored
        # (a background job of a non-interactive shell), which both programs would rightly keep.
        p = subprocess.Popen(
            [str(program), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            wait_blocked_on_stdin(p.pid)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            p.kill()
            p.wait()
        results.append((p.returncode, out, err))
    assert results[0] == results[1] == (-signal.SIGINT, b"", b"")


def serve_until(program: Path, sig: int) -> tuple[int, str]:
    """Starts `serve` on an ephemeral port, checks /healthz, sends `sig`; its status and stderr."""
    p = subprocess.Popen(
        [str(program), "serve", "--port", "0", "--device", "cpu", "-m", model_dir("v5")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        lines: List[str] = []
        addr: Optional[str] = None
        while addr is None:
            line = p.stderr.readline().decode()
            assert line, f"serve ended before printing its address: {''.join(lines)}"
            lines.append(line)
            if "http://" in line:
                addr = line.split("http://", 1)[1].split()[0]
        with urllib.request.urlopen(f"http://{addr}/healthz", timeout=30) as resp:
            assert resp.status == 200 and b'"ok"' in resp.read()
        p.send_signal(sig)
        _, rest = p.communicate(timeout=60)
        return p.returncode, "".join(lines) + rest.decode()
    finally:
        p.kill()
        p.wait()


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_healthz_and_exits_0_on_a_signal(sig):
    for program in (script(), BIN):
        status, stderr = serve_until(program, sig)
        assert status == 0, (program, stderr)
        assert_clean(stderr.encode())


def test_main_takes_argv_and_returns_the_status(capfd):
    # In-process: kompress._cli.main(argv) returns the status rather than exiting.
    from kompress._cli import main

    try:
        assert main(["kompress", "--version"]) == 0
    finally:  # main gave SIGINT its default action, as the script needs; not for pytest
        signal.signal(signal.SIGINT, signal.default_int_handler)
    out, _ = capfd.readouterr()
    assert out == run(BIN, ["--version"]).stdout.decode()


def test_the_script_starts_without_numpy_or_asyncio():
    # The runner's names load lazily, so the console script does not pay for numpy and asyncio.
    code = "import sys, kompress._cli; print(sorted(m for m in ('numpy', 'asyncio', 'kompress._runner') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
    code = "import kompress; print(kompress.KompressRunner.__module__, kompress.DEFAULT_MODEL, 'TokenScores' in dir(kompress))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "kompress._runner chopratejas/kompress-base True\n"
