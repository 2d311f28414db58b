"""Does the right inverse in Π_x paint the s-pixel lattice? Π_x f = f − R(Af − x) for two right
inverses R of A (AR = I, so both give Aŷ = x exactly): the pseudo-inverse A⁺ = Aᵀ(AAᵀ)⁻¹ that affsr
uses, and the smooth B = U(AU)⁻¹ with U the bicubic interpolation (so the correction Bx is a smooth
image, never a sum of stride-s kernels). docs/training.md "Why AffGAN paints a lattice" quotes its table.

    python examples/photos/right_inverse.py [--hr data/photos/val] [--crop 384]

For each held-out photo y (a centre crop), x = A y, and four kinds of f: 0 (ŷ = R x: near where a
generator without a skip from x, as the paper's, starts), the bicubic interpolation U x, y plus white
noise (σ = 0.05), and the network output f (before Π) of the shipped v2 AffGAN
(`affgan-x4`, bicubic A only; it was trained for that A). Prints the lattice ratio (metrics.lattice:
the period-s share of ŷ's energy over y's) and PSNR of f, Π_A⁺ f and Π_B f, means over the photos.
(AU)⁻¹ is applied by Richardson iteration c ← c + r − AUc (AU's response lies in (0, 1]); the
script checks that max |AΠ_B f − x| is at float precision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from affsr_cli import checkpoint, metrics
from affsr_cli.projection import OperatorSpec


def load(path: Path, crop: int) -> torch.Tensor:
    y = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float()[None] / 255
    H, W = y.shape[-2:]
    c = min(crop, H, W) // 4 * 4
    return y[..., (H - c) // 2 : (H - c) // 2 + c, (W - c) // 2 : (W - c) // 2 + c]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hr", type=Path, default=Path("data/photos/val"))
    p.add_argument("--crop", type=int, default=384)
    p.add_argument("--iterations", type=int, default=300, help="Richardson iterations for (AU)⁻¹")
    args = p.parse_args()
    torch.manual_seed(0)
    photos = sorted(args.hr.glob("*.png"))
    if not photos:
        raise SystemExit(f"error: no PNG photos in {args.hr} (python examples/photos/make_corpus.py --out data/photos)")
    gan = checkpoint.load_generator(checkpoint.resolve_weights("affgan-x4")).eval()
    s = 4
    U = lambda t: F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)  # noqa: E731
    print(f"{len(photos)} photos, centre {args.crop}² crops; lattice ratio (1 = the photo's own) and PSNR (dB), means")
    print(f"{'A':9} {'f':14} {'lattice f':>10} {'Π_A⁺ f':>8} {'Π_B f':>8} | {'PSNR f':>7} {'Π_A⁺ f':>7} {'Π_B f':>7}")
    for family in ("gaussian", "bicubic"):
        spec = OperatorSpec(s, family=family)
        A, pinv = spec.build()
        kinds = {
            "0 (ŷ = R x)": lambda x, y: torch.zeros_like(y),
            "bicubic U x": lambda x, y: U(x),
            "y + noise": lambda x, y: y + 0.05 * torch.randn_like(y),
        }
        if family == gan.spec.family:
            kinds["affgan-x4's f"] = lambda x, y: gan(x, return_f=True)[1]
        for kind, make in kinds.items():
            rows, worst = [], 0.0
            for path in photos:
                y = load(path, args.crop)
                with torch.no_grad():
                    x = A(y)
                    f = make(x, y)
                    r = A(f) - x
                    c = r.clone()
                    for _ in range(args.iterations):
                        c += r - A(U(c))
                    outs = (f, f - pinv(r), f - U(c))
                    worst = max(worst, float((A(outs[2]) - x).abs().max()))
                lat = [metrics.lattice(y[0], o[0].clamp(0, 1), s) for o in outs]
                psnr = [metrics.psnr(y[0], o[0].clamp(0, 1)) for o in outs]
                rows.append(lat + psnr)
            m = np.mean(rows, 0)
            print(
                f"{family:9} {kind:14} {m[0]:10.2f} {m[1]:8.2f} {m[2]:8.2f} | {m[3]:7.2f} {m[4]:7.2f} {m[5]:7.2f}"
                f"   (max |AΠ_B f − x| {worst:.1e})"
            )


if __name__ == "__main__":
    main()
