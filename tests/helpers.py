"""What the test files share: the repository's folders and `affsr` run as a user runs it, in a new process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAL = ROOT / "examples" / "val"  # the bundled validation photos


def affsr(
    *args, cwd=None, env: dict | None = None, timeout: float | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """`python -m affsr_cli ARGS` (paths and numbers as strings), its output captured as text; COLUMNS 200 so
    that tables are not cut; `env` adds to (or overrides) this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "affsr_cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        **kwargs,
    )


def one_thread(*args, **kwargs) -> subprocess.CompletedProcess:
    """affsr on one thread, as tests that compare its pixels with this process's (oneDNN's sums depend on
    the thread count) or that run beside others need."""
    return affsr(*args, **{**kwargs, "env": {"OMP_NUM_THREADS": "1", **(kwargs.get("env") or {})}})


def cli(*args) -> subprocess.CompletedProcess:
    """`affsr ARGS` run in this process, for tests of a refusal's message and exit code (no new interpreter and
    torch import per case): main() with sys.argv set and its output captured; the signal handlers and the
    warning display it installs are put back after."""
    import contextlib
    import io
    import signal
    import warnings

    from affsr_cli.cli.app import main

    out, err, argv, show = io.StringIO(), io.StringIO(), sys.argv, warnings.showwarning
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    code = 0
    try:
        sys.argv = ["affsr", *map(str, args)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv, warnings.showwarning = argv, show
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess(["affsr", *map(str, args)], code, out.getvalue(), err.getvalue())
