"""The `affsr` command line. The only module that imports typer and rich; torch is imported
inside the commands so that `affsr --help` and `affsr --version` answer at once."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__

try:  # typer ≥ 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import ClickException

app = typer.Typer(
    name="affsr",
    help="Super-resolution whose every output downsamples exactly to its input "
    "(Amortised MAP Inference for Image Super-resolution, Sønderby et al., ICLR 2017).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class UserError(Exception):
    """A problem with the user's input: reported as one line on stderr, exit code 2."""


def _version(value: bool):
    if value:
        print(f"affsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    pass


def _progress(total: int | None, description: str) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


@app.command()
def pinv(
    scale: int = typer.Option(4, help="Downsampling factor s of A (stride)."),
    kernel_size: Optional[int] = typer.Option(None, help="Taps of A's Gaussian per axis [default: 2s+1, the paper's 9 at 4×]."),
    sigma: Optional[float] = typer.Option(None, help="Standard deviation of A's Gaussian in HR pixels [default: 0.375·s, 1.5 at 4×]."),
    boundary: str = typer.Option("symmetric", help="Border convention of A: symmetric, reflect, replicate or circular."),
    size: int = typer.Option(5, help="Support of the fitted A⁺ on the LR grid (size×size kernels, s² of them)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write A and the fitted A⁺ to this .safetensors file."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
):
    """Fit the local A⁺ of the paper's Appendix B and report its accuracy beside the exact A⁺."""
    from . import pinv as P
    from .projection import OperatorSpec
    from .weights import check_writable

    spec = OperatorSpec.for_scale(scale, kernel_size, sigma, boundary)
    if output is not None:
        if output.suffix != ".safetensors":
            raise UserError(f"output {output} must end in .safetensors")
        check_writable(output, overwrite)
    with _progress(None, "fitting A⁺") as bar:
        task = bar.add_task("fitting A⁺ (Gauss–Newton)", total=None, info="")
        B, rep = P.fit_local_pinv(spec, size, on_step=lambda i, loss: bar.update(task, completed=i, info=f"ℓ1+ℓ2 {loss:.2e}"))
    result = {
        **{k: getattr(spec, k) for k in ("scale", "kernel_size", "sigma", "boundary")},
        "size": size, "l1": rep.l1, "l2": rep.l2, "max_penrose": rep.max_penrose,
        "distance_to_exact": rep.distance_to_exact, **P.consistency_report(B),
        "iterations": rep.iterations, "seconds": rep.seconds, "output": str(output) if output else None,
    }
    if output is not None:
        P.save(output, B, rep, overwrite)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"A⁺ for A = Gaussian σ={spec.sigma:g}, {spec.kernel_size} taps, stride {spec.scale}, {spec.boundary} borders")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("ℓ1  E‖Ay − AA⁺Ay‖² (per LR pixel)", rep.l1), ("ℓ2  E‖A⁺x − A⁺AA⁺x‖² (per HR pixel)", rep.l2),
        ("max |AA⁺A − A| on random inputs", rep.max_penrose), ("max |fitted − exact A⁺| (kernel entries)", rep.distance_to_exact),
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


def _config_options():
    """`affsr train` takes one option per TrainConfig field; its help is the field's comment."""
    import dataclasses
    import inspect
    import re

    from .config import TrainConfig

    comments = dict(re.findall(r"^\s+(\w+): .*?  # (.*)$", inspect.getsource(TrainConfig), re.M))
    params = []
    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')}"
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if f.type in ("bool", bool) else [flag]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=type(f.default),
                                        default=typer.Option(f.default, *decls, help=comments.get(f.name, ""))))
    return inspect.Signature(params)


class _TrainUI:
    """Rich output for the training callbacks: the resolved configuration, then a progress bar."""

    def __init__(self):
        self.bar = None

    def on_message(self, message):
        err.print(f"warning: {message}", markup=False, highlight=False)

    def on_start(self, config, info):
        table = Table(title="affsr train: resolved configuration", show_header=False)
        for k, v in {**config, **info}.items():
            table.add_row(k, str(v))
        out.print(table)
        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            console=err, disable=not err.is_terminal)
        self.task = self.bar.add_task("train", total=config["steps"], completed=info["start_step"], rate="", info="")
        self.bar.start()
        self.t0, self.step0 = time.perf_counter(), info["start_step"]

    def on_step(self, step, logs):
        rate = (step - self.step0) / max(time.perf_counter() - self.t0, 1e-9)
        shown = {k: v for k, v in logs.items() if k in ("loss", "mse", "mae", "g_loss", "d_loss", "soft_mae", "noise", "lr_mse")}
        self.bar.update(self.task, completed=step, rate=f"{rate:.2f} steps/s",
                        info=" ".join(f"{k} {v:.3g}" for k, v in shown.items()))

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def train(**kwargs):
    """Train a method (objective × constraint) on a folder of images; torchrun for several GPUs."""
    from . import train as engine
    from .config import TrainConfig

    ui = _TrainUI()
    try:
        run = engine.train(TrainConfig(**kwargs), ui)
    except engine.Interrupted as e:
        ui.close()
        _fail(str(e), 130)
    finally:
        ui.close()
    out.print(f"done: {run}/generator.safetensors")


train.__signature__ = _config_options()
app.command(help=train.__doc__)(train)


def _fail(message: str, code: int = 2):
    err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def main():
    try:
        rv = app(standalone_mode=False)
    except ClickException as e:
        if not e.format_message().strip():  # no arguments: typer has printed the help already
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(e.format_message().replace("\n", " ") + hint, e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except FileExistsError as e:
        _fail(f"{e} exists; pass --overwrite to replace it")
    except (UserError, ValueError, OSError) as e:
        if os.environ.get("AFFSR_DEBUG"):
            raise
        _fail(str(e) or type(e).__name__)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
