"""The engine of `affsr upscale`: inputs (files, folders, globs) to output paths, and one file
through read → infer.Upscaler (f on tiles → Π → box fit → rounding) → atomic write → read back →
consistency.verdict (LR-PSNR, Pillow's round trip: does the file keep the promise?).

Each file's problem is reported through `cb.error(input, message)` and the batch goes on; a file
written that misses the promise through `cb.warn(input, message)` (with `strict`: an error, and no
file). The engine never prints. Results are plain dicts (the CLI's table and JSON).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import boxfit, consistency, infer, invented
from . import images as X
from .device import available_memory
from .errors import AffsrError
from .files import check_writable, make_folder
from .images import WRITE_FORMATS, check_output_size, read_image
from .outputs import OUTPUT_SUFFIXES, Job, Options, collect, map_paths, pixels, plan, sample_paths, shards

MEMORY_FACTOR = 3.0  # peak bytes ≈ this × the float32 HR image (2.95 measured: benchmarks/upscale.py --large)


@dataclass
class Callbacks:
    note: Callable[[str], None] = lambda message: None
    file: Callable[[int, int, str], None] = lambda done, total, name: None
    tile: Callable[[int, int], None] = lambda done, total: None
    stage: Callable[[str, int, int], None] = lambda name, done, total: (
        None
    )  # after the network: fit, Pillow match, check
    error: Callable[[str, str], None] = lambda source, message: None
    warn: Callable[[str, str], None] = lambda source, message: None  # a file written that misses the promise
    results: list = field(default_factory=list)


def refuse_before_work(up: infer.Upscaler, job: Job, pic, bits: int, opts: Options, outputs: list[Path]):
    """(format, (W, H)) of the output of `job`, after every refusal that can be made before the network runs:
    the output would replace the input, a format that cannot hold the samples or the transparency, --strict
    with a lossy format, a size the format cannot hold, the memory the output needs, an output that exists
    (without --overwrite) or cannot be written."""
    src, dst = job.src, job.dst
    if dst.resolve() == src.resolve():
        raise AffsrError(f"{src}: the output would replace the input; give -o or --suffix")
    suffix = dst.suffix.lower()
    fmt = X.FLOAT_FORMATS.get(suffix) if bits == 32 else WRITE_FORMATS.get(suffix)
    if fmt is None or (bits != 32 and bits not in X.LEVEL_BITS[fmt]):
        raise AffsrError(
            f"{dst}: cannot write {'float32' if bits == 32 else f'{bits}-bit'} samples as '{dst.suffix}' "
            "(8 bits: png, tif, webp, bmp, jpg; 16 bits: png; --bit-depth 32 (float32): tif or npy)"
        )
    if pic.alpha is not None and fmt in ("JPEG", "BMP"):
        raise AffsrError(f"{src}: has transparency, which {fmt} cannot store; use --ext png, webp or tif")
    if opts.strict and fmt in X.LOSSY:
        raise AffsrError(f"{dst}: --strict: {fmt} is lossy, so its files are never exact; write png, tif or webp")
    c, h, w = pic.pixels.shape
    s = up.scale
    H, W = (s * h, s * w) if opts.outscale is None else (round(opts.outscale * h), round(opts.outscale * w))
    check_output_size(dst, fmt, W, H, c + (pic.alpha is not None), bits)  # before the work, not after it
    factor = MEMORY_FACTOR + (2 + (up.detail_mode == "more") if up.detail is not None else 0)
    # --detail: t and N (t − f) beside f; mode more: the two luma energies and their blurs
    need = factor * 4 * (c + (pic.alpha is not None)) * s * h * s * w
    free = available_memory(torch.device("cpu"))
    if need > free:
        raise AffsrError(
            f"{src}: a {w}×{h} input needs about {need / 2**30:.1f} GB for its {s * w}×{s * h} output "
            f"and {free / 2**30:.1f} GB are available"
        )
    for p in outputs:  # files.OutputExists without --overwrite; a link, device, long name ... before the work
        if p.resolve() == src.resolve():
            raise AffsrError(f"{src}: the output {p} would replace the input; give -o or --suffix")
        check_writable(p, opts.overwrite)
    return fmt, (W, H)


def stored_samples(result: infer.Output, alpha, bits: int, rounded: bool, resize_to: tuple[int, int] | None):
    """The array (H, W, C) written for one output: the contract's shaped levels (alpha's joined), or, with
    --outscale (`resize_to`) or --bit-depth 32, ŷ resized and rounded, or kept float32."""
    if rounded:  # each channel is rounded on its own, so alpha's levels join the colour's
        return result.levels if alpha is None else np.concatenate([result.levels, boxfit.round_shaped(alpha, bits)], 2)
    planes = result.y_hat if alpha is None else torch.cat([result.y_hat, alpha])
    if resize_to is not None:
        planes = consistency.resize(planes.clamp_(0, 1), resize_to).clamp_(0, 1)
    if bits == 32:
        return planes.permute(1, 2, 0).numpy()
    return (planes * (2**bits - 1)).round_().permute(1, 2, 0).numpy().astype("uint16" if bits == 16 else "uint8")


def process(up: infer.Upscaler, job: Job, opts: Options, cb: Callbacks) -> list[dict]:
    """One input file -> one output per sample; returns result rows. Raises ValueError/OSError."""
    t0 = time.perf_counter()
    src = job.src
    seeds = [opts.seed + i for i in range(opts.samples)] if up.noise_channels else None
    paths = sample_paths(job.dst, seeds)  # final names (planned): a rerun skips without decoding anything
    maps = map_paths(job.dst, paths) if opts.invented_map else []
    if opts.skip_existing and all(p.exists() for p in paths + maps):
        cb.note(f"{src}: {', '.join(map(str, paths))} exist(s); skipped")
        return []
    pic = read_image(src, max_pixels=opts.max_pixels)
    icc, frames = X.source_info(src)
    if frames > 1:
        cb.note(f"{src}: {frames} frames; only the first is upscaled")
    bits = opts.bits or (32 if (job.ext or "").lower() == ".npy" else pic.bits)
    fmt, (W, H) = refuse_before_work(up, job, pic, bits, opts, paths + maps)
    c, h, w = pic.pixels.shape
    s = up.scale
    consistent = opts.outscale is None or opts.outscale == s
    fit = None if bits == 32 and consistent else min(bits, 16)  # float32 files keep Π's exact values
    rounded = consistent and bits != 32  # --outscale rounds after its resize
    alpha = up.alpha(pic.alpha, fit) if pic.alpha is not None else None  # saved with the colour
    fits = icc if X.icc_fits(icc, c) else None
    if icc and not fits:
        cb.note(f"{src}: its ICC profile is not for {'RGB' if c == 3 else 'gray'} output; not carried over")
    rows, kept = [], []  # kept: each sample's ŷ as stored, for the spread map
    for path, seed in zip(paths, seeds or [None]):
        result = up(pic.pixels, bits=fit, seed=seed or 0, rounding=rounded, on_tile=cb.tile, on_stage=cb.stage)
        saved = stored_samples(result, alpha, bits, rounded, None if consistent else (H, W))
        fitted = result.fit
        del result
        if opts.strict:  # judged before anything is written: an inexact file never reaches its name
            before = consistency.verdict(saved, pic.pixels, up.A, up.spec, bits, fitted)
            if not before.consistent:
                raise AffsrError(f"{src}: --strict, so {path} is not written: it is {before.warning}")
        X.write_image(path, saved, icc=fits, overwrite=opts.overwrite, quality=opts.quality)
        del saved
        judged, extra = None, {}
        if consistent:  # the file as stored, read back
            cb.stage("checking", 0, 1)
            stored = X.read_stored(path)
            judged = consistency.verdict(
                stored, pic.pixels, up.A, up.spec, bits, fitted, fmt if fmt in X.LOSSY else None
            )
            if judged.warning:
                cb.warn(str(src), f"{path}: {judged.warning}")
            if opts.invented_map:
                extra = write_invented(stored[..., :c], bits, up, maps[len(rows)], opts.overwrite)
                if len(paths) > 1:
                    kept.append(invented.as_float(stored[..., :c], bits))
        rows.append(
            {
                "input": str(src),
                "output": str(path),
                **report(judged),
                "seconds": round(time.perf_counter() - t0, 3),
                "size_in": [w, h],
                "size_out": [W, H],
                "bits": bits,
                "seed": seed,
                "box_iterations": fitted.iterations,
                "infeasible": fitted.infeasible if fit else None,
                "format": fmt,
                "keep_grid": up.keep_grid,
                **({"detail_limit": up.detail_limit, "detail_mode": up.detail_mode} if up.detail is not None else {}),
                **extra,
            }
        )
        t0 = time.perf_counter()
    if kept:  # the samples differ only in A's null space: their spread is what the input leaves open
        picture, mean = invented.spread_map(kept)
        X.write_image(maps[-1], picture, overwrite=opts.overwrite)
        for row in rows:
            row.update(spread_map=str(maps[-1]), spread_mean=round(mean, 6))
    return rows


def write_invented(stored: np.ndarray, bits: int, up: infer.Upscaler, path: Path, overwrite: bool) -> dict:
    """The invented-detail map of one saved output (its values as read back) and its JSON fields."""
    y_hat = invented.as_float(stored, bits)  # (C, H, W)
    part = invented.split(y_hat, up.A, up.pinv)  # (I − A⁺A)ŷ
    X.write_image(path, invented.invented_map(part), overwrite=overwrite)
    return {
        "invented_map": str(path),
        "invented_share": round(invented.share(part, y_hat), 6),
        "invented_rms": round(invented.rms(part), 6),
    }


def report(v: consistency.Verdict | None) -> dict:
    """The JSON fields of a verdict (all None for a resized, --outscale'd file, which makes no promise)."""
    if v is None:
        return {
            "lr_psnr": None,
            "lr_mse": None,
            "lr_max_error": None,
            "consistent": None,
            "pillow_exact": None,
            "warning": None,
        }
    return {
        "lr_psnr": None if v.lr_psnr == math.inf else round(v.lr_psnr, 3),
        "lr_mse": v.lr_mse,
        "lr_max_error": v.max_error,
        "consistent": v.consistent,
        "pillow_exact": None if v.pillow is None else round(v.pillow, 6),
        "warning": v.warning,
    }


def run(up: infer.Upscaler, args: list[str], opts: Options, cb: Callbacks) -> int:
    """Upscale every input; returns the number of inputs that failed (reported through cb.error)."""
    if opts.samples < 1:
        raise AffsrError(f"--samples must be at least 1, got {opts.samples}")
    if opts.samples > 1 and not up.noise_channels:
        raise AffsrError(
            "--samples needs a stochastic checkpoint (one trained with --noise-channels); this one is deterministic"
        )
    if opts.suffix and (any(c in opts.suffix for c in "/\\\0") or opts.suffix in (".", "..")):
        raise AffsrError(f"--suffix {opts.suffix!r} must not hold a path separator (it is added to each file's name)")
    if opts.bits not in (None, 8, 16, 32):
        raise AffsrError(f"--bit-depth must be 8, 16 or 32 (float32), got {opts.bits}")
    if opts.outscale is not None and not (0 < opts.outscale <= 64):
        raise AffsrError(f"--outscale must be a positive factor up to 64, got {opts.outscale}")
    if opts.invented_map and opts.outscale is not None and opts.outscale != up.scale:
        raise AffsrError(
            "--invented-map and --outscale contradict each other: a resized file has no exact split into "
            "what the input determines and what was invented"
        )
    if opts.strict and opts.outscale is not None and opts.outscale != up.scale:
        raise AffsrError(
            "--strict and --outscale contradict each other: a resized file does not downsample to its input"
        )
    if opts.ext is not None:
        opts.ext = opts.ext if opts.ext.startswith(".") else f".{opts.ext}"
        if opts.ext.lower() not in OUTPUT_SUFFIXES:
            raise AffsrError(f"--ext {opts.ext}: use one of {', '.join(OUTPUT_SUFFIXES)}")
        if opts.ext.lower() == ".npy" and opts.bits is None:
            opts.bits = 32
    if opts.outscale is not None and opts.outscale != up.scale:
        cb.note(
            f"--outscale {opts.outscale:g} resizes the {up.scale}× output: the saved files no longer downsample "
            "exactly to their inputs (no LR-PSNR is reported)"
        )
    if opts.output is not None and str(opts.output) == "-":
        raise AffsrError("-o -: writing images to standard output is not supported; give a file or folder name")
    if (
        opts.output is not None
        and opts.output.exists()
        and not opts.output.is_dir()
        and opts.output.suffix.lower() not in OUTPUT_SUFFIXES
    ):
        raise AffsrError(
            f"-o {opts.output}: an existing file of no image type, so neither a folder nor an output file "
            f"(--overwrite cannot change that); give a folder, or a name ending in {', '.join(OUTPUT_SUFFIXES)}"
        )
    out_dir = opts.output if opts.output is not None and (opts.output.is_dir() or not opts.output.suffix) else None
    inputs, problems = collect(args, exclude=out_dir)
    for arg, message in problems:
        cb.error(arg, message)
    failed = len(problems)
    if not inputs:
        return max(failed, 1)
    jobs = plan(inputs, opts, up.scale)
    earlier = [job for job in jobs if job.output_of is not None]
    if earlier:  # a folder upscaled in place, run again: one line, not one per file
        job = earlier[0]
        cb.note(
            f"{len(earlier)} file(s) not upscaled: outputs of this batch's inputs from an earlier run "
            f"({job.src} of {job.output_of}{', ...' if len(earlier) > 1 else ''})"
        )
        jobs = [job for job in jobs if job.output_of is None]
    if opts.shard is not None:  # split the sorted list, whatever order the arguments came in
        k, n = opts.shard
        jobs = sorted(jobs, key=lambda job: str(job.src))
        owner = shards([pixels(job.src) for job in jobs], n)
        cb.note(f"shard {k}/{n}: {owner.count(k)} of {len(jobs)} inputs")
        jobs = [job for job, o in zip(jobs, owner) if o == k]
    for i, job in enumerate(jobs):
        cb.file(i, len(jobs), str(job.src))
        if job.skip:
            cb.note(job.skip)
            continue
        try:
            if job.problem:
                raise AffsrError(job.problem)
            make_folder(job.dst.parent)
            cb.results.extend(process(up, job, opts, cb))
        except FileExistsError as e:  # ours (no errno): an output that is there; the system's: --overwrite cannot help
            failed += 1
            cb.error(
                str(job.src),
                f"{e} exists; pass --overwrite to replace it or --skip-existing to keep it"
                if e.errno is None
                else f"{job.src}: {e.filename}: {e.strerror}",
            )
        except (ValueError, OSError, MemoryError, RuntimeError) as e:
            failed += 1
            cb.error(str(job.src), str(e) if str(job.src) in str(e) else f"{job.src}: {e}")
    cb.file(len(jobs), len(jobs), "")
    return failed
