"""`affsr project`: make the results of any upscaler consistent with their LR inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import AffsrError
from .common import (
    BOUNDARY_HELP,
    OPERATOR_HELP,
    STRICT_HELP,
    err,
    exact,
    operator_note,
    out,
    progress,
    warn,
    why_default,
)


def project(
    lr: Path = typer.Argument(..., show_default=False, help="The LR input image, or a folder of them."),
    sr: Path = typer.Argument(
        ..., show_default=False, help="Its upscaled result (any tool), or a folder paired by file name."
    ),
    output: Path = typer.Option(..., "-o", "--output", show_default=False, help="Output file (one pair) or folder."),
    operator: Optional[str] = typer.Option(
        None,
        "--operator",
        show_default=False,
        help=OPERATOR_HELP + " [default: "
        "bicubic (Pillow's resize), or gaussian when --kernel-size or --sigma is given; "
        "a note says which: another tool's files do not name their A]",
    ),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    kernel_size: Optional[int] = typer.Option(None, min=1, max=129, help="Taps of a Gaussian A (default: 2s+1)."),
    sigma: Optional[float] = typer.Option(None, help="σ of a Gaussian A in HR pixels (default: 0.375·s)."),
    scale: Optional[int] = typer.Option(
        None, min=2, max=16, help="Scale s (default: SR size / LR size, which must be a whole number)."
    ),
    bit_depth: Optional[int] = typer.Option(
        None,
        "--bit-depth",
        "--bits",
        help="8, 16 (PNG) or 32 (float32 TIFF or .npy, exact for every input) (default: the SR file's).",
    ),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    strict: bool = typer.Option(
        False,
        "--strict",
        help=STRICT_HELP,
    ),
    invented_map: bool = typer.Option(
        False,
        "--invented-map",
        help="Also write NAME_invented.png beside each output: what the "
        "upscaler invented beyond its input, (I − A⁺A)ŷ (scale in docs/invented.md), and print "
        "its share of the output's contrast energy.",
    ),
    remove_grid: bool = typer.Option(
        False,
        "--remove-grid",
        help="Also take out the result's image-wide period-s pattern, which the LR input cannot decide "
        "(the step `affsr upscale` takes by default: docs/upscale.md).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON array instead of a table."),
):
    """Make an upscaled image downsample exactly to its LR input (Π over the whole image, the saved-file
    box fit and rounding, as upscale does); prints LR-PSNR before and after, and warns about any file
    that cannot keep the promise at its bit depth."""
    from .. import project as engine
    from ..projection import choose_operator

    if bit_depth not in (None, 8, 16, 32):
        raise AffsrError(f"--bit-depth must be 8, 16 or 32 (float32), got {bit_depth}")
    choose_operator(operator, scale or 4, kernel_size, sigma, boundary)  # the options checked before any file is read
    opts = engine.Options(
        output,
        lambda s: choose_operator(operator, s, kernel_size, sigma, boundary),
        scale,
        bit_depth,
        overwrite,
        strict,
        invented_map,
        remove_grid,
    )
    failures = []

    def on_error(name: str, message: str):
        failures.append({"name": name, "error": message})
        err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)

    with progress(None, "projecting") as bar:
        task = bar.add_task("projecting", total=None, info="")
        results = engine.run(
            lr,
            sr,
            opts,
            on_error,
            lambda done, total, name: bar.update(task, completed=done, total=total, info=name),
            lambda name, message: warn(message),
        )
    if results and operator is None:  # which A, with the results (an error stays one line)
        operator_note(opts.operator(results[0]["scale"]), why_default(kernel_size, sigma))
    if as_json:
        print(json.dumps(results + failures))
    elif results:
        spec = opts.operator(results[0]["scale"])
        table = Table(title=f"affsr project: A = {spec.describe()}")
        for name in (
            ("output", "LR-PSNR before (dB)", "after (dB)", "exact")
            + (("invented",) if invented_map else ())
            + ("seconds",)
        ):
            table.add_column(name, justify="left" if name == "output" else "right")
        for r in results:
            cell = lambda v: "∞" if v is None else f"{v:.2f}"  # noqa: E731
            share = (f"{100 * r['invented_share']:.1f} %",) if invented_map else ()
            table.add_row(
                r["output"],
                cell(r["lr_psnr_before"]),
                cell(r["lr_psnr_after"]),
                exact(r["consistent"]),
                *share,
                f"{r['seconds']:.2f}",
            )
        out.print(table)
    if failures:
        err.print(
            f"affsr: error: {len(failures)} pair(s) failed, {len(results)} file(s) written",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
