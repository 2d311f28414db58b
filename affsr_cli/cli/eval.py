"""`affsr eval`: the table and JSON/CSV of evaluate.py's results, and the Swiss roll's H[q, p]."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from ..errors import AffsrError
from ..registry import DEFAULT, VALIDATION_SET
from . import common as C
from .common import BOUNDARY_HELP, OPERATOR_HELP, err, operator_note, out, progress, why_default


def eval_(
    names: Optional[list[str]] = typer.Argument(
        None,
        metavar="[NAMES]...",
        show_default=False,
        help="More metric or baseline names, so that `--metrics psnr ssim lr-mse` and `--baseline bicubic pinv` work as written.",
    ),
    metrics: Optional[list[str]] = typer.Option(
        None,
        "--metrics",
        "-m",
        show_default=False,
        help="psnr, ssim, lr-mse, lr-psnr (both definitions: Aŷ vs the input x and vs A y; or one of lr-mse-x, lr-mse-ay, "
        "lr-psnr-x, lr-psnr-ay), hf-ratio, spectrum-db, sharpness (both), lattice (s-pixel grid of ŷ over y's), grid-levels (that grid's size in 8-bit levels), niqe (no reference; "
        "column HR: y's own; the only metric of --sr without --hr), all; several or a comma list "
        "(default: psnr ssim lr-psnr hf-ratio).",
    ),
    hr: Optional[Path] = typer.Option(
        None, "--hr", help="Folder (or file) of ground-truth HR images (default: the bundled examples/val)."
    ),
    sr: Optional[Path] = typer.Option(
        None,
        "--sr",
        help="Folder of SR results made elsewhere, paired with --hr by file name "
        "(without --hr: measured by niqe alone).",
    ),
    lr: Optional[Path] = typer.Option(
        None, "--lr", help="With --sr: their LR inputs x, paired by name, for LR metrics against x."
    ),
    weights: Optional[list[str]] = typer.Option(
        None,
        "--weights",
        "-w",
        show_default=False,
        help="Checkpoint(s) to evaluate: a path, a run folder, a shipped name or hf://owner/repo/file "
        "(default: the shipped default weights); measured as affsr upscale saves them.",
    ),
    baseline: Optional[list[str]] = typer.Option(
        None, "--baseline", "-b", show_default=False, help="bicubic (PIL, float), pinv (A⁺x) or all; several allowed."
    ),
    scale: Optional[int] = typer.Option(None, help="Scale s of A (default: the checkpoint's, else 4)."),
    operator: Optional[str] = typer.Option(
        None,
        "--operator",
        help=OPERATOR_HELP + " LR inputs are made with it, checkpoints "
        "are projected with it (a warning if trained for another), LR metrics use it "
        "[default: each checkpoint's own; without checkpoints (--sr, baselines alone) "
        "bicubic, or gaussian when --kernel-size or --sigma is given; a note says which].",
    ),
    kernel_size: Optional[int] = typer.Option(None, help="Taps of A's Gaussian per axis (default: 2s+1)."),
    sigma: Optional[float] = typer.Option(None, help="σ of A's Gaussian in HR pixels (default: 0.375·s)."),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    crop_border: int = typer.Option(
        0, min=0, help="Pixels cut off each HR edge before PSNR, SSIM and sharpness (BasicSR uses the scale)."
    ),
    y_channel: bool = typer.Option(
        False, "--y-channel", help="Compare ITU-R BT.601 luma Y as BasicSR and MATLAB do, not RGB."
    ),
    data_range: str = typer.Option(
        "1", help="Peak-to-peak value of the images on the [0, 1] scale, or 'gt' for max − min of each HR image."
    ),
    quantize_lr: bool = typer.Option(
        True, "--quantize-lr/--float-lr", help="Round x = A y to the HR bit depth, as a saved LR file would be."
    ),
    round_sr: bool = typer.Option(
        False,
        "--round-sr",
        help="Baselines: clamp ŷ to [0, 1] and round it to the HR bit depth "
        "before measuring (checkpoints are always measured as saved).",
    ),
    lpips_weights: Optional[Path] = typer.Option(
        None,
        "--lpips-weights",
        help="Local safetensors file with the state dict of "
        "lpips.LPIPS(net='alex'); adds the lpips metric (see README).",
    ),
    per_image: bool = typer.Option(False, "--per-image", help="Also print one row per image and method."),
    json_path: Optional[Path] = typer.Option(
        None, "--json", help="Write the conventions, per-image rows and means to this JSON file."
    ),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image rows and means to this CSV file."),
    overwrite: bool = typer.Option(False, help="Replace existing --json/--csv files."),
    device: str = typer.Option("cpu", help="Device for checkpoints (cpu, cuda, ...)."),
    ensemble: bool = typer.Option(False, "--ensemble", help=C.EVAL_ENSEMBLE_HELP),
    keep_grid: bool = typer.Option(False, "--keep-grid", help=C.EVAL_KEEP_GRID_HELP),
    detail: Optional[str] = typer.Option(None, "--detail", metavar="WEIGHTS", help=C.EVAL_DETAIL_HELP),
    detail_limits: Optional[list[float]] = typer.Option(
        None, "--detail-limit", min=0, metavar="LEVELS", help=C.EVAL_LIMITS_HELP
    ),
    detail_modes: Optional[list[str]] = typer.Option(None, "--detail-mode", metavar="all|more", help=C.EVAL_MODES_HELP),
    as_trained: bool = typer.Option(False, "--as-trained", help=C.EVAL_AS_TRAINED_HELP),
    data: Optional[str] = typer.Option(
        None,
        "--data",
        help="swissroll: the paper's 2-D toy; reports H[q, p] and ℓMSE(x, Aŷ) "
        "of --weights (run folders or files) and of --method map.",
    ),
    method: Optional[str] = typer.Option(
        None, "--method", help="With --data swissroll: map, the brute-force MAP estimate along each line Aŷ = x."
    ),
    samples: int = typer.Option(5000, "--samples", min=1, help="With --data swissroll: inputs x drawn from the data."),
    seed: int = typer.Option(
        0, "--seed", help="With --data swissroll: seed of the inputs and of the KDE's roll samples."
    ),
    save_outputs: Optional[Path] = typer.Option(
        None,
        "--save-outputs",
        help="With --data swissroll: write arrays x (N) and "
        "y_hat_<name> (N×2) to this .npz file (y_hat for a single model).",
    ),
):
    """PSNR, SSIM, LR consistency and sharpness of upscalers (mode a: --hr with --weights/--baseline) or of
    results made elsewhere (mode b: --hr with --sr [--lr]). No folders: the bundled validation set."""
    from .. import evaluate as E
    from .. import reports
    from .. import upscalers as UP
    from ..files import check_writable
    from ..projection import choose_operator

    if data is not None or method is not None or save_outputs is not None:
        return _eval_swissroll(data, list(weights or []), method, samples, seed, save_outputs, json_path, overwrite)

    metric_names, baselines, weights = _sort_names(
        names, list(metrics or []), list(baseline or []), list(weights or [])
    )
    chosen = E.parse_metrics(metric_names)
    lpips = None
    if lpips_weights is not None:
        from ..lpips import LPIPS

        lpips = LPIPS.from_file(lpips_weights)
        chosen = chosen if "lpips" in chosen else (*chosen, "lpips")
    elif "lpips" in chosen:
        from ..lpips import NEEDS

        raise AffsrError(NEEDS)
    baselines = [b for item in baselines for b in item.lower().split(",") if b]
    baselines = list(dict.fromkeys(UP.BASELINES if "all" in baselines else baselines))
    conv = E.Conventions(crop_border, y_channel, C.data_range_of(data_range), quantize_lr, round_sr)
    explicit = (scale, operator, kernel_size, sigma, boundary) != (None,) * 5
    spec = choose_operator(operator, scale or 4, kernel_size, sigma, boundary)  # without checkpoints (with: each one's)
    outputs = [p for p in (json_path, csv_path) if p is not None]
    if len(outputs) == 2 and json_path.resolve() == csv_path.resolve():
        raise AffsrError("--json and --csv name the same file")
    for p in outputs:
        check_writable(p, overwrite)
    if lr is not None and sr is None:
        raise AffsrError("--lr goes with --sr (the LR inputs of SR results made elsewhere)")
    if (detail_limits or detail_modes) and not detail:
        which = "--detail-limit" if detail_limits else "--detail-mode"
        raise AffsrError(f"{which} without --detail: name the detail network")
    from ..detail import DEFAULT_LIMIT, check_mode  # here: torch is not imported at start-up

    for m in detail_modes or []:
        check_mode(m, "--detail-mode")
    if detail and sr is not None:
        raise AffsrError("--detail adds a network's detail to checkpoints (--weights); --sr results are finished")

    bar = progress(None, "evaluating")
    task = bar.add_task("evaluating", total=None, info="")
    on_image = lambda done, total, name: bar.update(task, completed=done, total=total, info=name)  # noqa: E731
    if sr is not None:
        if weights or baselines:
            raise AffsrError("--sr evaluates finished results; --weights and --baseline make their own from --hr")
        if hr is None:  # mode (c): no ground truth, no-reference metrics only
            others = [m for m in chosen if m not in E.NO_REFERENCE]
            if others or lr is not None:
                raise AffsrError(
                    f"--sr needs --hr, the ground truth to compare with, for {', '.join(others) or '--lr'} "
                    f"(without --hr only {', '.join(E.NO_REFERENCE)} can be measured: -m niqe)"
                )
            with bar:
                res = E.evaluate_outputs(sr, chosen, conv, on_image, method=sr.name or "sr")
        else:
            with bar:
                res = E.evaluate_pairs(hr, sr, lr, chosen, spec, conv, on_image, method=sr.name or "sr", lpips=lpips)
            if operator is None:  # with the results: an error stays one line
                operator_note(spec, why_default(kernel_size, sigma))
    else:
        if hr is None:
            hr = VALIDATION_SET
            if not hr.is_dir():
                raise AffsrError(f"the bundled validation set {hr} is missing; pass --hr DIR")
        if not weights and not baselines:
            if not DEFAULT.path.is_file():
                raise AffsrError(
                    f"the default weights are not shipped yet ({DEFAULT.path}); "
                    "evaluate the baselines with --baseline all, or a checkpoint with --weights FILE"
                )
            weights = [str(DEFAULT.path)]
        a_options = (scale, operator, boundary, kernel_size, sigma) if explicit else None
        limits, modes = detail_limits or [DEFAULT_LIMIT], detail_modes or ["all"]
        variants = [(None, None, None)] + [(detail, lim, m) for lim in limits for m in modes] * bool(detail)
        upscalers = _upscalers(weights, baselines, spec, a_options, device, ensemble, as_trained, variants, keep_grid)
        with bar:
            res = E.evaluate_upscalers(hr, upscalers, chosen, conv, on_image, lpips=lpips)
        if operator is None:  # which A each checkpoint uses (the baselines: the first one's), with the results
            for name, (_, a) in upscalers.items():
                if name not in baselines and not name.endswith((" ×8", " grid kept")) and " + detail" not in name:
                    operator_note(a, f"{name}'s own")
            if not weights:
                operator_note(spec, why_default(kernel_size, sigma))
    _eval_tables(res, hr or sr, per_image)
    for p, text in ((json_path, reports.to_json), (csv_path, reports.to_csv)):
        if p is not None:
            reports.write_text(p, text(res), overwrite)
            out.print(f"wrote {p}")


def _sort_names(names, metric_names: list, baselines: list, weights: list) -> tuple[list, list, list]:
    """The free arguments (`--metrics psnr ssim lr-mse` as written) sorted into metrics, baselines and weights."""
    from .. import evaluate as E
    from .. import upscalers as UP

    for token in (t.strip() for n in names or [] for t in n.split(",") if t.strip()):
        if token.lower() in E.METRICS or token.lower() in E.GROUPS or token.lower() == "lpips":
            metric_names.append(token)
        elif token.lower() in UP.BASELINES:
            baselines.append(token)
        elif token.endswith(".safetensors") or "/" in token:
            weights.append(token)
        else:
            raise AffsrError(
                f"unexpected argument {token!r}: not a metric ({', '.join([*E.METRICS, *E.GROUPS])}), "
                f"a baseline ({', '.join(UP.BASELINES)}) or a .safetensors file"
            )
    return metric_names, baselines, weights


def _upscalers(
    weights: list[str],
    baselines: list[str],
    spec,
    a_options,
    device: str,
    ensemble: bool = False,
    as_trained: bool = False,
    variants: list = ((None, None, None),),
    keep_grid: bool = False,
) -> dict:
    """name -> (upscaler, A): checkpoints through infer.Upscaler (named by file stem, or folder/stem
    where stems repeat; with `ensemble` each also as "NAME ×8", with `keep_grid` as "NAME grid kept"; each (detail weights, limit, mode) of
    `variants` other than (None, None, None) as "NAME + detail ±LIMIT", with " more" in mode "more"),
    projected with the A options when given, then
    the baselines with `spec` or the first checkpoint's A."""
    from .. import upscalers as UP

    upscalers = {}
    stems = [Path(w).stem if w.endswith(".safetensors") else w for w in weights]
    for w, stem in zip(weights, stems):
        name = f"{Path(w).parent.name}/{stem}" if stems.count(stem) > 1 else stem
        name = name if name not in upscalers else f"{name}#{len(upscalers) + 1}"
        both = (False, True)
        for ens, keep, (detail, limit, mode) in product(both[: 1 + ensemble], both[: 1 + keep_grid], variants):
            scale, operator, boundary, kernel_size, sigma = a_options or (None,) * 5
            column = name + " ×8" * ens + " grid kept" * keep
            if detail is not None:
                column += f" + detail ±{limit:g}" + (" more" if mode == "more" else "")
            upscaler = upscalers[column] = UP.checkpoint_upscaler(
                w,
                device,
                on_note=lambda m: err.print(f"note: {m}", markup=False, highlight=False),
                operator=operator,
                boundary=boundary,
                ensemble=ens,
                keep_grid=keep,
                as_trained=as_trained,
                kernel_size=kernel_size,
                sigma=sigma,
                **({"detail_weights": detail, "detail_limit": limit, "detail_mode": mode} if detail else {}),
            )
            if scale is not None and scale != upscaler[1].scale:
                raise AffsrError(f"--scale {scale} is not the scale of {w} ({upscaler[1].scale})")
    bspec = next(iter(upscalers.values()))[1] if upscalers else spec
    for b in baselines:
        upscalers[b] = (UP.baseline(b, bspec), bspec)
    return upscalers


def _eval_tables(res, hr: Path, per_image: bool):
    from ..evaluate import METRICS, REFERENCE

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
        contenders = [v for m, v in zip(res.methods, values) if m != REFERENCE]  # HR: y's own NIQE, not a contender
        finite = [v for v in contenders if v == v]
        best = (
            (max(finite) if higher else min(finite)) if finite and higher is not None and len(contenders) > 1 else None
        )
        table.add_row(
            label + {True: " ↑", False: " ↓", None: ""}[higher],
            *(Text(cell(k, v), style="bold") if v == best else cell(k, v) for v in values),
        )
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


def _eval_swissroll(data, weights, method, samples, seed, save_outputs, json_path, overwrite):
    """H[q, p] (the paper's KDE estimator, Table 1) and ℓMSE(x, Aŷ) on the Swiss roll."""
    import numpy as np

    from .. import swissroll
    from ..checkpoint import load_generator, resolve_weights
    from ..files import atomic_write, check_writable

    if data != "swissroll":
        raise AffsrError(f"--data takes only swissroll (image folders go with --hr), got {data!r}")
    if method not in (None, "map"):
        raise AffsrError(f"--method takes only map, got {method!r}")
    if not weights and method is None:
        raise AffsrError("--data swissroll needs --weights RUN (a run folder or generator file) and/or --method map")
    if samples < 1:
        raise AffsrError("--samples must be at least 1")
    for p, suffix in ((save_outputs, ".npz"), (json_path, ".json")):
        if p is not None:
            if p.suffix != suffix:
                raise AffsrError(f"{p} must end in {suffix}")
            check_writable(p, overwrite)
    models = {}
    for w in weights:
        model = load_generator(resolve_weights(w))
        if not isinstance(model.spec, swissroll.AverageSpec):
            raise AffsrError(f"{w}: not a Swiss-roll model (it upscales images)")
        name = Path(w).name if Path(w).is_dir() else Path(w).stem
        models[name] = lambda x, m=model: m(x.float())
    centres = swissroll.kde_centres(seed)
    if method == "map":
        models["MAP"] = lambda x: swissroll.map_estimate(x, centres)
    results = {name: swissroll.evaluate(fn, samples, seed, centres) for name, fn in models.items()}
    table = Table(
        title=f"Swiss roll: H[q, p] by a Gaussian KDE (bandwidth {swissroll.KDE_BANDWIDTH}, "
        f"{swissroll.KDE_SAMPLES} noiseless roll samples), {samples} inputs x, seed {seed}"
    )
    for col in ("model", "H[q, p] (nats)", "ℓMSE(x, Aŷ)"):
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
        text = json.dumps(
            {name: {"cross_entropy": r["cross_entropy"], "lr_mse": r["lr_mse"]} for name, r in results.items()}
        )
        atomic_write(json_path, lambda tmp: tmp.write_text(text + "\n"), overwrite)
