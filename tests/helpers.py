"""What the test files share: the repository's folders and `affsr` run as a user runs it, in a new process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
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


def noise_images(root: Path, shapes: list[tuple[int, int]], seed: int = 0) -> Path:
    """Files img0.png, img1.png, … of uniform RGB noise, one per (height, width), in the folder `root`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(shapes):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    return root


def tiny_config(data, out, **kw):
    """The smallest training run of a folder: the paper's texture network on 16² patches, batch 2, 2 steps, no
    worker processes, a log line, a sample grid and a checkpoint at every step; `kw` changes any field."""
    from affsr_cli.config import TrainConfig

    base = dict(data=str(data), out=str(out), preset="patch", patch=16, batch_size=2, steps=2, generator="texture",
                workers=0, log_every=1, sample_every=1, checkpoint_every=1, seed=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def stub_torchvision():
    """Stand-ins for the two torchvision names spandrel imports at module level (for architectures tested nowhere
    here) when torchvision is missing, as the README's test command installs spandrel without its dependencies;
    the stand-ins raise if ever called."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return  # the real one, or the stand-ins already

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not installed (a test stub)")

    tv, transforms, functional = (
        types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    )
    functional.InterpolationMode = types.SimpleNamespace(BILINEAR="bilinear", NEAREST="nearest")
    functional.rotate = functional.normalize = unavailable
    tv.transforms, transforms.functional = transforms, functional
    sys.modules.update(
        {"torchvision": tv, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}
    )
