"""Rings around point sources: synthetic star fields upscaled by each checkpoint, and the depth of the
dark ring each draws beside a star (weights/README.md, "Where Hubble's lattice comes from").

    python examples/photos/star_rings.py affmse-x4 affgan-x4 runs/RUN/generator.safetensors

Four 256² fields of a noisy 10-level sky (σ 2 levels per channel) with 60 stars each: Moffat profiles
(α 0.8–2 px, β 2.5, peak 0.15–0.9, slightly tinted) at random sub-pixel positions: not the Gaussian spots
of `affsr train --points`, so a network trained with those is not measured on its own augmentation.
x = A y of each checkpoint's operator, rounded to 8 bits; ŷ = the checkpoint's Π f(x). The ring: the
darkest luma pixel 2–4 px from a star's centre minus the median 8–12 px out, in 8-bit levels, averaged
over the 240 stars; the fields themselves score their noise's share (about −1.3).
"""

import sys

import numpy as np
import torch

from affsr_cli.checkpoint import load_generator
from affsr_cli.images import quantize
from affsr_cli.registry import SHIPPED

H = W = 256


def field(rng: np.random.Generator) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    y = np.full((3, H, W), 0.04) + rng.normal(0, 0.008, (3, H, W))
    rows, cols = np.mgrid[0:H, 0:W]
    stars = []
    for _ in range(60):
        cy, cx = rng.uniform(8, H - 8), rng.uniform(8, W - 8)
        alpha, peak = rng.uniform(0.8, 2.0), rng.uniform(0.15, 0.9)
        spot = peak * (1 + ((rows - cy) ** 2 + (cols - cx) ** 2) / alpha**2) ** -2.5
        y += spot[None] * rng.uniform(0.85, 1.0, (3, 1, 1))
        stars.append((cy, cx))
    return torch.tensor(np.clip(y, 0, 1), dtype=torch.float32), stars


def rings(img: torch.Tensor, stars) -> list[float]:
    lum = img.mean(0).numpy() * 255
    rows, cols = np.mgrid[0:H, 0:W]
    out = []
    for cy, cx in stars:
        r = np.hypot(rows - cy, cols - cx)
        out.append(float(lum[(r >= 2) & (r <= 4)].min() - np.median(lum[(r >= 8) & (r <= 12)])))
    return out


def main(paths: list[str]):
    rng = np.random.default_rng(7)
    fields = [field(rng) for _ in range(4)]
    depth = [v for y, stars in fields for v in rings(y, stars)]
    print(f"the fields: ring {np.mean(depth):+.2f} levels (median {np.median(depth):+.2f})")
    for path in paths:
        model = load_generator(SHIPPED[path].path if path in SHIPPED else path)
        depth = []
        for y, stars in fields:
            x = quantize(model.A(y[None].double()).float())
            with torch.no_grad():
                depth += rings(model(x).clamp(0, 1)[0], stars)
        print(f"{path}: ring {np.mean(depth):+.2f} levels (median {np.median(depth):+.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
