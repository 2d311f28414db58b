"""`affsr upscale`: files, folders and globs through the inference contract; a table or JSON of what was written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import AffsrError
from ..registry import DEFAULT, TEXTURE, TEXTURE_WEIGHTS, weights_help
from .common import (
    BOUNDARY_HELP,
    OPERATOR_HELP,
    STRICT_HELP,
    err,
    exact,
    operator_note,
    out,
    parse_shard,
    progress,
    warn,
)


def upscale(
    inputs: Optional[list[str]] = typer.Argument(
        None,
        metavar="INPUTS",
        show_default=False,
        help="Image files, folders (read recursively) or globs such as 'photos/**/*.jpg'.",
    ),
    input_: Optional[list[str]] = typer.Option(
        None,
        "-i",
        "--input",
        metavar="PATH",
        show_default=False,
        help="One more input (as Real-ESRGAN's -i); repeatable.",
    ),
    output: Optional[Path] = typer.Option(
        None,
        "-o",
        "--output",
        help="Output file (one input) or folder (the input tree is "
        "kept under it) (default: beside each input, named with --suffix).",
    ),
    suffix: Optional[str] = typer.Option(
        None, help="Added to each output's name (default: '_x4' beside the input, none under -o DIR)."
    ),
    ext: Optional[str] = typer.Option(
        None,
        help="Output type: png, tif, webp, bmp, jpg (lossy) or npy (float32) "
        "(default: the input's when lossless, else png).",
    ),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    bit_depth: Optional[int] = typer.Option(
        None,
        "--bit-depth",
        "--bits",
        help="8, 16 (PNG) or 32 (float32 TIFF or .npy, exact values) (default: the input's).",
    ),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        "-w",
        "-n",
        help="Checkpoint: a path, a run folder (its generator.safetensors), "
        "a shipped name or hf://owner/repo/file.safetensors. Shipped (weights/README.md): "
        + weights_help()
        + ". Also another tool's .safetensors network that spandrel "
        "recognises (ESRGAN, SPAN, SwinIR, ...; needs --operator and affsr[foreign]).",
    ),
    operator: Optional[str] = typer.Option(
        None,
        "--operator",
        help=OPERATOR_HELP + " [default: the "
        "weights' (a note says which); another gives a warning; required for another tool's network]",
    ),
    boundary: Optional[str] = typer.Option(None, help=BOUNDARY_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        "fp32", help="Network precision on GPUs: fp32, bf16 or fp16 (the CPU uses fp32; Π always fp32)."
    ),
    tile: str = typer.Option(
        "auto",
        "-t",
        "--tile",
        help="LR tile side in pixels (8 or more; tiles overlap and are blended), "
        "0 for none (the whole image at once), or 'auto' (from free memory).",
    ),
    overlap: Optional[int] = typer.Option(
        None, min=0, max=4096, help="LR pixels shared by neighbouring tiles (default: 2 × receptive radius + 8)."
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Average the network over the 8 flips and transposes of each "
        "input (×8 self-ensemble, 8× the time; gains in weights/README.md).",
    ),
    detail: Optional[str] = typer.Option(
        None,
        "--detail",
        metavar="WEIGHTS",
        help="A second network whose detail is added to the weights' within ±--detail-limit levels, "
        "then made consistent: realesrgan-x4plus (shipped: Real-ESRGAN x4plus, BSD-3-Clause) beside affmse-x4 "
        "gives its hair and pores, not its bent shapes (docs/upscale.md). Runs both networks.",
    ),
    detail_limit: Optional[float] = typer.Option(
        None,
        "--detail-limit",
        min=0,
        metavar="LEVELS",
        help="With --detail: the most, in 8-bit levels, by which its detail may move a sample (default 8; "
        "0: the weights alone).",
    ),
    detail_mode: Optional[str] = typer.Option(
        None,
        "--detail-mode",
        metavar="all|more",
        help="With --detail: all (default): every difference within the limit; more: only where the detail "
        "network draws more detail than the weights, whose own is kept (for affgan-x4).",
    ),
    keep_grid: bool = typer.Option(
        False,
        "--keep-grid",
        help="Leave the network's image-wide grid in (by default its period-4 pattern, which the input "
        "cannot decide, is taken out between two projections: docs/upscale.md).",
    ),
    texture: bool = typer.Option(
        False,
        "--texture",
        help="Sharp and textured, still consistent: the AffGAN (affgan-x4, or affgan-x4-gaussian with "
        "--operator gaussian) with --ensemble, --detail realesrgan-x4plus --detail-mode more --detail-limit 12 "
        "(each can be given otherwise); ~40× the default's time.",
    ),
    samples: int = typer.Option(
        1, min=1, max=10_000, help="Stochastic checkpoints: samples per input (files NAME_seedS), each consistent."
    ),
    seed: int = typer.Option(
        0, min=0, max=2**63 - 1, help="Seed of the first sample; sample i uses seed + i (same seed, same files)."
    ),
    outscale: Optional[float] = typer.Option(
        None,
        "-s",
        "--outscale",
        help="Resize the result to this factor of the input at the end (bicubic); breaks exact consistency.",
    ),
    max_pixels: Optional[int] = typer.Option(
        None, min=1, help="Refuse inputs over this many pixels (default: Pillow's bomb limit, 89 Mpx)."
    ),
    quality: int = typer.Option(95, min=1, max=100, help="JPEG quality (JPEG is lossy: its LR-PSNR is low)."),
    shard: Optional[str] = typer.Option(
        None,
        help="K/N: only the K-th (0 … N−1) of N slices of the sorted inputs, "
        "balanced by pixels; N processes with K = 0 … N−1 cover the inputs exactly once.",
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose outputs exist (finish a batch after a failure)."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help=STRICT_HELP,
    ),
    invented_map: bool = typer.Option(
        False,
        "--invented-map",
        help="Also write NAME_invented.png beside each output: where "
        "the network invented detail, the part (I − A⁺A)ŷ that the input does not determine "
        "(scale in docs/invented.md), and print its share of the output's contrast energy; "
        "with --samples N also NAME_spread.png, the samples' per-pixel spread.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON array (input, output, lr_psnr, consistent, seconds, ...) instead of a table.",
    ),
):
    """Upscale images with a checkpoint; every saved file downsamples (A) to its input as exactly as its bit depth allows."""
    from .. import batch as engine
    from .. import infer

    if tile != "auto" and not tile.isdigit():
        raise AffsrError(f"--tile must be a number of LR pixels, 0 (no tiling) or 'auto', got {tile!r}")
    inputs = [*(inputs or []), *(input_ or [])]
    if not inputs:
        raise AffsrError("no inputs: give image files, folders or globs (or -i PATH); see 'affsr upscale --help'")
    if texture:
        if weights is None:
            family = (operator or "bicubic").lower()
            if family not in TEXTURE_WEIGHTS:
                raise AffsrError(f"--texture has weights for {' and '.join(TEXTURE_WEIGHTS)}; give -w for {family}")
            weights = TEXTURE_WEIGHTS[family]
        ensemble = TEXTURE["ensemble"]
        detail = detail or TEXTURE["detail"]
        detail_mode = detail_mode or TEXTURE["detail_mode"]
        detail_limit = TEXTURE["detail_limit"] if detail_limit is None else detail_limit
    if weights is None:
        default = DEFAULT.path
        if not default.is_file():
            raise AffsrError(
                f"the default weights ({default.parent.name}/{default.name}) are not shipped yet; "
                "pass --weights NAME|PATH|hf://owner/repo/file.safetensors"
            )
        weights = str(default)
    note = lambda message: err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    opts = engine.Options(
        output,
        suffix,
        ext,
        bit_depth,
        overwrite,
        samples,
        seed,
        outscale,
        max_pixels,
        quality,
        parse_shard(shard),
        skip_existing,
        strict,
        invented_map,
    )
    if skip_existing and overwrite:
        raise AffsrError("--skip-existing and --overwrite contradict each other")
    up = infer.Upscaler.load(
        weights,
        device,
        precision,
        None if tile == "auto" else int(tile),
        overlap,
        on_note=note,
        operator=operator,
        boundary=boundary,
        ensemble=ensemble,
        detail_weights=detail,
        detail_limit=detail_limit,
        detail_mode=detail_mode,
        keep_grid=keep_grid,
    )
    failures = []

    def on_error(source: str, message: str):
        failures.append({"input": source, "output": None, "lr_psnr": None, "seconds": None, "error": message})
        err.print(f"affsr: error: {message}", markup=False, highlight=False, soft_wrap=True)

    with progress(None, "upscaling") as bar:
        files = bar.add_task("files", total=None, info="")
        tiles = bar.add_task("tiles", total=None, info="")
        cb = engine.Callbacks(
            note=note,
            error=on_error,
            warn=lambda source, message: warn(message),
            file=lambda done, total, name: bar.update(files, completed=done, total=total, info=name),
            tile=lambda done, total: bar.update(tiles, description="tiles", completed=done, total=total),
            stage=lambda name, done, total: bar.update(tiles, description=name, completed=done, total=total),
        )
        failed = engine.run(up, inputs, opts, cb)
    if (
        cb.results and operator is None and boundary is None and not up.foreign
    ):  # with the results: an error stays one line
        operator_note(up.spec, "the weights' own")
    if as_json:
        print(json.dumps(cb.results + failures))
    elif cb.results:
        out.print(results_table(cb.results, weights, up, ensemble, invented_map, detail))
    if failed:
        err.print(
            f"affsr: error: {failed} input(s) failed, {len(cb.results)} file(s) written", markup=False, highlight=False
        )
        raise typer.Exit(1)


def results_table(
    results: list[dict], weights: str, up, ensemble: bool, invented_map: bool, detail: str | None = None
) -> Table:
    """One row per file written: its sizes, LR-PSNR, the verdict of the promise, the invented share, the time."""
    table = Table(
        title=f"affsr upscale: {weights}"
        + (f" + detail of {detail} within ±{up.detail_limit:g} levels" if detail else "")
        + (" where it draws more" if detail and up.detail_mode == "more" else "")
        + f" on {up.device} ({str(up.dtype).replace('torch.', '')}), "
        + up.describe_tiling()
        + (", ×8 self-ensemble" if ensemble else "")
        + (", grid kept" if up.keep_grid else "")
    )
    names = ("file", "size in → out", "LR-PSNR (dB)", "exact") + (("invented",) if invented_map else ()) + ("seconds",)
    for name in names:
        table.add_column(name, justify="left" if name == "file" else "right")
    for r in results:
        (w, h), (W, H) = r["size_in"], r["size_out"]
        psnr = "—" if r["lr_psnr"] is None else "∞" if r["lr_mse"] == 0 else f"{r['lr_psnr']:.2f}"
        share = (f"{100 * r['invented_share']:.1f} %",) if invented_map else ()
        table.add_row(r["output"], f"{w}×{h} → {W}×{H}", psnr, exact(r["consistent"]), *share, f"{r['seconds']:.2f}")
    return table
