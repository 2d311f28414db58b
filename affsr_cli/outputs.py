"""The files of `affsr upscale`: inputs (files, folders, globs) collected, and each one's output paths
planned (names, extensions, bit depths, samples and maps, the batch's own outputs never taken as inputs,
--shard slices balanced by pixels) before any work, so that a refusal comes first and nothing is lost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import floattiff, images
from .errors import AffsrError
from .images import SUFFIXES, WRITE_FORMATS, walk_images

OUTPUT_SUFFIXES = (*WRITE_FORMATS, ".npy")


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
    skip_existing: bool = (
        False  # inputs whose outputs all exist are skipped (a re-run after a failure finishes the rest)
    )
    strict: bool = False  # a file that would miss the promise (consistency.verdict) is an error and is not written
    invented_map: bool = (
        False  # also write NAME_invented.png, the map of (I − A⁺A)ŷ (invented.py); N samples: NAME_spread.png
    )


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
                problems.append(
                    (
                        arg,
                        f"{arg}: the -o folder holds it, so its outputs would mix with its inputs; give "
                        "another -o folder, or none to write each output beside its input",
                    )
                )
                continue
            files, unreadable = walk_images(p, SUFFIXES, hidden=False, skip_folder=lambda d: d.resolve() == skip)
            problems += [
                (arg, u) for u in unreadable
            ]  # a subfolder we cannot list is an error, as a file we cannot read
            if not files and not unreadable:
                problems.append((arg, f"{arg}: a folder with no image files ({', '.join(SUFFIXES)})"))
            found += [(q, q.relative_to(p)) for q in files]
        elif is_glob(arg):
            parts = Path(arg).parts
            root = Path(*[q for q in parts[: next(i for i, q in enumerate(parts) if is_glob(q))]] or ["."])
            rest = str(Path(*parts[len(root.parts) if str(root) != "." else 0 :]))
            # pathlib's glob does not follow links to folders (glob.glob's '**' followed `self -> .` links
            # around and around); hidden files and folders are skipped as in folders
            files = sorted(
                q
                for q in root.glob(rest)
                if q.is_file()
                and not under_output(q)
                and not any(part.startswith(".") for part in q.relative_to(root).parts)
            )
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
    return ext if fmt and fmt not in images.LOSSY and bits in images.LEVEL_BITS[fmt] else ".png"


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
            return (
                32 if im.mode == "F" else 16 if im.mode.startswith("I;16") or im.mode == "I" else 8
            )  # as read_image reads them
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
    # -o NAME.EXT names a file when EXT is an image type, or when there is one input (then an unknown EXT is an
    # error: a typo such as .pgn); with several inputs any other NAME.EXT (runs.v2, out.d) is a new folder
    image_type = opts.output is not None and opts.output.suffix.lower() in OUTPUT_SUFFIXES
    if opts.output is not None and opts.output.suffix and not opts.output.is_dir() and (image_type or not many):
        if not image_type:
            raise AffsrError(
                f"-o {opts.output}: unknown output type '{opts.output.suffix}' "
                f"(files: {', '.join(OUTPUT_SUFFIXES)}; or a folder, made first when its name has a dot)"
            )
        if many:
            raise AffsrError(f"-o {opts.output} names one file, but there are {len(inputs)} inputs; give a folder")
        return [Job(inputs[0][0], opts.output, opts.output.suffix)]
    suffix = (
        opts.suffix if opts.suffix is not None else ("" if opts.output is not None else f"_x{opts.outscale or scale:g}")
    )
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
            job.problem = (
                f"{job.src}: its output {kept[0]} is an input of this batch and is kept; give -o DIR or "
                "--suffix" + ("" if sources[key(kept[0])] == job.src else ", or move it away")
            )
        elif outputs[k] != job.src:
            job.problem = (
                f"{job.src}: its output {job.dst} is also that of {outputs[k]}; give --suffix or keep them apart"
            )
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
