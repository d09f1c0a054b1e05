"""The ``kompress`` console script: the command line of the ``kompress`` binary, from the wheel.

``pip install kompress-rs`` puts a ``kompress`` command next to the interpreter
(``[project.scripts]``) that runs this :func:`main`. The program is the Rust library's
``kompress::cli::run``, which is also the whole of the cargo-built binary, compiled into the
extension module: the same flags, output bytes, exit statuses and error lines.
"""

from __future__ import annotations

import signal
import sys
from typing import List, Optional

from . import _kompress


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``kompress`` on ``argv`` (default ``sys.argv``, the program's name first) and returns its
    exit status (the console script's wrapper passes it to ``sys.exit``).

    Ctrl-C acts as on the binary: Python's own SIGINT handler (which only raises
    ``KeyboardInterrupt`` once the interpreter runs again, after the command has finished) is
    replaced by the default action, so that SIGINT stops a ``compress`` at once, and ``serve``
    installs its own SIGTERM and SIGINT handlers (a graceful shutdown, exit status 0). SIGPIPE is left
    ignored, as Python and Rust programs both start with it: a closed pipe (``| head``) ends the
    command quietly with status 0.
    """
    if argv is None:
        argv = sys.argv
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return _kompress._cli_main(list(argv))
