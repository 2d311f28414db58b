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

from . import images as X
from . import consistency, floattiff, infer, invented
from .device import available_memory
from .images import SUFFIXES, WRITE_FORMATS, check_output_size, read_image, walk_images
from .files import check_writable, make_folder
from .errors import AffsrError

OUTPUT_SUFFIXES = (*WRITE_FORMATS, ".npy")
MEMORY_FACTOR = 3.0  # peak bytes ≈ this × the float32 HR image (2.95 measured: benchmarks/upscale.py --large)


@dataclass
class Options:
    output: Path | None = None  # -o: a file (one input) or a folder (the input tree is kept under it)
    suffix: str | None = None  # added to the stem; default "_x{scale}" beside the input, "" under -o DIR
    ext: str | None = None  # output extension; default the input's when lossless, else .png
    bits: int | None = None  # 8, 16 or 32 (float32); default the input's (8 or 16)
    overwrite: bool = False
    samples: int = 1  # stochastic checkpoints: this many samples per input, seeds seed … seed+N−1
    seed: int = 0
    outscale: float | None = None  # final size = outscale × input (bicubic resize; breaks exact consistency)
    max_pixels: int | None = None  # input pixels refused above this (default: Pillow's bomb limit)
    quality: int = 95  # JPEG quality
    shard: tuple[int, int] | None = None  # (K, N): process only the K-th (0-based) of N balanced slices of the inputs
    skip_existing: bool = False  # inputs whose outputs all exist are skipped (a re-run after a failure finishes the rest)
    strict: bool = False  # a file that would miss the promise (consistency.verdict) is an error and is not written
    invented_map: bool = False  # also write NAME_invented.png, the map of (I − A⁺A)ŷ (invented.py); N samples: NAME_spread.png


@dataclass
class Callbacks:
    note: Callable[[str], None] = lambda message: None
    file: Callable[[int, int, str], None] = lambda done, total, name: None
    tile: Callable[[int, int], None] = lambda done, total: None
    stage: Callable[[str, int, int], None] = lambda name, done, total: None  # after the network: fit, Pillow match, check
    error: Callable[[str, str], None] = lambda source, message: None
    warn: Callable[[str, str], None] = lambda source, message: None  # a file written that misses the promise
    results: list = field(default_factory=list)


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def collect(args: list[str], exclude: Path | None = None) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """([(input file, path relative to its root)], [(argument, problem)]). Folders are read
    recursively (image suffixes only); globs are expanded here too (recursive '**' allowed)."""
    found, problems = [], []
    skip = exclude.resolve() if exclude is not None else None

    def under_output(p: Path) -> bool:
        return skip is not None and skip in p.resolve().parents

    for arg in args:
        p = Path(arg)
        if p.is_file():
            found.append((p, Path(p.name)))
        elif p.is_dir():
            if skip is not None and (p.resolve() == skip or skip in p.resolve().parents):
                problems.append((arg, f"{arg}: the -o folder holds it, so its outputs would mix with its inputs; give "
                                      "another -o folder, or none to write each output beside its input"))
                continue
            files, unreadable = walk_images(p, SUFFIXES, hidden=False, skip_folder=lambda d: d.resolve() == skip)
            problems += [(arg, u) for u in unreadable]  # a subfolder we cannot list is an error, as a file we cannot read
            if not files and not unreadable:
                problems.append((arg, f"{arg}: a folder with no image files ({', '.join(SUFFIXES)})"))
            found += [(q, q.relative_to(p)) for q in files]
        elif is_glob(arg):
            parts = Path(arg).parts
            root = Path(*[q for q in parts[:next(i for i, q in enumerate(parts) if is_glob(q))]] or ["."])
            rest = str(Path(*parts[len(root.parts) if str(root) != "." else 0:]))
            # pathlib's glob does not follow links to folders (glob.glob's '**' followed `self -> .` links
            # around and around); hidden files and folders are skipped as in folders
            files = sorted(q for q in root.glob(rest) if q.is_file() and not under_output(q)
                           and not any(part.startswith(".") for part in q.relative_to(root).parts))
            if not files:
                problems.append((arg, f"{arg}: no files match"))
            found += [(q, q.relative_to(root)) for q in files]
        else:
            problems.append((arg, f"{arg}: no such file or folder"))
    unique, seen = [], set()  # each real file once, however many arguments, links or globs reach it
    for q, rel in found:
        if q.resolve() not in seen:
            seen.add(q.resolve())
            unique.append((q, rel))
    return unique, problems


def default_ext(src: Path, bits: int) -> str:
    """The input's extension when it can be written losslessly at `bits`, else .png; float32 (bits 32):
    a TIFF, which image editors open (.npy only when asked for)."""
    ext = src.suffix.lower()
    if bits == 32:
        return ".tiff" if ext == ".tiff" else ".tif"
    fmt = WRITE_FORMATS.get(ext)
    return ext if fmt and fmt not in X.LOSSY and bits in X.LEVEL_BITS[fmt] else ".png"


@dataclass
class Job:
    src: Path
    dst: Path  # the output file, extension included
    ext: str | None
    problem: str | None = None  # why it cannot be done (reported as an error)
    skip: str | None = None  # why it is not done (a note): its name is the output of another input
    output_of: Path | None = None  # src is that input's output from an earlier run (name and size): not an input


def header_bits(src: Path) -> int:
    """Bits per sample from the file's header (16 for 16-bit PNG and TIFF, 32 for float32 TIFF, else 8),
    to name outputs before any image is decoded."""
    from PIL import Image

    try:
        with open(src, "rb") as fh:
            head = fh.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return 16 if head[24] == 16 else 8
        if floattiff.info(src) is not None:
            return 32
        with Image.open(src) as im:
            return 32 if im.mode == "F" else 16 if im.mode.startswith("I;16") or im.mode == "I" else 8  # as read_image reads them
    except Exception:  # unreadable: process() reports it
        return 8


def seen_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image as read_image shows it (EXIF orientation applied), from its header;
    None when it cannot be read."""
    from PIL import Image

    from .images import ORIENTATION

    try:
        tiff = floattiff.info(path)
        if tiff is not None:
            return tiff[1], tiff[0]
        with Image.open(path) as im:
            w, h = im.size
            return (h, w) if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)
    except Exception:
        return None


def is_output_of(candidate: Path, src: Path, opts: Options, scale: int) -> bool:
    """Whether `candidate`, which bears the output name of `src`, is that output from an earlier run: it has
    the size this run would give it (scale × src, or --outscale × src). A file of another size that bears
    the name is the user's own, and is kept as an input."""
    w, h = seen_size(src) or (0, 0)
    want = (scale * w, scale * h) if opts.outscale is None else (round(opts.outscale * w), round(opts.outscale * h))
    return w > 0 and seen_size(candidate) == want


def plan(inputs: list[tuple[Path, Path]], opts: Options, scale: int) -> list[Job]:
    """One job per input: its output path, extension included (the tree under -o DIR kept), decided
    for the whole batch before anything is written, so that no output replaces an input of the batch
    and no input that is another's output is upscaled again. A file that bears another input's output
    name and has that output's size is that output from an earlier run (a folder upscaled in place, run
    again): it is no input (`output_of`), so --skip-existing skips it and --overwrite replaces it."""
    many = len(inputs) > 1 or (opts.output is not None and opts.output.is_dir())
    if opts.output is not None and opts.output.suffix and not opts.output.is_dir():
        if opts.output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise AffsrError(f"-o {opts.output}: unknown output type '{opts.output.suffix}' "
                             f"(files: {', '.join(OUTPUT_SUFFIXES)}; or a folder)")
        if many:
            raise AffsrError(f"-o {opts.output} names one file, but there are {len(inputs)} inputs; give a folder")
        return [Job(inputs[0][0], opts.output, opts.output.suffix)]
    suffix = opts.suffix if opts.suffix is not None else ("" if opts.output is not None else f"_x{opts.outscale or scale:g}")
    key = lambda p: p.parent.resolve() / p.name  # noqa: E731 (the file itself, not where a link points)
    jobs = []
    for src, rel in inputs:
        folder = opts.output / rel.parent if opts.output is not None else src.parent
        ext = opts.ext or default_ext(src, opts.bits or header_bits(src))
        jobs.append(Job(src, folder / f"{src.stem}{suffix}{ext}", ext))
    outputs: dict[Path, Path] = {}
    for job in jobs:
        outputs.setdefault(key(job.dst), job.src)
    names = dict(outputs)  # every name a job writes: with --samples N, NAME_seedS (as process() names them)
    seeds = [opts.seed + i for i in range(opts.samples)] if opts.samples > 1 else None
    for job in jobs:  # and the --invented-map files of an earlier run, with or without the option now
        paths = sample_paths(job.dst, seeds)
        for path in paths + map_paths(job.dst, paths):
            names.setdefault(key(path), job.src)
    for job in jobs:
        owner = names.get(key(job.src))
        if owner is not None and owner != job.src and is_output_of(job.src, owner, opts, scale):
            job.output_of = owner
    sources = {key(job.src): job.src for job in jobs if job.output_of is None}
    for job in jobs:
        if job.output_of is not None:
            continue
        k = key(job.dst)
        kept = [p for p in sample_paths(job.dst, seeds) if key(p) in sources]
        if kept:
            job.problem = (f"{job.src}: its output {kept[0]} is an input of this batch and is kept; give -o DIR or "
                           "--suffix" + ("" if sources[key(kept[0])] == job.src else ", or move it away"))
        elif outputs[k] != job.src:
            job.problem = f"{job.src}: its output {job.dst} is also that of {outputs[k]}; give --suffix or keep them apart"
        owner = names.get(key(job.src))
        if owner is not None and owner != job.src:
            job.skip = f"{job.src}: not upscaled, its name is the output of {owner}"
    return jobs


def shards(sizes: list[int], n: int) -> list[int]:
    """The shard (0 … n−1) of each item: largest first onto the least loaded shard (ties: the lower
    shard, then the earlier item), so every process that sees the same sorted list makes the same
    split, with no coordination, and the shards' pixel totals stay close."""
    load, owner = [0] * n, [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        k = min(range(n), key=lambda k: (load[k], k))
        owner[i], load[k] = k, load[k] + sizes[i]
    return owner


def pixels(path: Path) -> int:
    """Pixels of an image from its header (0 when it cannot be read: it still belongs to one shard)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.width * im.height
    except Exception:
        return 0


def sample_paths(dst: Path, seeds: list[int] | None) -> list[Path]:
    if not seeds or len(seeds) == 1:
        return [dst]
    return [dst.with_name(f"{dst.stem}_seed{s}{dst.suffix}") for s in seeds]


def map_paths(dst: Path, paths: list[Path]) -> list[Path]:
    """--invented-map: NAME_invented.png beside each output, and NAME_spread.png for several samples."""
    maps = [p.with_name(f"{p.stem}_invented.png") for p in paths]
    return maps + ([dst.with_name(f"{dst.stem}_spread.png")] if len(paths) > 1 else [])


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
    dst = job.dst
    if dst.resolve() == src.resolve():
        raise AffsrError(f"{src}: the output would replace the input; give -o or --suffix")
    suffix = dst.suffix.lower()
    fmt = X.FLOAT_FORMATS.get(suffix) if bits == 32 else WRITE_FORMATS.get(suffix)
    if fmt is None or (bits != 32 and bits not in X.LEVEL_BITS[fmt]):
        raise AffsrError(f"{dst}: cannot write {'float32' if bits == 32 else f'{bits}-bit'} samples as '{dst.suffix}' "
                         "(8 bits: png, tif, webp, bmp, jpg; 16 bits: png; --bit-depth 32 (float32): tif or npy)")
    if pic.alpha is not None and fmt in ("JPEG", "BMP"):
        raise AffsrError(f"{src}: has transparency, which {fmt} cannot store; use --ext png, webp or tif")
    if opts.strict and fmt in X.LOSSY:
        raise AffsrError(f"{dst}: --strict: {fmt} is lossy, so its files are never exact; write png, tif or webp")
    c, h, w = pic.pixels.shape
    s = up.scale
    H, W = (s * h, s * w) if opts.outscale is None else (round(opts.outscale * h), round(opts.outscale * w))
    check_output_size(dst, fmt, W, H, c + (pic.alpha is not None), bits)  # before the work, not after it
    need = MEMORY_FACTOR * 4 * (c + (pic.alpha is not None)) * s * h * s * w
    free = available_memory(torch.device("cpu"))
    if need > free:
        raise AffsrError(f"{src}: a {w}×{h} input needs about {need / 2**30:.1f} GB for its {s * w}×{s * h} output "
                         f"and {free / 2**30:.1f} GB are available")
    for p in paths + maps:  # files.OutputExists without --overwrite; a link, device, long name ... before the work
        if p.resolve() == src.resolve():
            raise AffsrError(f"{src}: the output {p} would replace the input; give -o or --suffix")
        check_writable(p, opts.overwrite)
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
        if rounded:  # each channel is rounded on its own, so alpha's levels join the colour's
            saved = result.levels if alpha is None else np.concatenate([result.levels, consistency.round_shaped(alpha, bits)], 2)
        else:
            planes = result.y_hat if alpha is None else torch.cat([result.y_hat, alpha])
            if not consistent:
                planes = consistency.resize(planes.clamp_(0, 1), (H, W)).clamp_(0, 1)
            if bits == 32:
                saved = planes.permute(1, 2, 0).numpy()
            else:
                saved = (planes * (2**bits - 1)).round_().permute(1, 2, 0).numpy().astype("uint16" if bits == 16 else "uint8")
        boxfit = result.fit
        del result
        if opts.strict:  # judged before anything is written: an inexact file never reaches its name
            before = consistency.verdict(saved, pic.pixels, up.A, up.spec, bits, boxfit)
            if not before.consistent:
                raise AffsrError(f"{src}: --strict, so {path} is not written: it is {before.warning}")
        if bits == 32:
            X.write_image(path, saved, icc=fits, overwrite=opts.overwrite)
        else:
            X.write_image(path, saved, icc=fits, overwrite=opts.overwrite, quality=opts.quality)
        del saved
        judged, extra = None, {}
        if consistent:  # the file as stored, read back
            cb.stage("checking", 0, 1)
            stored = X.read_stored(path)
            judged = consistency.verdict(stored, pic.pixels, up.A, up.spec, bits, boxfit,
                                         fmt if fmt in X.LOSSY else None)
            if judged.warning:
                cb.warn(str(src), f"{path}: {judged.warning}")
            if opts.invented_map:
                extra = write_invented(stored[..., :c], bits, up, maps[len(rows)], opts.overwrite)
                if len(paths) > 1:
                    kept.append(invented.as_float(stored[..., :c], bits))
        rows.append({"input": str(src), "output": str(path), **report(judged), "seconds": round(time.perf_counter() - t0, 3),
                     "size_in": [w, h], "size_out": [W, H], "bits": bits, "seed": seed,
                     "box_iterations": boxfit.iterations, "infeasible": boxfit.infeasible if fit else None, "format": fmt,
                     **extra})
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
    return {"invented_map": str(path), "invented_share": round(invented.share(part, y_hat), 6),
            "invented_rms": round(invented.rms(part), 6)}


def report(v: consistency.Verdict | None) -> dict:
    """The JSON fields of a verdict (all None for a resized, --outscale'd file, which makes no promise)."""
    if v is None:
        return {"lr_psnr": None, "lr_mse": None, "lr_max_error": None, "consistent": None, "pillow_exact": None,
                "warning": None}
    return {"lr_psnr": None if v.lr_psnr == math.inf else round(v.lr_psnr, 3), "lr_mse": v.lr_mse,
            "lr_max_error": v.max_error, "consistent": v.consistent,
            "pillow_exact": None if v.pillow is None else round(v.pillow, 6), "warning": v.warning}


def run(up: infer.Upscaler, args: list[str], opts: Options, cb: Callbacks) -> int:
    """Upscale every input; returns the number of inputs that failed (reported through cb.error)."""
    if opts.samples < 1:
        raise AffsrError(f"--samples must be at least 1, got {opts.samples}")
    if opts.samples > 1 and not up.noise_channels:
        raise AffsrError("--samples needs a stochastic checkpoint (one trained with --noise-channels); this one is deterministic")
    if opts.suffix and (any(c in opts.suffix for c in "/\\\0") or opts.suffix in (".", "..")):
        raise AffsrError(f"--suffix {opts.suffix!r} must not hold a path separator (it is added to each file's name)")
    if opts.bits not in (None, 8, 16, 32):
        raise AffsrError(f"--bit-depth must be 8, 16 or 32 (float32), got {opts.bits}")
    if opts.outscale is not None and not (0 < opts.outscale <= 64):
        raise AffsrError(f"--outscale must be a positive factor up to 64, got {opts.outscale}")
    if opts.invented_map and opts.outscale is not None and opts.outscale != up.scale:
        raise AffsrError("--invented-map and --outscale contradict each other: a resized file has no exact split into "
                         "what the input determines and what was invented")
    if opts.strict and opts.outscale is not None and opts.outscale != up.scale:
        raise AffsrError("--strict and --outscale contradict each other: a resized file does not downsample to its input")
    if opts.ext is not None:
        opts.ext = opts.ext if opts.ext.startswith(".") else f".{opts.ext}"
        if opts.ext.lower() not in OUTPUT_SUFFIXES:
            raise AffsrError(f"--ext {opts.ext}: use one of {', '.join(OUTPUT_SUFFIXES)}")
        if opts.ext.lower() == ".npy" and opts.bits is None:
            opts.bits = 32
    if opts.outscale is not None and opts.outscale != up.scale:
        cb.note(f"--outscale {opts.outscale:g} resizes the {up.scale}× output: the saved files no longer downsample "
                "exactly to their inputs (no LR-PSNR is reported)")
    if opts.output is not None and str(opts.output) == "-":
        raise AffsrError("-o -: writing images to standard output is not supported; give a file or folder name")
    if opts.output is not None and opts.output.exists() and not opts.output.is_dir() \
            and opts.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise AffsrError(f"-o {opts.output}: an existing file of no image type, so neither a folder nor an output file "
                         f"(--overwrite cannot change that); give a folder, or a name ending in {', '.join(OUTPUT_SUFFIXES)}")
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
        cb.note(f"{len(earlier)} file(s) not upscaled: outputs of this batch's inputs from an earlier run "
                f"({job.src} of {job.output_of}{', ...' if len(earlier) > 1 else ''})")
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
            cb.error(str(job.src), f"{e} exists; pass --overwrite to replace it or --skip-existing to keep it" if e.errno is None
                     else f"{job.src}: {e.filename}: {e.strerror}")
        except (ValueError, OSError, MemoryError, RuntimeError) as e:
            failed += 1
            cb.error(str(job.src), str(e) if str(job.src) in str(e) else f"{job.src}: {e}")
    cb.file(len(jobs), len(jobs), "")
    return failed
