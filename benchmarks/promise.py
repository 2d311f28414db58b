"""The promise on every input (issue 33; docs/promise.md): for each kind of LR image — a photo, text,
line art, a checkerboard, ordered and error-diffusion dithering, random black/white pixels, pixel
art, uniform noise — at one size, the whole-file time of `affsr upscale` (read, f, Π, box fit,
rounding, Pillow match, write, read back, verdict) beside the photo's, where it goes (the network f;
the box fit and the Pillow match), and what the saved 8-bit file reaches: LR-PSNR, the share of LR
values that Pillow's own resize gives back, and whether a warning was printed. Each measurement is
the fastest of --repeat rounds, and each round times the photo's whole file too ("× photo" divides by
that), so that a machine busier at one moment than at another slows both alike.

    python benchmarks/promise.py [--size 128] [--repeat 2] [--weights NAME] [--operator bicubic]
    python benchmarks/promise.py --compare-with DIR   # DIR: another tree, e.g. `git archive REV | tar -x -C DIR`
    python benchmarks/promise.py --kinds text "line art" --crops crops.png [--compare-with DIR]

`--compare-with` adds, per kind, the same file through DIR's `affsr upscale --json` (a subprocess:
its whole-file seconds, its LR-PSNR, and whether it printed a warning), so that a change can be
judged before and after on one machine in one run. The old code may take minutes on the noisy
kinds (its Pillow match ran to 64 passes): keep --size small there. `--crops PNG` writes, for each
kind, a crop of the saved file at 400 % of the input beside the input (pixels repeated) and Pillow's
bicubic upscale (and DIR's file with --compare-with), shown 2× (each pixel 2 × 2) to be looked at.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affsr_cli import batch as U
from affsr_cli import infer
from affsr_cli.images import read_image
from affsr_cli.registry import DEFAULT

ROOT = Path(__file__).resolve().parent.parent
BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16


def ramp(n: int) -> np.ndarray:
    return np.arange(n)[None, :] / (n - 1) * 0.7 + np.arange(n)[:, None] / (n - 1) * 0.3


def photo(n: int) -> Image.Image:
    """A crop of a bundled photo after a bicubic 2× reduction (how most LR photos are made)."""
    im = Image.open(ROOT / "examples" / "val" / "chelsea.png").convert("RGB")
    return im.resize((im.width // 2, im.height // 2), Image.Resampling.BICUBIC).crop((0, 0, n, n))


def text(n: int) -> Image.Image:
    """A screenshot: lines of black and red text on white, a 1-px blue rule."""
    im = Image.new("RGB", (n, n), "white")
    d = ImageDraw.Draw(im)
    for k, y in enumerate(range(2, n - 12, 14)):
        d.text((2, y), "The promise: A(y) = x 0123"[: n // 6], fill=(200, 0, 0) if k % 2 else "black")
    d.line((0, n - 4, n - 1, n - 4), fill=(0, 0, 255))
    return im


def line_art(n: int) -> Image.Image:
    im = Image.new("L", (n, n), 255)
    d = ImageDraw.Draw(im)
    for k in range(4, n, 12):
        d.line((k, 2, n - 3, n - k), fill=0)
        d.line((2, k, n - k, n - 3), fill=0)
    d.rectangle((n // 4, n // 4, n // 2, n // 2), outline=0)
    d.ellipse((n // 2, n // 8, 7 * n // 8, n // 2), outline=0)
    return im


def checkerboard(n: int) -> Image.Image:
    return Image.fromarray((((np.arange(n)[:, None] + np.arange(n)) % 2) * 255).astype(np.uint8))


def ordered_dither(n: int) -> Image.Image:
    a = ramp(n) > np.tile(BAYER, (n // 4 + 1, n // 4 + 1))[:n, :n]
    return Image.fromarray((a * 255).astype(np.uint8))


def error_diffusion(n: int) -> Image.Image:
    """A ramp through Pillow's Floyd–Steinberg (convert to 1 bit)."""
    return Image.fromarray((ramp(n) * 255).astype(np.uint8)).convert("1").convert("L")


def dots(n: int) -> Image.Image:
    """Random black and white pixels (as in dithering)."""
    return Image.fromarray(((np.random.default_rng(0).random((n, n)) > 0.5) * 255).astype(np.uint8)).convert("RGB")


def pixel_art(n: int) -> Image.Image:
    """Flat blocks of 4×4 pixels from a 5-colour palette."""
    palette = np.array([[20, 20, 40], [240, 200, 40], [200, 40, 40], [40, 160, 60], [250, 250, 250]], np.uint8)
    sprite = np.random.default_rng(3).integers(0, len(palette), (-(-n // 4), -(-n // 4)))
    return Image.fromarray(palette[sprite.repeat(4, 0).repeat(4, 1)[:n, :n]])


def noise(n: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(5).integers(0, 256, (n, n, 3), dtype=np.uint8))


KINDS = {
    "photo": photo,
    "text": text,
    "line art": line_art,
    "checkerboard": checkerboard,
    "ordered dither": ordered_dither,
    "error diffusion": error_diffusion,
    "random b/w pixels": dots,
    "pixel art": pixel_art,
    "uniform noise": noise,
}


def ours(up: infer.Upscaler, src: Path, photo: Path, d: Path, repeat: int) -> dict:
    """This tree: the whole file through the engine of `affsr upscale`, and its parts timed alone, each
    the fastest of `repeat` rounds; every round also times the photo's whole file, so that a machine
    that is busier at one moment than at another slows both alike (`photo`: its fastest)."""
    warned = []
    cb = U.Callbacks(warn=lambda source, message: warned.append(message))
    opts = U.Options(output=d / "ours.png", overwrite=True)
    x = read_image(src).pixels
    times: dict[str, list[float]] = {"photo": [], "seconds": [], "network": [], "fit": []}

    def timed(key, fn):
        t0 = time.perf_counter()
        out = fn()
        times[key].append(time.perf_counter() - t0)
        return out

    for _ in range(repeat):
        timed("photo", lambda: U.process(up, U.Job(photo, d / "photo_out.png", ".png"), opts, U.Callbacks()))
        warned.clear()
        rows = timed("seconds", lambda: U.process(up, U.Job(src, d / "ours.png", ".png"), opts, cb))
        f = timed("network", lambda: up.network(x))
        out = timed("fit", lambda: infer.make_consistent(f.clone(), x, up.spec, up.A, up.pinv, 8))
    row = rows[0]
    return {
        **{k: min(v) for k, v in times.items()},
        "iterations": out.box_iterations,
        "passes": out.pillow_passes,
        "lr_psnr": row["lr_psnr"],
        "pillow": row["pillow_exact"],
        "warned": bool(warned),
        "infeasible": row["infeasible"],
        "guarded": out.fit.guarded,
    }


def theirs(tree: Path, src: Path, d: Path, weights: str, operator: str | None) -> dict:
    """Another tree: the same file through its CLI (`--json`'s whole-file seconds and LR-PSNR)."""
    cmd = [
        sys.executable,
        "-m",
        "affsr_cli",
        "upscale",
        str(src),
        "-o",
        str(d / "theirs.png"),
        "--overwrite",
        "--json",
        "-w",
        weights,
    ] + (["--operator", operator] if operator else [])
    p = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    if p.returncode:
        sys.exit(f"{tree}: the upscale failed: {p.stderr.strip()[-500:]}")
    row = json.loads(p.stdout)[0]
    return {"seconds": row["seconds"], "lr_psnr": row["lr_psnr"], "warned": "warning:" in p.stderr}


def crops(path: Path, panels: list[tuple[str, list[np.ndarray]]], side: int = 96):
    """One PNG: a row per kind, its panels (HR arrays) cropped to side × side at the top left, 2× enlarged."""
    rows = []
    for _, arrays in panels:
        cells = []
        for a in arrays:
            a = np.asarray(Image.fromarray(a).convert("RGB"))[:side, :side]
            cells += [
                np.pad(a, ((0, side - a.shape[0]), (0, side - a.shape[1]), (0, 0)), constant_values=255),
                np.full((side, 4, 3), 128, np.uint8),
            ]
        rows += [np.concatenate(cells[:-1], 1), np.full((4, len(arrays) * (side + 4) - 4, 3), 128, np.uint8)]
    grid = np.concatenate(rows[:-1], 0)
    Image.fromarray(grid).resize((2 * grid.shape[1], 2 * grid.shape[0]), Image.Resampling.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="LR side of every input (square)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement (the fastest is kept)")
    ap.add_argument("--weights", default=str(DEFAULT.path), help="default: affsr upscale's")
    ap.add_argument("--operator", default=None, help="A for the outputs (default: the weights')")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), help=f"a subset of: {', '.join(KINDS)}")
    ap.add_argument("--compare-with", metavar="DIR", help="another tree whose `affsr upscale` runs the same files")
    ap.add_argument("--crops", metavar="PNG", help="write input | bicubic | [DIR's file |] ours at 400 %% here")
    args = ap.parse_args()
    up = infer.Upscaler.load(args.weights, "cpu")
    if args.operator:
        from affsr_cli.projection import OperatorSpec

        up.set_operator(OperatorSpec(up.scale, family=args.operator))
    d = Path(tempfile.mkdtemp())
    n = args.size
    print(
        f"{n}×{n} → {4 * n}×{4 * n}, {Path(args.weights).name}, A = {up.spec.describe()}, "
        f"{torch.get_num_threads()} thread(s); seconds: fastest of {args.repeat}"
    )
    head = (
        f"{'input':18s} {'file s':>7s} {'× photo':>7s} {'f s':>6s} {'fit+Pil s':>9s} {'÷ f':>5s} {'iter':>4s} "
        f"{'LR-PSNR':>7s} {'Pillow':>7s} {'warned':>6s}"
    )
    if args.compare_with:
        head += f" | {'before s':>8s} {'LR-PSNR':>7s} {'warned':>6s}"
    print(head)
    panels = []
    photo = d / "the_photo.png"
    KINDS["photo"](n).save(photo)
    U.process(
        up, U.Job(photo, d / "photo_out.png", ".png"), U.Options(overwrite=True), U.Callbacks()
    )  # first-call costs
    for kind in args.kinds:
        src = d / f"{kind.replace(' ', '_').replace('/', '')}.png"
        KINDS[kind](n).save(src)
        r = ours(up, src, photo, d, args.repeat)
        pil = "—" if r["pillow"] is None else f"{100 * r['pillow']:.1f}%"
        line = (
            f"{kind:18s} {r['seconds']:7.2f} {r['seconds'] / r['photo']:7.2f} {r['network']:6.2f} {r['fit']:9.2f} "
            f"{r['fit'] / r['network']:5.2f} {r['iterations']:4d} {r['lr_psnr'] or float('inf'):7.2f} {pil:>7s} "
            f"{'yes' if r['warned'] else 'no':>6s}"
        )
        lr = Image.open(src)
        row = [lr.resize((4 * n, 4 * n), Image.Resampling.NEAREST), lr.resize((4 * n, 4 * n), Image.Resampling.BICUBIC)]
        if args.compare_with:
            o = theirs(Path(args.compare_with).resolve(), src, d, args.weights, args.operator)
            line += f" | {o['seconds']:8.2f} {o['lr_psnr'] or float('inf'):7.2f} {'yes' if o['warned'] else 'no':>6s}"
            row.append(Image.open(d / "theirs.png").copy())
        panels.append((kind, [np.asarray(im) for im in row + [Image.open(d / "ours.png")]]))
        print(line, flush=True)
    if args.crops:
        crops(Path(args.crops), panels)
        print(
            f"wrote {args.crops}: per row input (pixels repeated) | Pillow bicubic | "
            f"{'before | ' if args.compare_with else ''}affsr, 2× enlarged"
        )


if __name__ == "__main__":
    main()
