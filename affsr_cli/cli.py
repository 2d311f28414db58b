"""The `affsr` command line. The only module that imports typer and rich; torch is imported
inside the commands so that `affsr --help` and `affsr --version` answer at once."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
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


@app.command("eval")
def eval_(
    names: Optional[list[str]] = typer.Argument(
        None, metavar="[NAMES]...", show_default=False,
        help="More metric or baseline names, so that `--metrics psnr ssim lr-mse` and `--baseline bicubic pinv` work as written."),
    metrics: Optional[list[str]] = typer.Option(
        None, "--metrics", "-m", show_default=False,
        help="psnr, ssim, lr-mse, lr-psnr (both definitions: Aŷ vs the input x and vs A y; or one of lr-mse-x, lr-mse-ay, "
             "lr-psnr-x, lr-psnr-ay), hf-ratio, spectrum-db, sharpness (both), all; several or a comma list "
             "(default: psnr ssim lr-psnr hf-ratio)."),
    hr: Optional[Path] = typer.Option(None, "--hr", help="Folder (or file) of ground-truth HR images (default: the bundled examples/val)."),
    sr: Optional[Path] = typer.Option(None, "--sr", help="Folder of SR results made elsewhere, paired with --hr by file name."),
    lr: Optional[Path] = typer.Option(None, "--lr", help="With --sr: their LR inputs x, paired by name, for LR metrics against x."),
    weights: Optional[list[str]] = typer.Option(None, "--weights", "-w", show_default=False,
                                                help="Checkpoint(s) to evaluate: a path, a shipped name or hf://owner/repo/file (default: the shipped default weights)."),
    baseline: Optional[list[str]] = typer.Option(None, "--baseline", "-b", show_default=False,
                                                 help="bicubic (PIL, float), pinv (A⁺x) or all; several allowed."),
    scale: Optional[int] = typer.Option(None, help="Scale s of A (default: the checkpoint's, else 4)."),
    kernel_size: Optional[int] = typer.Option(None, help="Taps of A's Gaussian per axis (default: 2s+1)."),
    sigma: Optional[float] = typer.Option(None, help="σ of A's Gaussian in HR pixels (default: 0.375·s)."),
    boundary: Optional[str] = typer.Option(None, help="Border convention of A (default: symmetric)."),
    crop_border: int = typer.Option(0, help="Pixels cut off each HR edge before PSNR, SSIM and sharpness (BasicSR uses the scale)."),
    y_channel: bool = typer.Option(False, "--y-channel", help="Compare ITU-R BT.601 luma Y as BasicSR and MATLAB do, not RGB."),
    data_range: str = typer.Option("1", help="Peak-to-peak value of the images on the [0, 1] scale, or 'gt' for max − min of each HR image."),
    quantize_lr: bool = typer.Option(True, "--quantize-lr/--float-lr", help="Round x = A y to the HR bit depth, as a saved LR file would be."),
    round_sr: bool = typer.Option(False, "--round-sr", help="Clamp ŷ to [0, 1] and round it to the HR bit depth before measuring."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="Local safetensors file with the state dict of "
                                                 "lpips.LPIPS(net='alex'); adds the lpips metric (see README)."),
    per_image: bool = typer.Option(False, "--per-image", help="Also print one row per image and method."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the conventions, per-image rows and means to this JSON file."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image rows and means to this CSV file."),
    overwrite: bool = typer.Option(False, help="Replace existing --json/--csv files."),
    device: str = typer.Option("cpu", help="Device for checkpoints (cpu, cuda, ...)."),
    data: Optional[str] = typer.Option(None, "--data", help="swissroll: the paper's 2-D toy; reports H[q, p] and ℓMSE(x, Aŷ) "
                                       "of --weights (run folders or files) and of --method map."),
    method: Optional[str] = typer.Option(None, "--method", help="With --data swissroll: map, the brute-force MAP estimate along each line Aŷ = x."),
    samples: int = typer.Option(5000, "--samples", help="With --data swissroll: inputs x drawn from the data."),
    seed: int = typer.Option(0, "--seed", help="With --data swissroll: seed of the inputs and of the KDE's roll samples."),
    save_outputs: Optional[Path] = typer.Option(None, "--save-outputs", help="With --data swissroll: write arrays x (N) and "
                                                "y_hat_<name> (N×2) to this .npz file (y_hat for a single model)."),
):
    """PSNR, SSIM, LR consistency and sharpness of upscalers (mode a: --hr with --weights/--baseline) or of
    results made elsewhere (mode b: --hr with --sr [--lr]). No folders: the bundled validation set."""
    from . import evaluate as E
    from .projection import OperatorSpec
    from .weights import check_writable

    if data is not None or method is not None or save_outputs is not None:
        return _eval_swissroll(data, list(weights or []), method, samples, seed, save_outputs, json_path, overwrite)

    metric_names, baselines, weights = list(metrics or []), list(baseline or []), list(weights or [])
    for token in (t.strip() for n in names or [] for t in n.split(",") if t.strip()):
        if token.lower() in E.METRICS or token.lower() in E.GROUPS or token.lower() == "lpips":
            metric_names.append(token)
        elif token.lower() in E.BASELINES:
            baselines.append(token)
        elif token.endswith(".safetensors") or "/" in token:
            weights.append(token)
        else:
            raise UserError(f"unexpected argument {token!r}: not a metric ({', '.join([*E.METRICS, *E.GROUPS])}), "
                            f"a baseline ({', '.join(E.BASELINES)}) or a .safetensors file")
    chosen = E.parse_metrics(metric_names)
    lpips = None
    if lpips_weights is not None:
        from .lpips import LPIPS

        lpips = LPIPS.from_file(lpips_weights)
        chosen = chosen if "lpips" in chosen else (*chosen, "lpips")
    elif "lpips" in chosen:
        from .lpips import NEEDS

        raise UserError(NEEDS)
    baselines = [b for item in baselines for b in item.lower().split(",") if b]
    baselines = list(dict.fromkeys(E.BASELINES if "all" in baselines else baselines))
    if data_range.strip().lower() in ("gt", "auto"):
        drange = None
    else:
        try:
            drange = float(data_range)
        except ValueError:
            drange = -1.0
        if not (0 < drange < float("inf")):
            raise UserError(f"--data-range must be a positive number or 'gt', got {data_range!r}")
    conv = E.Conventions(crop_border, y_channel, drange, quantize_lr, round_sr)
    explicit = (scale, kernel_size, sigma, boundary) != (None, None, None, None)
    spec = OperatorSpec.for_scale(scale or 4, kernel_size, sigma, boundary or "symmetric") if explicit else None
    outputs = [p for p in (json_path, csv_path) if p is not None]
    if len(outputs) == 2 and json_path.resolve() == csv_path.resolve():
        raise UserError("--json and --csv name the same file")
    for p in outputs:
        check_writable(p, overwrite)
    if lr is not None and sr is None:
        raise UserError("--lr goes with --sr (the LR inputs of SR results made elsewhere)")

    bar = _progress(None, "evaluating")
    task = bar.add_task("evaluating", total=None, info="")
    on_image = lambda done, total, name: bar.update(task, completed=done, total=total, info=name)  # noqa: E731
    if sr is not None:
        if hr is None:
            raise UserError("--sr needs --hr, the ground truth to compare with")
        if weights or baselines:
            raise UserError("--sr evaluates finished results; --weights and --baseline make their own from --hr")
        with bar:
            res = E.evaluate_pairs(hr, sr, lr, chosen, spec or OperatorSpec(), conv, on_image, method=sr.name or "sr", lpips=lpips)
    else:
        if hr is None:
            hr = E.VALIDATION_SET
            if not hr.is_dir():
                raise UserError(f"the bundled validation set {hr} is missing; pass --hr DIR")
        if not weights and not baselines:
            if not E.DEFAULT_WEIGHTS.is_file():
                raise UserError(f"the default weights are not shipped yet ({E.DEFAULT_WEIGHTS}); "
                                "evaluate the baselines with --baseline all, or a checkpoint with --weights FILE")
            weights = [str(E.DEFAULT_WEIGHTS)]
        upscalers = {}
        stems = [Path(w).stem if w.endswith(".safetensors") else w for w in weights]
        for w, stem in zip(weights, stems):  # named by file stem, or folder/stem where stems repeat
            fn, wspec = E.load_weights(w, device)
            name = f"{Path(w).parent.name}/{stem}" if stems.count(stem) > 1 else stem
            upscalers[name if name not in upscalers else f"{name}#{len(upscalers) + 1}"] = (fn, wspec)
        bspec = spec or (next(iter(upscalers.values()))[1] if upscalers else OperatorSpec())
        for b in baselines:
            upscalers[b] = (E.baseline(b, bspec), bspec)
        with bar:
            res = E.evaluate_upscalers(hr, upscalers, chosen, conv, on_image, lpips=lpips)
    _eval_tables(res, hr, per_image)
    for p, text in ((json_path, E.to_json), (csv_path, E.to_csv)):
        if p is not None:
            E.write_text(p, text(res), overwrite)
            out.print(f"wrote {p}")


def _eval_tables(res, hr: Path, per_image: bool):
    from .evaluate import METRICS

    def cell(metric: str, value: float) -> str:
        return "—" if value != value else "∞" if value == float("inf") else METRICS[metric][2].format(value)

    means = res.means()
    n = len({r["image"] for r in res.rows})
    table = Table(title="affsr eval (means)")
    table.add_column("metric")
    for m in res.methods:
        table.add_column(m, justify="right")
    for k in res.metrics:
        label, higher, _ = METRICS[k]
        values = [means[m][k] for m in res.methods]
        finite = [v for v in values if v == v]
        best = (max(finite) if higher else min(finite)) if finite and higher is not None and len(values) > 1 else None
        table.add_row(label + {True: " ↑", False: " ↓", None: ""}[higher],
                      *(f"[bold]{cell(k, v)}[/bold]" if v == best else cell(k, v) for v in values))
    out.print(table)
    conventions = Table(title="conventions", show_header=False)
    for k, v in {"images": f"{n} from {hr}", **res.conventions}.items():
        conventions.add_row(k, v)
    out.print(conventions)
    if per_image:
        rows = Table(title="per image")
        for c in ("image", "method", *res.metrics):
            rows.add_column(c, justify="left" if c in ("image", "method") else "right")
        for r in res.rows:
            rows.add_row(r["image"], r["method"], *(cell(k, r.get(k, float("nan"))) for k in res.metrics))
        out.print(rows)


@app.command()
def upscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUTS...", show_default=False,
                                       help="Image files, folders (read recursively) or globs such as 'photos/**/*.jpg'."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input) or folder (the input tree is "
                                          "kept under it) (default: beside each input, named with --suffix)."),
    suffix: Optional[str] = typer.Option(None, help="Added to each output's name (default: '_x4' beside the input, none under -o DIR)."),
    ext: Optional[str] = typer.Option(None, help="Output type: png, tif, webp, bmp, jpg (lossy) or npy (float32) "
                                      "(default: the input's when lossless, else png)."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="8, 16 (PNG) or 32 (float32 TIFF or .npy, exact "
                                            "values) (default: the input's)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Checkpoint: a path, a shipped name (weights/NAME."
                                          "safetensors) or hf://owner/repo/file.safetensors (default: weights/affgan-x4.safetensors)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("fp32", help="Network precision on GPUs: fp32, bf16 or fp16 (the CPU uses fp32; Π always fp32)."),
    tile: str = typer.Option("auto", help="LR tile side in pixels, or 'auto' (from free memory); tiles overlap and are blended."),
    overlap: Optional[int] = typer.Option(None, help="LR pixels shared by neighbouring tiles (default: 2 × receptive radius + 8)."),
    samples: int = typer.Option(1, help="Stochastic checkpoints: samples per input (files NAME_seedS), each consistent."),
    seed: int = typer.Option(0, help="Seed of the first sample; sample i uses seed + i (same seed, same files)."),
    outscale: Optional[float] = typer.Option(None, help="Resize the result to this factor of the input at the end (bicubic); "
                                             "breaks exact consistency."),
    max_pixels: Optional[int] = typer.Option(None, help="Refuse inputs over this many pixels (default: Pillow's bomb limit, 89 Mpx)."),
    quality: int = typer.Option(95, help="JPEG quality (JPEG is lossy: its LR-PSNR is low)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON array (input, output, lr_psnr, seconds, ...) instead of a table."),
):
    """Upscale images with a checkpoint; every saved file downsamples (A) to its input as exactly as its bit depth allows."""
    from . import checkpoint, infer
    from . import upscale as engine

    if tile != "auto" and not tile.isdigit():
        raise UserError(f"--tile must be a number of LR pixels or 'auto', got {tile!r}")
    if weights is None:
        default = checkpoint.WEIGHTS_DIR / "affgan-x4.safetensors"
        if not default.is_file():
            raise UserError(f"the default weights ({default.parent.name}/{default.name}) are not shipped yet; "
                            "pass --weights NAME|PATH|hf://owner/repo/file.safetensors")
        weights = str(default)
    note = lambda message: err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    model = checkpoint.load_generator(checkpoint.resolve_weights(weights), "cpu")
    up = infer.Upscaler(model, device, precision, None if tile == "auto" else int(tile), overlap, on_note=note)
    opts = engine.Options(output, suffix, ext, bit_depth, overwrite, samples, seed, outscale, max_pixels, quality)
    failures = []

    def on_error(source: str, message: str):
        failures.append({"input": source, "output": None, "lr_psnr": None, "seconds": None, "error": message})
        err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)

    with _progress(None, "upscaling") as bar:
        files = bar.add_task("files", total=None, info="")
        tiles = bar.add_task("tiles", total=None, info="")
        cb = engine.Callbacks(note=note, error=on_error,
                              file=lambda done, total, name: bar.update(files, completed=done, total=total, info=name),
                              tile=lambda done, total: bar.update(tiles, completed=done, total=total, info=""))
        failed = engine.run(up, inputs, opts, cb)
    if as_json:
        print(json.dumps(cb.results + failures))
    elif cb.results:
        table = Table(title=f"affsr upscale: {weights} on {up.device} ({str(up.dtype).replace('torch.', '')}), "
                            f"tiles of {up.tile} LR px")
        for name in ("file", "size in → out", "LR-PSNR (dB)", "seconds"):
            table.add_column(name, justify="left" if name == "file" else "right")
        for r in cb.results:
            (w, h), (W, H) = r["size_in"], r["size_out"]
            psnr = "—" if r["lr_psnr"] is None else "∞" if r["lr_mse"] == 0 else f"{r['lr_psnr']:.2f}"
            table.add_row(r["output"], f"{w}×{h} → {W}×{H}", psnr, f"{r['seconds']:.2f}")
        out.print(table)
    if failed:
        err.print(f"affsr: error: {failed} input(s) failed, {len(cb.results)} file(s) written", markup=False, highlight=False)
        raise typer.Exit(1)


def _eval_swissroll(data, weights, method, samples, seed, save_outputs, json_path, overwrite):
    """H[q, p] (the paper's KDE estimator, Table 1) and ℓMSE(x, Aŷ) on the Swiss roll."""
    import numpy as np

    from . import swissroll
    from .checkpoint import load_generator
    from .images import atomic_write
    from .weights import check_writable

    if data != "swissroll":
        raise UserError(f"--data takes only swissroll (image folders go with --hr), got {data!r}")
    if method not in (None, "map"):
        raise UserError(f"--method takes only map, got {method!r}")
    if not weights and method is None:
        raise UserError("--data swissroll needs --weights RUN (a run folder or generator file) and/or --method map")
    if samples < 1:
        raise UserError("--samples must be at least 1")
    for p, suffix in ((save_outputs, ".npz"), (json_path, ".json")):
        if p is not None:
            if p.suffix != suffix:
                raise UserError(f"{p} must end in {suffix}")
            check_writable(p, overwrite)
    models = {}
    for w in weights:
        path = Path(w) / "generator.safetensors" if Path(w).is_dir() else Path(w)
        model = load_generator(path)
        if not isinstance(model.spec, swissroll.AverageSpec):
            raise UserError(f"{w}: not a Swiss-roll model (it upscales images)")
        name = Path(w).name if Path(w).is_dir() else Path(w).stem
        models[name] = lambda x, m=model: m(x.float())
    centres = swissroll.kde_centres(seed)
    if method == "map":
        models["MAP"] = lambda x: swissroll.map_estimate(x, centres)
    results = {name: swissroll.evaluate(fn, samples, seed, centres) for name, fn in models.items()}
    table = Table(title=f"Swiss roll: H\\[q, p] by a Gaussian KDE (bandwidth {swissroll.KDE_BANDWIDTH}, "
                        f"{swissroll.KDE_SAMPLES} noiseless roll samples), {samples} inputs x, seed {seed}")
    for col in ("model", "H\\[q, p] (nats)", "ℓMSE(x, Aŷ)"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['cross_entropy']:.3f}", f"{r['lr_mse']:.3e}")
    out.print(table)
    if save_outputs is not None:
        arrays = {"x": next(iter(results.values()))["x"].numpy()}
        for name, r in results.items():
            arrays["y_hat" if len(results) == 1 else f"y_hat_{name}"] = r["y_hat"].numpy()
        def savez(tmp: Path):
            with open(tmp, "wb") as fh:  # a file object: numpy adds no second .npz
                np.savez(fh, **arrays)

        atomic_write(save_outputs, savez, overwrite)
    if json_path is not None:
        text = json.dumps({name: {"cross_entropy": r["cross_entropy"], "lr_mse": r["lr_mse"]} for name, r in results.items()})
        atomic_write(json_path, lambda tmp: tmp.write_text(text + "\n"), overwrite)


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
        shown = {k: v for k, v in logs.items() if k in ("loss", "mse", "mae", "g_loss", "d_loss", "soft_mae", "pixel_mse", "range_mse", "noise", "lr_mse")}
        self.bar.update(self.task, completed=step, rate=f"{rate:.2f} steps/s",
                        info=" ".join(f"{k} {v:.3g}" for k, v in shown.items()))

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def train(**kwargs):
    """Train a method (objective × constraint) on a folder of images; torchrun for several GPUs."""
    from . import train as engine
    from .config import TrainConfig

    def stop(signum, frame):  # `kill` and batch schedulers (SIGTERM) stop a run like Ctrl-C: resumable
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
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
