"""The engine of `affsr project`: make any upscaled image consistent with its LR input.

    LR x (C, h, w), SR f (C, s·h, s·w) ──consistency.make_consistent (Π_x over the whole image, box fit,
    shaped rounding, Pillow match)──▶ ŷ, saved atomically, read back, LR-PSNR before and after,
    consistency.verdict (does the file keep the promise?)

The SR image may come from any tool (another network, bicubic, an earlier affsr run); the operator A
must be the one that made x (a mismatched A lowers PSNR). Files pair by name like `affsr eval`.
Float32 outputs (bits 32: a .tif or .npy) keep Π's values unclipped, exact for every input. The
engine never prints: results are dicts, problems per pair go to `on_error(name, message)`, files
written that miss the promise to `on_warn(name, message)` (with `strict`: an error, and no file).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import consistency, invented
from . import images as X
from .consistency import make_consistent
from .errors import AffsrError
from .images import WRITE_FORMATS, pair_by_name, read_image
from .projection import OperatorSpec, project_without_grid

LOSSLESS = (".png", ".tif", ".tiff", ".webp", ".bmp")
FLOAT = (".tif", ".tiff", ".npy")  # float32 outputs (bits 32)


@dataclass
class Options:
    output: Path  # a file (one pair) or a folder (one output per pair, named as the SR file)
    operator: Callable[[int], OperatorSpec]  # the A that made x, for a scale
    scale: int | None = None  # s; default: SR size / LR size
    bits: int | None = None  # 8, 16 or 32 (float32: .tif or .npy, exact); default the SR file's
    overwrite: bool = False
    strict: bool = False  # a file that would miss the promise (consistency.verdict) is an error and is not written
    invented_map: bool = False  # also write NAME_invented.png: what the SR image holds beyond its input (invented.py)
    remove_grid: bool = False  # take the image-wide period-s pattern out of Π_x f first (upscale's default)


def scale_of(lr: tuple[int, int], sr: tuple[int, int], scale: int | None, name: str) -> int:
    (h, w), (H, W) = lr, sr
    s = H // h if h and H % h == 0 else 0
    if not s or W != s * w or not 2 <= s <= 16 or (scale is not None and s != scale):
        want = f"{scale} ×" if scale else "an integer multiple (2–16) of"
        raise AffsrError(
            f"{name}: SR {W}×{H} is not {want} LR {w}×{h}; a resized (--outscale'd) result cannot be made consistent"
        )
    return s


def output_path(opts: Options, sr: Path, single: bool) -> Path:
    if single and opts.output.suffix:
        return opts.output
    if opts.bits == 32:
        ext = sr.suffix.lower() if sr.suffix.lower() in FLOAT else ".tif"
    else:
        ext = sr.suffix.lower() if sr.suffix.lower() in LOSSLESS else ".png"  # lossy SR files are written as PNG
    return opts.output / (sr.stem + ext)


def project_pair(name: str, lr: Path, sr: Path, out: Path, opts: Options, on_warn=lambda name, message: None) -> dict:
    t0 = time.perf_counter()
    x, f = read_image(lr), read_image(sr)
    chart = out.with_name(f"{out.stem}_invented.png") if opts.invented_map else None
    for path in (out, chart) if chart else (out,):
        if path.resolve() in (lr.resolve(), sr.resolve()):
            raise AffsrError(f"{path}: the output would replace an input")
        if path.exists() and not opts.overwrite:
            raise FileExistsError(str(path))
    if x.pixels.shape[0] != f.pixels.shape[0]:
        raise AffsrError(f"{name}: LR has {x.pixels.shape[0]} channel(s) and SR {f.pixels.shape[0]}")
    s = scale_of(tuple(x.pixels.shape[1:]), tuple(f.pixels.shape[1:]), opts.scale, name)
    spec = opts.operator(s)
    A, pinv = spec.build()
    suffix = out.suffix.lower()
    bits = opts.bits or (32 if suffix == ".npy" else f.bits)  # .npy holds float32 (as upscale's)
    if bits == 32 and suffix not in FLOAT:
        raise AffsrError(f"{out}: float32 output (--bits 32) is written as .tif or .npy")
    if bits != 32 and WRITE_FORMATS.get(suffix) is None:
        raise AffsrError(
            f"{out}: cannot write '{out.suffix}' images; use .png, .tif, .webp or .bmp (float32: .tif, .npy)"
        )
    if bits == 16 and WRITE_FORMATS[suffix] != "PNG":
        raise AffsrError(f"{out}: 16-bit output is written as PNG")
    lossy = WRITE_FORMATS.get(suffix) if WRITE_FORMATS.get(suffix) in X.LOSSY and bits != 32 else None
    if opts.strict and lossy:
        raise AffsrError(f"{out}: --strict: {lossy} is lossy, so its files are never exact; write png, tif or webp")
    before, _ = consistency.lr_psnr(f.pixels.permute(1, 2, 0).numpy(), x.pixels, A)  # the SR file as given
    g = f.pixels.clone()
    if opts.remove_grid:  # as `affsr upscale` does: from Π_x f, then the contract's Π_x again
        project_without_grid(g, x.pixels, A, pinv)
    result = make_consistent(g, x.pixels, spec, A, pinv, None if bits == 32 else bits)
    saved = result.y_hat.permute(1, 2, 0).numpy() if bits == 32 else result.levels
    fit = None if bits == 32 else result.fit
    if opts.strict:  # judged before anything is written: an inexact file never reaches its name
        ahead = consistency.verdict(saved, x.pixels, A, spec, bits, fit)
        if not ahead.consistent:
            raise AffsrError(f"{name}: --strict, so {out} is not written: it is {ahead.warning}")
    if bits == 32:
        X.write_image(out, saved, overwrite=opts.overwrite)
    else:
        X.write_image(out, saved, overwrite=opts.overwrite)
    stored = X.read_stored(out)
    judged = consistency.verdict(stored, x.pixels, A, spec, bits, fit, lossy)  # read back, as upscale does
    if judged.warning:
        on_warn(name, f"{out}: {judged.warning}")
    extra = {}
    if chart:  # (I − A⁺A)ŷ: Π keeps the SR image's null-space part (the box fit and rounding
        # move it by about a level), so this is what its tool invented beyond x
        y_hat = invented.as_float(stored[..., : x.pixels.shape[0]], bits)
        part = invented.split(y_hat, A, pinv)
        X.write_image(chart, invented.invented_map(part), overwrite=opts.overwrite)
        extra = {
            "invented_map": str(chart),
            "invented_share": round(invented.share(part, y_hat), 6),
            "invented_rms": round(invented.rms(part), 6),
        }
    after = judged.lr_psnr
    return {
        "lr": str(lr),
        "sr": str(sr),
        "output": str(out),
        "scale": s,
        "bits": bits,
        "lr_psnr_before": None if before == math.inf else round(before, 3),
        "lr_psnr_after": None if after == math.inf else round(after, 3),
        "lr_max_error": judged.max_error,
        "consistent": judged.consistent,
        "pillow_exact": None if judged.pillow is None else round(judged.pillow, 6),
        "warning": judged.warning,
        "infeasible": None if fit is None else fit.infeasible,
        "box_iterations": result.box_iterations,
        "pillow_passes": result.pillow_passes,
        "seconds": round(time.perf_counter() - t0, 3),
        **extra,
    }


def run(
    lr: Path,
    sr: Path,
    opts: Options,
    on_error: Callable[[str, str], None],
    on_file=lambda done, total, name: None,
    on_warn: Callable[[str, str], None] = lambda name, message: None,
) -> list[dict]:
    """Every pair; returns the results (failed pairs are reported through on_error and skipped, files
    that miss the promise through on_warn)."""
    pairs = [(stem, a, b) for stem, a, b, _ in pair_by_name(lr, sr)]
    single = len(pairs) == 1 and Path(lr).is_file()
    if not single:
        if opts.output.exists() and not opts.output.is_dir():
            raise AffsrError(f"{opts.output}: folders of images need an output folder")
        opts.output.mkdir(parents=True, exist_ok=True)
    results = []
    for done, (stem, a, b) in enumerate(pairs):
        try:
            results.append(project_pair(stem, a, b, output_path(opts, b, single), opts, on_warn))
        except FileExistsError as e:
            on_error(stem, f"{e} exists; pass --overwrite to replace it")
        except (ValueError, OSError) as e:
            on_error(stem, str(e))
        on_file(done + 1, len(pairs), stem)
    return results
