"""The `affsr` command line: the app, its error handling, `pinv` and `upscale`; cli_eval.py and
cli_train.py add `eval` and `train`. These (with cli_export, cli_project and terminal.py, whose
consoles show every string as escaped text) are the only modules that import typer and rich (the
engine never prints); torch is imported inside the commands so that `affsr --help` and
`affsr --version` answer at once."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
import typer.core
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .terminal import SafeConsole, SafeTextColumn

try:  # typer ≥ 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException, NoSuchOption
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import ClickException, NoSuchOption

class _Commands(typer.core.TyperGroup):
    """`affsr -h` lists each command with its first sentence whole (click cuts it at the width, mid-sentence)."""

    def format_commands(self, ctx, formatter):
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="affsr",
    cls=_Commands,
    help="Super-resolution whose every output downsamples exactly to its input "
    "(Amortised MAP Inference for Image Super-resolution, Sønderby et al., ICLR 2017).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "affsr[foreign]" and "[default: …]" are shown, not read as markup
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},  # inherited by every command
)
out = SafeConsole()  # strings are shown as text: never markup, control characters escaped (terminal.py)
err = SafeConsole(stderr=True)
OPERATOR_HELP = ("A, the downsampling that made the LR image: gaussian (the paper's blur), bicubic (Pillow, or MATLAB with "
                 "--boundary matlab), area (Pillow BOX, OpenCV INTER_AREA), bilinear or lanczos3 (Pillow); docs/operators.md.")
BOUNDARY_HELP = ("Border convention of A: pil (taps outside dropped, the rest renormalised), matlab (= symmetric), "
                 "symmetric, reflect, replicate or circular [default: symmetric for gaussian, else pil].")


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
                    SafeTextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


@app.command()
def pinv(
    scale: int = typer.Option(4, min=2, max=16, help="Downsampling factor s of A (stride)."),
    operator: str = typer.Option("gaussian", "--operator", help=OPERATOR_HELP),
    kernel_size: Optional[int] = typer.Option(None, help="Taps of A's Gaussian per axis [default: 2s+1, the paper's 9 at 4×]."),
    sigma: Optional[float] = typer.Option(None, help="Standard deviation of A's Gaussian in HR pixels [default: 0.375·s, 1.5 at 4×]."),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    size: int = typer.Option(5, help="Support of the fitted A⁺ on the LR grid (size×size kernels, s² of them)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write A and the fitted A⁺ to this .safetensors file."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
):
    """Fit the local A⁺ of the paper's Appendix B and report its accuracy beside the exact A⁺."""
    from . import pinv as P
    from .projection import OperatorSpec
    from .weights import check_writable

    spec = OperatorSpec(scale, kernel_size, sigma, boundary, operator.lower())
    if output is not None:
        if output.suffix != ".safetensors":
            raise UserError(f"output {output} must end in .safetensors")
        check_writable(output, overwrite)
    with _progress(None, "fitting A⁺") as bar:
        task = bar.add_task("fitting A⁺ (Gauss–Newton)", total=None, info="")
        B, rep = P.fit_local_pinv(spec, size, on_step=lambda i, loss: bar.update(task, completed=i, info=f"ℓ1+ℓ2 {loss:.2e}"))
    result = {
        **{k: getattr(spec, k) for k in ("family", "scale", "kernel_size", "sigma", "boundary")},
        "size": size, "l1": rep.l1, "l2": rep.l2, "max_penrose": rep.max_penrose,
        "distance_to_exact": rep.distance_to_exact, **P.consistency_report(B),
        "iterations": rep.iterations, "seconds": rep.seconds, "output": str(output) if output else None,
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


@app.command()
def upscale(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="INPUTS", show_default=False,
                                                 help="Image files, folders (read recursively) or globs such as 'photos/**/*.jpg'."),
    input_: Optional[list[str]] = typer.Option(None, "-i", "--input", metavar="PATH", show_default=False,
                                               help="One more input (as Real-ESRGAN's -i); repeatable."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input) or folder (the input tree is "
                                          "kept under it) (default: beside each input, named with --suffix)."),
    suffix: Optional[str] = typer.Option(None, help="Added to each output's name (default: '_x4' beside the input, none under -o DIR)."),
    ext: Optional[str] = typer.Option(None, help="Output type: png, tif, webp, bmp, jpg (lossy) or npy (float32) "
                                      "(default: the input's when lossless, else png)."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", "--bits", help="8, 16 (PNG) or 32 (float32 TIFF or .npy, exact "
                                            "values) (default: the input's)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", "-n", help="Checkpoint: a path, a run folder (its generator.safetensors), "
                                          "a shipped name (weights/NAME.safetensors) or hf://owner/repo/file.safetensors (default: weights/affmse-x4.safetensors, "
                                          "SPAN x4 fine-tuned with AffMSE for Pillow's bicubic; -w affgan-x4 for the AffGAN (sharper, more invented detail); -w affmse-x4-gaussian, "
                                          "affgan-x4-gaussian for the paper's Gaussian A); also another tool's .safetensors network that spandrel "
                                          "recognises (ESRGAN, SPAN, SwinIR, ...; needs --operator and affsr[foreign])."),
    operator: Optional[str] = typer.Option(None, "--operator", help=OPERATOR_HELP + " [default: the "
                                          "weights' (a note says which); another gives a warning; required for another tool's network]"),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("fp32", help="Network precision on GPUs: fp32, bf16 or fp16 (the CPU uses fp32; Π always fp32)."),
    tile: str = typer.Option("auto", "-t", "--tile", help="LR tile side in pixels (8 or more; tiles overlap and are blended), "
                             "0 for none (the whole image at once), or 'auto' (from free memory)."),
    overlap: Optional[int] = typer.Option(None, min=0, max=4096, help="LR pixels shared by neighbouring tiles (default: 2 × receptive radius + 8)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Average the network over the 8 flips and transposes of each "
                                  "input (×8 self-ensemble, 8× the time; gains in weights/README.md)."),
    samples: int = typer.Option(1, min=1, max=10_000, help="Stochastic checkpoints: samples per input (files NAME_seedS), each consistent."),
    seed: int = typer.Option(0, min=0, max=2**63 - 1, help="Seed of the first sample; sample i uses seed + i (same seed, same files)."),
    outscale: Optional[float] = typer.Option(None, "-s", "--outscale", help="Resize the result to this factor of the input at the end (bicubic); "
                                             "breaks exact consistency."),
    max_pixels: Optional[int] = typer.Option(None, min=1, help="Refuse inputs over this many pixels (default: Pillow's bomb limit, 89 Mpx)."),
    quality: int = typer.Option(95, min=1, max=100, help="JPEG quality (JPEG is lossy: its LR-PSNR is low)."),
    shard: Optional[str] = typer.Option(None, help="K/N: only the K-th (0 … N−1) of N slices of the sorted inputs, "
                                        "balanced by pixels; N processes with K = 0 … N−1 cover the inputs exactly once."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose outputs exist (finish a batch "
                                       "after a failure)."),
    strict: bool = typer.Option(False, "--strict", help="A file that would miss the promise (LR-PSNR under 60 dB at 8 bits, "
                                "80 at 16, Pillow's round trip not exact) is an error, exit code 1, and is not written; "
                                "without it: one warning line per such file (docs/promise.md)."),
    invented_map: bool = typer.Option(False, "--invented-map", help="Also write NAME_invented.png beside each output: where "
                                      "the network invented detail, the part (I − A⁺A)ŷ that the input does not determine "
                                      "(scale in docs/invented.md), and print its share of the output's contrast energy; "
                                      "with --samples N also NAME_spread.png, the samples' per-pixel spread."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON array (input, output, lr_psnr, consistent, seconds, ...) instead of a table."),
):
    """Upscale images with a checkpoint; every saved file downsamples (A) to its input as exactly as its bit depth allows."""
    from . import infer
    from . import upscale as engine

    if tile != "auto" and not tile.isdigit():
        raise UserError(f"--tile must be a number of LR pixels, 0 (no tiling) or 'auto', got {tile!r}")
    inputs = [*(inputs or []), *(input_ or [])]
    if not inputs:
        raise UserError("no inputs: give image files, folders or globs (or -i PATH); see 'affsr upscale --help'")
    if weights is None:
        from .evaluate import DEFAULT_WEIGHTS as default
        if not default.is_file():
            raise UserError(f"the default weights ({default.parent.name}/{default.name}) are not shipped yet; "
                            "pass --weights NAME|PATH|hf://owner/repo/file.safetensors")
        weights = str(default)
    note = lambda message: err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    opts = engine.Options(output, suffix, ext, bit_depth, overwrite, samples, seed, outscale, max_pixels, quality,
                          _shard(shard), skip_existing, strict, invented_map)
    if skip_existing and overwrite:
        raise UserError("--skip-existing and --overwrite contradict each other")
    up = infer.Upscaler.load(weights, device, precision, None if tile == "auto" else int(tile), overlap, on_note=note,
                             operator=operator, boundary=boundary, ensemble=ensemble)
    if operator is not None or boundary is not None:
        _use_operator(up, operator, boundary, weights)
    failures = []

    def on_error(source: str, message: str):
        failures.append({"input": source, "output": None, "lr_psnr": None, "seconds": None, "error": message})
        err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)

    with _progress(None, "upscaling") as bar:
        files = bar.add_task("files", total=None, info="")
        tiles = bar.add_task("tiles", total=None, info="")
        cb = engine.Callbacks(note=note, error=on_error, warn=lambda source, message: _warn(message),
                              file=lambda done, total, name: bar.update(files, completed=done, total=total, info=name),
                              tile=lambda done, total: bar.update(tiles, description="tiles", completed=done, total=total),
                              stage=lambda name, done, total: bar.update(tiles, description=name, completed=done, total=total))
        failed = engine.run(up, inputs, opts, cb)
    if cb.results and operator is None and boundary is None and not up.foreign:  # with the results: an error stays one line
        _operator_note(up.spec, "the weights' own")
    if as_json:
        print(json.dumps(cb.results + failures))
    elif cb.results:
        table = Table(title=f"affsr upscale: {weights} on {up.device} ({str(up.dtype).replace('torch.', '')}), "
                            + (f"tiles of {up.tile} LR px" if up.tile else "no tiling") + (", ×8 self-ensemble" if ensemble else ""))
        for name in ("file", "size in → out", "LR-PSNR (dB)", "exact") + (("invented",) if invented_map else ()) + ("seconds",):
            table.add_column(name, justify="left" if name == "file" else "right")
        for r in cb.results:
            (w, h), (W, H) = r["size_in"], r["size_out"]
            psnr = "—" if r["lr_psnr"] is None else "∞" if r["lr_mse"] == 0 else f"{r['lr_psnr']:.2f}"
            share = (f"{100 * r['invented_share']:.1f} %",) if invented_map else ()
            table.add_row(r["output"], f"{w}×{h} → {W}×{H}", psnr, _exact(r["consistent"]), *share, f"{r['seconds']:.2f}")
        out.print(table)
    if failed:
        err.print(f"affsr: error: {failed} input(s) failed, {len(cb.results)} file(s) written", markup=False, highlight=False)
        raise typer.Exit(1)


def _warn(message: str):
    err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


def _note(message: str):
    err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)


def _why_default(kernel_size, sigma) -> str:
    """Why this A, when neither --operator nor weights name one (projection.choose_operator, rules 3 and 4)."""
    if kernel_size is not None or sigma is not None:
        return "no --operator, and --kernel-size/--sigma are the Gaussian's"
    return "no --operator and no weights: the default for images made elsewhere (Pillow's resize)"


def _operator_note(spec, why: str):
    """The line that says which A a command uses when --operator was not given (projection.choose_operator)."""
    _note(f"A = {spec.describe()}: {why} (--operator names the A that made "
          "your LR images; docs/operators.md)")


def _exact(consistent: bool | None) -> str:
    """The table's cell for a file's verdict (docs/promise.md): yes, no (a warning said why), — (no promise)."""
    return "—" if consistent is None else "yes" if consistent else "no"


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise UserError(f"--shard must be K/N with 0 ≤ K < N (e.g. 0/4 … 3/4), got {text!r}")
    return int(k), int(n)


def _use_operator(up, family: str | None, boundary: str | None, weights: str, kernel_size: int | None = None,
                  sigma: float | None = None):
    """`--operator` and the other A options of upscale and eval: outputs consistent with that A, and a
    warning when the network was trained for another. Another tool's network got its A from these
    options while loading (infer.Upscaler.load), so there is nothing to change."""
    from .projection import choose_operator

    if up.foreign:
        return
    trained = up.trained_for
    spec = choose_operator(family, trained.scale, kernel_size, sigma, boundary, trained=trained)
    if spec != trained:
        err.print(f"warning: {weights} was trained for another degradation ({trained.describe()}); its outputs are made "
                  f"consistent with {spec.describe()}", markup=False, highlight=False, soft_wrap=True)
    up.set_operator(spec)


def _fail(message: str, code: int = 2):
    err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


from . import cli_eval, cli_export, cli_project, cli_train  # noqa: E402,F401 (they add `eval`, `export`, `project` and `train`)


ASCII = {"→": "->", "←": "<-", "−": "-", "–": "-", "—": "-", "×": "x", "⁺": "+", "ᵀ": "^T", "σ": "sigma", "Π": "Pi",
         "ŷ": "y^", "≤": "<=", "≥": ">=", "∞": "inf", "↑": "(up)", "↓": "(down)", "·": "*", "…": "...", "²": "^2",
         "‖": "||", "ℓ": "l", "½": "1/2", "━": "-", "─": "-", "│": "|", "┃": "|"}


def _ascii_fallback(e: UnicodeEncodeError):
    """Terminals that cannot show a character (LANG=C, latin-1) get an ASCII stand-in, never a crash."""
    text = e.object[e.start:e.end]
    return "".join(ASCII.get(c, "?") for c in text), e.end


def _tolerant_streams():
    import codecs

    codecs.register_error("affsr-ascii", _ascii_fallback)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower().replace("-", "") not in ("utf8", "utf16"):
            stream.reconfigure(errors="affsr-ascii")


def _one_line_warnings():
    """Library warnings (a JPEG's corrupt EXIF, ...) as one line of ours, without a site-packages path."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        first = (str(message).strip().splitlines() or [category.__name__])[0]
        err.print(f"warning: {first}", markup=False, highlight=False, soft_wrap=True)

    warnings.showwarning = show


def _terminate_as_interrupt():
    """SIGTERM (timeout, docker stop, systemd, batch schedulers) and SIGHUP (the terminal closed) stop every
    command as Ctrl-C does: temporaries removed, one line, exit code 130 (train saves its state first)."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), stop)


def _interrupted():
    """One line and exit code 130, at once: the cleanup (temporaries, train's state) has run on the way up, and
    the interpreter's own teardown of torch takes seconds more on a busy machine, so it is skipped."""
    err.print("affsr: error: interrupted", markup=False, highlight=False)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


def _check_working_folder():
    """A deleted current folder makes torch's import die in oneMKL with a fatal error: say so first."""
    try:
        os.getcwd()
    except OSError:
        _fail("the current folder no longer exists (deleted or moved away); cd to an existing folder and run again")


# Options of other tools (Real-ESRGAN, its ncnn build, waifu2x, BasicSR) and near misses -> ours: (option, what to
# write). A hint is given only where its option exists in the command at hand.
OTHER_TOOLS = {
    "--half": ("--precision", "--precision fp16"), "--fp16": ("--precision", "--precision fp16"),
    "--bf16": ("--precision", "--precision bf16"), "--fp32": ("--precision", "--precision fp32"),
    "--model": ("--weights", "--weights NAME|PATH"), "--model-name": ("--weights", "--weights NAME|PATH"),
    "--model-path": ("--weights", "--weights NAME|PATH"), "--checkpoint": ("--weights", "--weights NAME|PATH"),
    "--ckpt": ("--weights", "--weights NAME|PATH"), "-m": ("--weights", "--weights NAME|PATH (or -n)"),
    "--gpu": ("--device", "--device cuda"), "--gpu-id": ("--device", "--device cuda:N"), "-g": ("--device", "--device cuda:N"),
    "--cpu": ("--device", "--device cpu"),
    "--tile-size": ("--tile", "--tile N"), "--tile-pad": ("--overlap", "--overlap N"), "--tta": ("--ensemble", "--ensemble"),
    "-x": ("--ensemble", "--ensemble"), "--format": ("--ext", "--ext png|tif|webp|jpg|npy"), "-f": ("--ext", "--ext png|tif|webp|jpg|npy"),
    "--output-dir": ("--output", "-o DIR"), "--outdir": ("--output", "-o DIR"),
    "--scale": ("--outscale", "--outscale F (-s F) to resize the result; the network's own scale comes with --weights"),
    "--outscale": ("--scale", "--scale N"), "--input": ("--hr", "--hr (ground truth), --sr or --lr"),
}


def _option_hint(e: NoSuchOption) -> str:
    """One line for an unknown option: the option of ours that does what another tool's does (--half ->
    --precision fp16, --model -> --weights), else the closest of this command's own (a typo)."""
    import difflib

    given = e.option_name.split("=", 1)[0]
    ctx = getattr(e, "ctx", None)
    names = [n for p in (ctx.command.get_params(ctx) if ctx is not None else []) for n in (*p.opts, *p.secondary_opts)
             if n.startswith("-")]
    where = f"affsr {ctx.info_name}" if ctx is not None and ctx.parent is not None else "affsr"
    normal = given.replace("_", "-").lower()  # --skip_existing, --Tile
    target, write = OTHER_TOOLS.get(normal, (None, None))
    if target in names:
        return f"no such option {given}; {where} uses {write}"
    if normal in names:
        return f"no such option {given}; did you mean {normal}?"
    close = difflib.get_close_matches(normal, [n for n in names if n.startswith("--")], n=1, cutoff=0.75)
    return f"no such option {given}" + (f"; did you mean {close[0]}?" if close else "")


def main():
    _tolerant_streams()
    _check_working_folder()
    _one_line_warnings()
    _terminate_as_interrupt()
    try:
        rv = app(standalone_mode=False)
    except ClickException as e:
        if not e.format_message().strip():  # no arguments: typer has printed the help already
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = _option_hint(e) if isinstance(e, NoSuchOption) else e.format_message().replace("\n", " ")
        _fail(message + hint, e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except FileExistsError as e:
        if e.errno is None:  # ours (weights.OutputExists, ...): an output that is there already
            _fail(f"{e} exists; pass --overwrite to replace it")
        _fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))  # the system's: --overwrite would not help
    except Exception as e:
        if os.environ.get("AFFSR_DEBUG"):
            raise
        if isinstance(e, (UserError, ValueError, OSError)):  # the user's input: its message says what to fix
            _fail(str(e) or type(e).__name__)
        # a bug or a cause not checked where it arises: still one line
        first = (str(e).strip().splitlines() or [""])[0][:300]
        _fail(f"unexpected {type(e).__name__}{': ' + first if first else ''} (AFFSR_DEBUG=1 shows the traceback)", 1)
    if rv == 130:  # typer turns Ctrl-C (and SIGTERM, above) into a return code of its own, silently
        _interrupted()
    if isinstance(rv, int) and rv:
        sys.exit(rv)
