"""The invented-detail figure of the README (docs/invented.png): for crops of held-out photos, reduced
4× by Pillow's bicubic resize: the LR input | the shipped AffGAN's output | the map of what it invented,
(I − A⁺A)ŷ | the same map of the original photo (what the truth held beyond the input) | the original.
Maps on invented.py's fixed scale. Optional last row group: a stochastic checkpoint's spread map.

    python examples/invented/make_figure.py [--weights affgan-x4] [--out docs/invented.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affsr_cli import infer, invented

try:
    import skimage.data
except ImportError:
    sys.exit("make_figure: needs scikit-image (pip install scikit-image) for its photos")

ROOT = Path(__file__).resolve().parents[2]
CROPS = [("chelsea", (96, 40, 352, 232)), ("astronaut", (152, 16, 408, 208))]  # scikit-image's photos, HR crops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="affgan-x4")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "invented.png")
    args = ap.parse_args()
    up = infer.Upscaler.load(args.weights)
    rows, labels = (
        [],
        ["LR input (nearest)", f"{args.weights}", "invented by it", "held by the photo", "original photo"],
    )
    for name, box in CROPS:
        y = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").crop(box)
        x = y.resize((y.width // 4, y.height // 4), Image.BICUBIC)
        xt = torch.from_numpy(np.array(x)).permute(2, 0, 1).float() / 255
        out = up(xt)
        y_hat = invented.as_float(out.levels, 8)
        truth = invented.as_float(np.array(y), 8)
        part, held = invented.split(y_hat, up.A, up.pinv), invented.split(truth, up.A, up.pinv)
        print(
            f"{name}: invented share {invented.share(part, y_hat):.3f}, photo's own {invented.share(held, truth):.3f}"
        )
        gray = lambda a: Image.fromarray(a[..., 0]).convert("RGB")  # noqa: E731
        rows.append(
            [
                x.resize(y.size, Image.NEAREST),
                Image.fromarray(out.levels),
                gray(invented.invented_map(part)),
                gray(invented.invented_map(held)),
                y,
            ]
        )
    w, pad, head = rows[0][0].width, 4, 18
    sheet = Image.new("RGB", (5 * w + 4 * pad, head + sum(r[0].height for r in rows) + pad * (len(rows) - 1)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(labels):
        draw.text((j * (w + pad) + 4, 3), label, fill="black")
    top = head
    for r in rows:
        for j, im in enumerate(r):
            sheet.paste(im, (j * (w + pad), top))
        top += r[0].height + pad
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
