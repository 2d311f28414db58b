"""Saved-file consistency of `affsr upscale` on LR photos made by Pillow, measured two ways: with our
A (the table's LR-PSNR) and with Pillow's own resize of the saved file.

    python benchmarks/pillow_check.py --hr data/photos/val -w runs/bicubic-affmse/generator.safetensors \
        [--operator bicubic] [--scale 4] [--ensemble] [--detail W [--detail-limit L] [--detail-mode M]]

Each HR photo (cropped to a multiple of the scale) is reduced with Pillow's 8-bit resize (the filter of
--operator), saved as PNG and upscaled by the `affsr upscale` command line at 8 and 16 bits. Then:
LR-PSNR of A(saved) vs x as upscale reports it; for 8-bit files, Pillow's 8-bit resize of the output
against the input (share of equal LR pixels, largest difference in levels, PSNR); for 16-bit files,
Pillow's float resize (mode "F") of the output against the input (PSNR).
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "lanczos3": Image.Resampling.LANCZOS,
}


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(peak**2 / mse) if mse else math.inf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", type=Path, required=True)
    ap.add_argument("-w", "--weights", required=True)
    ap.add_argument("--operator", default="bicubic", choices=list(FILTERS))
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--ensemble", action="store_true", help="upscale with the ×8 self-ensemble (upscale --ensemble)")
    ap.add_argument("--detail", metavar="W", help="with another network's detail (upscale --detail)")
    ap.add_argument("--detail-limit", metavar="L", help="upscale --detail-limit")
    ap.add_argument("--detail-mode", metavar="M", help="upscale --detail-mode (all or more)")
    args = ap.parse_args()
    flt, s = FILTERS[args.operator], args.scale
    files = sorted(p for p in args.hr.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    with tempfile.TemporaryDirectory() as tmp:
        lr_dir = Path(tmp) / "lr"
        lr_dir.mkdir()
        for p in files:
            hr = Image.open(p).convert("RGB")
            w, h = hr.width // s, hr.height // s
            hr.crop((0, 0, w * s, h * s)).resize((w, h), flt).save(lr_dir / f"{p.stem}.png")
        rows = {}
        for bits in (8, 16):
            out = Path(tmp) / f"out{bits}"
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "affsr_cli",
                    "upscale",
                    str(lr_dir),
                    "-o",
                    str(out),
                    "-w",
                    args.weights,
                    "--operator",
                    args.operator,
                    "--bit-depth",
                    str(bits),
                    "--json",
                    *(["--ensemble"] if args.ensemble else []),
                    *(["--detail", args.detail] if args.detail else []),
                    *(["--detail-limit", args.detail_limit] if args.detail_limit else []),
                    *(["--detail-mode", args.detail_mode] if args.detail_mode else []),
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                sys.exit(r.stderr)
            for item in json.loads(r.stdout):
                rows.setdefault(Path(item["input"]).stem, {})[bits] = item["lr_psnr"]
        print(f"{len(files)} photos from {args.hr}, LR by Pillow {args.operator} 8-bit, weights {args.weights}\n")
        print(
            f"{'image':14s} {'LR':>9s} {'8-bit: ours':>11s} {'PIL equal':>10s} {'max diff':>8s} {'PIL dB':>7s} "
            f"{'16-bit: ours':>12s} {'PIL F dB':>9s}"
        )
        tot = {"eq": 0, "n": 0, "max": 0, "ours8": [], "pil8": [], "ours16": [], "pil16": []}
        for p in files:
            x = np.asarray(Image.open(lr_dir / f"{p.stem}.png"))
            y8 = Image.open(Path(tmp) / "out8" / f"{p.stem}.png")
            back = np.asarray(y8.resize((x.shape[1], x.shape[0]), flt))
            diff = np.abs(back.astype(int) - x.astype(int))
            y16 = _read16(Path(tmp) / "out16" / f"{p.stem}.png")  # (H, W, 3) levels
            back16 = np.stack(
                [
                    np.asarray(
                        Image.fromarray((y16[..., c] / 65535).astype(np.float32)).resize((x.shape[1], x.shape[0]), flt)
                    )
                    for c in range(3)
                ],
                2,
            )
            p8, p16 = psnr(back, x, 255), psnr(back16, x / 255, 1)
            ours8, ours16 = rows[p.stem][8], rows[p.stem][16]
            tot["eq"] += int((diff == 0).sum())
            tot["n"] += diff.size
            tot["max"] = max(tot["max"], int(diff.max()))
            for k, v in (("ours8", ours8), ("pil8", p8), ("ours16", ours16), ("pil16", p16)):
                tot[k].append(v if v is not None else math.inf)
            print(
                f"{p.stem[:14]:14s} {x.shape[1]:4d}×{x.shape[0]:<4d} {_db(ours8):>11s} {(diff == 0).mean() * 100:9.3f}% "
                f"{int(diff.max()):8d} {_db(p8):>7s} {_db(ours16):>12s} {_db(p16):>9s}"
            )
        print(
            f"\n{'all':14s} {'':9s} min {_db(min(tot['ours8'])):>7s} {tot['eq'] / tot['n'] * 100:9.3f}% {tot['max']:8d} "
            f"min {_db(min(tot['pil8'])):>3s} min {_db(min(tot['ours16'])):>8s} min {_db(min(tot['pil16'])):>5s}"
        )


def _read16(path: Path) -> np.ndarray:
    from affsr_cli.images import read_image

    return (read_image(path).pixels.permute(1, 2, 0).double().numpy() * 65535).round()


def _db(v) -> str:
    return "∞" if v is None or v == math.inf else f"{v:.1f}"


if __name__ == "__main__":
    main()
