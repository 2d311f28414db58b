"""The `affsr` app: its commands (one module each: pinv, upscale, eval, export, project, train, sharing
common.py), `affsr -h`, and `main()`, which turns every error into one line on stderr. The cli package
is the only one that imports typer and rich (the engine never prints); torch is imported inside the
commands so that `affsr --help` and `affsr --version` answer at once. Imports point one way:
app -> the commands -> common -> terminal, and from any of them down into the engine."""

from __future__ import annotations

import os
import sys

import typer
import typer.core

from .. import __version__
from ..errors import AffsrError
from . import eval as eval_command
from . import export, pinv, project, train, upscale
from .common import err, fail

try:  # typer ≥ 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException, NoSuchOption
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import ClickException, NoSuchOption


class _Commands(typer.core.TyperGroup):
    """`affsr -h` lists each command with its first sentence whole (click cuts it at the width, mid-sentence)."""

    def format_commands(self, ctx, formatter):
        rows = [
            (name, cmd.get_short_help_str(limit=10_000))
            for name in self.list_commands(ctx)
            if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden
        ]
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


def _version(value: bool):
    if value:
        print(f"affsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    pass


app.command()(pinv.pinv)
app.command()(upscale.upscale)
app.command("eval")(eval_command.eval_)
app.command()(export.export)
app.command()(project.project)
app.command(help=train.train.__doc__)(train.train)  # its options come from TrainConfig (train.__signature__)


ASCII = {
    "→": "->",
    "←": "<-",
    "−": "-",
    "–": "-",
    "—": "-",
    "×": "x",
    "⁺": "+",
    "ᵀ": "^T",
    "σ": "sigma",
    "Π": "Pi",
    "ŷ": "y^",
    "≤": "<=",
    "≥": ">=",
    "∞": "inf",
    "↑": "(up)",
    "↓": "(down)",
    "·": "*",
    "…": "...",
    "²": "^2",
    "‖": "||",
    "ℓ": "l",
    "½": "1/2",
    "━": "-",
    "─": "-",
    "│": "|",
    "┃": "|",
}


def _ascii_fallback(e: UnicodeEncodeError):
    """Terminals that cannot show a character (LANG=C, latin-1) get an ASCII stand-in, never a crash."""
    text = e.object[e.start : e.end]
    return "".join(ASCII.get(c, "?") for c in text), e.end


def tolerant_streams():
    import codecs

    codecs.register_error("affsr-ascii", _ascii_fallback)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower().replace("-", "") not in ("utf8", "utf16"):
            stream.reconfigure(errors="affsr-ascii")


def one_line_warnings():
    """Library warnings (a JPEG's corrupt EXIF, ...) as one line of ours, without a site-packages path."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        first = (str(message).strip().splitlines() or [category.__name__])[0]
        err.print(f"warning: {first}", markup=False, highlight=False, soft_wrap=True)

    warnings.showwarning = show


def terminate_as_interrupt():
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


def interrupted():
    """One line and exit code 130, at once: the cleanup (temporaries, train's state) has run on the way up, and
    the interpreter's own teardown of torch takes seconds more on a busy machine, so it is skipped."""
    err.print("affsr: error: interrupted", markup=False, highlight=False)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


def check_working_folder():
    """A deleted current folder makes torch's import die in oneMKL with a fatal error: say so first."""
    try:
        os.getcwd()
    except OSError:
        fail("the current folder no longer exists (deleted or moved away); cd to an existing folder and run again")


# Options of other tools (Real-ESRGAN, its ncnn build, waifu2x, BasicSR) and near misses -> ours: (option, what to
# write). A hint is given only where its option exists in the command at hand.
OTHER_TOOLS = {
    "--half": ("--precision", "--precision fp16"),
    "--fp16": ("--precision", "--precision fp16"),
    "--bf16": ("--precision", "--precision bf16"),
    "--fp32": ("--precision", "--precision fp32"),
    "--model": ("--weights", "--weights NAME|PATH"),
    "--model-name": ("--weights", "--weights NAME|PATH"),
    "--model-path": ("--weights", "--weights NAME|PATH"),
    "--checkpoint": ("--weights", "--weights NAME|PATH"),
    "--ckpt": ("--weights", "--weights NAME|PATH"),
    "-m": ("--weights", "--weights NAME|PATH (or -n)"),
    "--gpu": ("--device", "--device cuda"),
    "--gpu-id": ("--device", "--device cuda:N"),
    "-g": ("--device", "--device cuda:N"),
    "--cpu": ("--device", "--device cpu"),
    "--tile-size": ("--tile", "--tile N"),
    "--tile-pad": ("--overlap", "--overlap N"),
    "--tta": ("--ensemble", "--ensemble"),
    "-x": ("--ensemble", "--ensemble"),
    "--format": ("--ext", "--ext png|tif|webp|jpg|npy"),
    "-f": ("--ext", "--ext png|tif|webp|jpg|npy"),
    "--output-dir": ("--output", "-o DIR"),
    "--outdir": ("--output", "-o DIR"),
    "--scale": ("--outscale", "--outscale F (-s F) to resize the result; the network's own scale comes with --weights"),
    "--outscale": ("--scale", "--scale N"),
    "--input": ("--hr", "--hr (ground truth), --sr or --lr"),
}


def option_hint(e: NoSuchOption) -> str:
    """One line for an unknown option: the option of ours that does what another tool's does (--half ->
    --precision fp16, --model -> --weights), else the closest of this command's own (a typo)."""
    import difflib

    given = e.option_name.split("=", 1)[0]
    ctx = getattr(e, "ctx", None)
    names = [
        n
        for p in (ctx.command.get_params(ctx) if ctx is not None else [])
        for n in (*p.opts, *p.secondary_opts)
        if n.startswith("-")
    ]
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
    tolerant_streams()
    check_working_folder()
    one_line_warnings()
    terminate_as_interrupt()
    try:
        rv = app(standalone_mode=False)
    except ClickException as e:
        if not e.format_message().strip():  # no arguments: typer has printed the help already
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = option_hint(e) if isinstance(e, NoSuchOption) else e.format_message().replace("\n", " ")
        fail(message + hint, e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        interrupted()
    except FileExistsError as e:
        if e.errno is None:  # ours (files.OutputExists, ...): an output that is there already
            fail(f"{e} exists; pass --overwrite to replace it")
        fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))  # the system's: --overwrite would not help
    except Exception as e:
        if os.environ.get("AFFSR_DEBUG"):
            raise
        if isinstance(e, (AffsrError, ValueError, OSError)):  # the user's input: its message says what to fix
            fail(str(e) or type(e).__name__)
        # a bug or a cause not checked where it arises: still one line
        first = (str(e).strip().splitlines() or [""])[0][:300]
        fail(f"unexpected {type(e).__name__}{': ' + first if first else ''} (AFFSR_DEBUG=1 shows the traceback)", 1)
    if rv == 130:  # typer turns Ctrl-C (and SIGTERM, above) into a return code of its own, silently
        interrupted()
    if isinstance(rv, int) and rv:
        sys.exit(rv)
