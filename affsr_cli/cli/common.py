"""What the commands share: the consoles (every string shown as text, terminal.py), the one-line
messages (error, warning, note), the progress bar, the A options' help and the cells of the tables."""

from __future__ import annotations

import sys

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import AffsrError
from .terminal import SafeConsole, SafeTextColumn

out = SafeConsole()  # strings are shown as text: never markup, control characters escaped (terminal.py)
err = SafeConsole(stderr=True)
OPERATOR_HELP = (
    "A, the downsampling that made the LR image: gaussian (the paper's blur), bicubic (Pillow, or MATLAB with "
    "--boundary matlab), area (Pillow BOX, OpenCV INTER_AREA), bilinear or lanczos3 (Pillow); docs/operators.md."
)
EVAL_DETAIL_HELP = (
    "Also evaluate each checkpoint with this network's detail added within ±--detail-limit levels "
    "(upscale --detail), in a column NAME + detail ±LEVELS."
)
EVAL_LIMITS_HELP = "With --detail: the limit in 8-bit levels (default 8); repeat for one column each."
EVAL_MODES_HELP = (
    "With --detail: all (default) or more (only where the detail network draws more: upscale --detail-mode); "
    "repeat for one column each, NAME + detail ±LEVELS more."
)
EVAL_ENSEMBLE_HELP = (
    "Also evaluate each checkpoint with the ×8 self-ensemble (upscale --ensemble), in a column NAME ×8."
)
EVAL_KEEP_GRID_HELP = (
    "Also evaluate each checkpoint with its image-wide grid left in (upscale --keep-grid), in a column NAME grid kept."
)
EVAL_AS_TRAINED_HELP = (
    "Checkpoints trained without the projection layer (mse, softmse, gan, softgan, ...) are measured on their "
    "own output f(x), clipped and rounded, not through Π as upscale saves them (the comparison of the paper's "
    "Table 2)."
)
BOUNDARY_HELP = (
    "Border convention of A: pil (taps outside dropped, the rest renormalised), matlab (= symmetric), "
    "symmetric, reflect, replicate or circular [default: symmetric for gaussian, else pil]."
)
STRICT_HELP = (
    "A file that would miss the promise (LR-PSNR under 60 dB at 8 bits, 80 at 16, Pillow's round trip not exact) "
    "is an error, exit code 1, and is not written; without it: one warning line per such file (docs/promise.md)."
)


def progress(total: int | None, description: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        SafeTextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def warn(message: str):
    err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


def note(message: str):
    err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)


def why_default(kernel_size, sigma) -> str:
    """Why this A, when neither --operator nor weights name one (projection.choose_operator, rules 3 and 4)."""
    if kernel_size is not None or sigma is not None:
        return "no --operator, and --kernel-size/--sigma are the Gaussian's"
    return "no --operator and no weights: the default for images made elsewhere (Pillow's resize)"


def operator_note(spec, why: str):
    """The line that says which A a command uses when --operator was not given (projection.choose_operator)."""
    note(f"A = {spec.describe()}: {why} (--operator names the A that made your LR images; docs/operators.md)")


def exact(consistent: bool | None) -> str:
    """The table's cell for a file's verdict (docs/promise.md): yes, no (a warning said why), — (no promise)."""
    return "—" if consistent is None else "yes" if consistent else "no"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise AffsrError(f"--shard must be K/N with 0 ≤ K < N (e.g. 0/4 … 3/4), got {text!r}")
    return int(k), int(n)


def fail(message: str, code: int = 2):
    err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def data_range_of(text: str) -> float | None:
    """`affsr eval --data-range`: a positive number, or None for 'gt'/'auto' (the ground truth's)."""
    if text.strip().lower() in ("gt", "auto"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < float("inf")):
        raise AffsrError(f"--data-range must be a positive number or 'gt', got {text!r}")
    return value
