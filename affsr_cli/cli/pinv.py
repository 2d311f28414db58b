"""`affsr pinv`: fit the local A⁺ of the paper's Appendix B and report it beside the exact A⁺."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import AffsrError
from .common import BOUNDARY_HELP, OPERATOR_HELP, out, progress


def pinv(
    scale: int = typer.Option(4, min=2, max=16, help="Downsampling factor s of A (stride)."),
    operator: str = typer.Option("gaussian", "--operator", help=OPERATOR_HELP),
    kernel_size: Optional[int] = typer.Option(
        None, help="Taps of A's Gaussian per axis [default: 2s+1, the paper's 9 at 4×]."
    ),
    sigma: Optional[float] = typer.Option(
        None, help="Standard deviation of A's Gaussian in HR pixels [default: 0.375·s, 1.5 at 4×]."
    ),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    size: int = typer.Option(5, help="Support of the fitted A⁺ on the LR grid (size×size kernels, s² of them)."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Write A and the fitted A⁺ to this .safetensors file."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
):
    """Fit the local A⁺ of the paper's Appendix B and report its accuracy beside the exact A⁺."""
    from .. import pinv as P
    from ..files import check_writable
    from ..projection import OperatorSpec

    spec = OperatorSpec(scale, kernel_size, sigma, boundary, operator.lower())
    if output is not None:
        if output.suffix != ".safetensors":
            raise AffsrError(f"output {output} must end in .safetensors")
        check_writable(output, overwrite)
    with progress(None, "fitting A⁺") as bar:
        task = bar.add_task("fitting A⁺ (Gauss–Newton)", total=None, info="")
        B, rep = P.fit_local_pinv(
            spec, size, on_step=lambda i, loss: bar.update(task, completed=i, info=f"ℓ1+ℓ2 {loss:.2e}")
        )
    result = {
        **{k: getattr(spec, k) for k in ("family", "scale", "kernel_size", "sigma", "boundary")},
        "size": size,
        "l1": rep.l1,
        "l2": rep.l2,
        "max_penrose": rep.max_penrose,
        "distance_to_exact": rep.distance_to_exact,
        **P.consistency_report(B),
        "iterations": rep.iterations,
        "seconds": rep.seconds,
        "output": str(output) if output else None,
    }
    if output is not None:
        P.save(output, B, rep, overwrite)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"A⁺ for A = {spec.describe()}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("ℓ1  E‖Ay − AA⁺Ay‖² (per LR pixel)", rep.l1),
        ("ℓ2  E‖A⁺x − A⁺AA⁺x‖² (per HR pixel)", rep.l2),
        ("max |AA⁺A − A| on random inputs", rep.max_penrose),
        ("max |fitted − exact A⁺| (kernel entries)", rep.distance_to_exact),
        ("max |AΠf − x| fitted A⁺, all pixels", result["consistency_fitted"]),
        ("max |AΠf − x| fitted A⁺, interior", result["consistency_fitted_interior"]),
        ("max |AΠf − x| exact A⁺, float64", result["consistency_exact"]),
        ("max |AΠf − x| exact A⁺, float32", result["consistency_exact_float32"]),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:.3e}")
    table.add_row("Gauss–Newton iterations", str(rep.iterations))
    table.add_row("time", f"{rep.seconds:.2f} s")
    out.print(table)
    if output is not None:
        out.print(f"wrote {output}")
