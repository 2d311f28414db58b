"""Halos on native camera photos: crops of photos at their own resolution (not downscaled, so the
LR input has the camera's own sharpness and noise), upscaled 4× by each checkpoint through the real
`affsr upscale`, side by side: LR (nearest ×4) | bicubic | one column per checkpoint.

    python examples/photos/native_crops.py --column SPAN=weights/import/spanx4-ch52.safetensors \\
        --column "AffMSE v3=weights/affmse-x4.safetensors" -o examples/photos/native-crops.png

The default crops are thin dark cables against a bright sky (Bridge_by_Sander_Klootwijk, CC-BY-SA-4.0,
from the lomiri-wallpapers-16.04 package that make_corpus.py unpacks into data/debs), where a network
that sharpens too hard draws a bright halo beside each line. The script prints, per checkpoint, the
overshoot: the 99.9th percentile, over the output's pixels, of how far ŷ rises above the brightest
LR pixel within 2 LR pixels (in 8-bit levels). A halo is a rise above anything in the input nearby;
bicubic's own overshoot is the reference.

`--crops fur` takes three crops of a horse's muzzle instead (horse.jpg, CC-BY-SA-3.0, from the
ukui-wallpapers sid package, 3840×2160): coat, and whiskers over skin, with the camera's noise and JPEG
blocks — where a GAN should draw hair and not paint. A `--column LABEL=DIR` is a folder of results made
elsewhere, named as the LR crops that `--lr-out DIR` writes (crop0.png, …): Real-ESRGAN, say, by
run_realesrgan.py, then `affsr project` (weights/README.md, "AffGAN v3.2 on native photos").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "data/debs/lomiri-wallpapers-16.04/usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg"
HORSE = ROOT / "data/debs/ukui-wallpapers_sid/usr/share/backgrounds/horse.jpg"
CROPS = {  # (photo, left, top, LR side)
    "cables": [(BRIDGE, 2260, 420, 96), (BRIDGE, 2600, 1280, 96), (BRIDGE, 2080, 60, 96)],
    "fur": [(HORSE, 2150, 330, 96), (HORSE, 2000, 1330, 96), (HORSE, 1150, 1000, 96)],
}


def overshoot(y_hat: np.ndarray, x: np.ndarray, s: int = 4, reach: int = 2) -> float:
    """99.9th percentile of max(0, ŷ − local max of x) in 8-bit levels; ŷ (H, W, C), x (h, w, C) uint8."""
    xt = torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float()
    local = F.max_pool2d(xt, 2 * reach + 1, 1, reach)  # (1, C, h, w)
    local = F.interpolate(local, scale_factor=s, mode="nearest")[0].permute(1, 2, 0).numpy()
    return float(np.percentile(np.maximum(y_hat.astype(np.float32) - local, 0), 99.9))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--column",
        action="append",
        required=True,
        metavar="LABEL=WEIGHTS",
        help="a checkpoint column, or LABEL=DIR: results made elsewhere, named as the LR crops (--lr-out; a run folder of affsr train is a checkpoint)",
    )
    p.add_argument("--crops", choices=sorted(CROPS), default="cables", help="which native crops")
    p.add_argument("--lr-out", type=Path, help="also write the LR crops (crop0.png, ...) to this folder")
    p.add_argument("--operator", default="bicubic", help="the A passed to affsr upscale")
    p.add_argument("--zoom", type=int, default=1, help="nearest-neighbour enlargement of every panel")
    p.add_argument("-o", "--out", type=Path, default=Path("native-crops.png"))
    args = p.parse_args(argv)
    pairs = [c.split("=", 1) for c in args.column]
    crops = CROPS[args.crops]
    missing = sorted({str(c[0]) for c in crops if not c[0].is_file()})
    if missing or any(len(c) != 2 for c in pairs):
        print(
            f"{missing[0]}: not found (run examples/photos/make_corpus.py first)"
            if missing
            else "--column takes LABEL=WEIGHTS",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        lr = Path(tmp) / "lr"
        lr.mkdir()
        for i, (photo, left, top, n) in enumerate(crops):
            Image.open(photo).convert("RGB").crop((left, top, left + n, top + n)).save(lr / f"crop{i}.png")
        if args.lr_out:
            args.lr_out.mkdir(parents=True, exist_ok=True)
            for f in sorted(lr.iterdir()):
                (args.lr_out / f.name).write_bytes(f.read_bytes())
        outs = {}
        for j, (label, w) in enumerate(pairs):
            if Path(w).is_dir() and not (Path(w) / "generator.safetensors").is_file():  # made elsewhere (not a run)
                absent = [f"crop{i}.png" for i in range(len(crops)) if not (Path(w) / f"crop{i}.png").is_file()]
                if absent:
                    print(f"{w}: no {absent[0]} (name the results as --lr-out's crops)", file=sys.stderr)
                    return 2
                outs[label] = Path(w)
                continue
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "affsr_cli",
                    "upscale",
                    str(lr),
                    "-o",
                    f"{tmp}/{j}",
                    "-w",
                    w,
                    "--operator",
                    args.operator,
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                print(f"affsr upscale -w {w} failed: {r.stderr.strip()}", file=sys.stderr)
                return 1
            outs[label] = Path(tmp) / str(j)
        columns = ["LR (nearest)", "bicubic", *outs]
        rows, scores = [], {c: [] for c in columns[1:]}
        for i in range(len(crops)):
            x = Image.open(lr / f"crop{i}.png")
            side = 4 * x.width
            panels = {
                "LR (nearest)": x.resize((side, side), Image.NEAREST),
                "bicubic": x.resize((side, side), Image.BICUBIC),
                **{c: Image.open(d / f"crop{i}.png").convert("RGB") for c, d in outs.items()},
            }
            for c in columns[1:]:
                scores[c].append(overshoot(np.asarray(panels[c]), np.asarray(x)))
            rows.append([panels[c].resize((side * args.zoom,) * 2, Image.NEAREST) for c in columns])
    print("overshoot above the brightest LR pixel within 2 LR px (99.9th percentile, 8-bit levels), per crop:")
    for c, v in scores.items():
        print(f"  {c:>14}: " + "  ".join(f"{s:5.1f}" for s in v))
    gap, label, side = 4, 18, rows[0][0].width
    sheet = Image.new("RGB", (len(columns) * (side + gap) - gap, label + len(rows) * (side + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for j, c in enumerate(columns):
        draw.text((j * (side + gap) + 4, 3), c, fill="black")
        for i, row in enumerate(rows):
            sheet.paste(row[j], (j * (side + gap), label + i * (side + gap)))
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
