"""Compare the grass runs on the held-out strip: LR-MSE(x, Aŷ), PSNR, SSIM, high-frequency energy
ratio (1 = as much fine texture as the HR image) and a sample grid
(LR enlarged | bicubic | affmse | affgan | affgan-aa | affgan-px | softgan | affdg | affll | HR; runs that
are missing are left out; affgan-aa: affgan with the blur-pooled texture-aa discriminator; affgan-px: the
same with --pixel-weight 30 and --range-weight 1).

    python examples/grass/compare.py RUNS_DIR OUT_DIR   # reads RUNS_DIR/{affmse,affgan,affgan-aa,affgan-px,softgan,affdg,affll}
"""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affsr_cli import metrics
from affsr_cli.checkpoint import load_generator

RUNS = ("affmse", "affgan", "affgan-aa", "affgan-px", "softgan", "affdg", "affll")


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """PIL bicubic in float mode (its grid alignment is A's, centre)."""
    h, w = x.shape[-2:]
    up = Image.fromarray(x[0, 0].double().numpy().astype(np.float32), mode="F").resize(
        (w * scale, h * scale), Image.BICUBIC
    )
    return torch.from_numpy(np.asarray(up).copy()).clamp(0, 1)[None, None]


def main(runs: str, out: str):
    runs, out = Path(runs), Path(out)
    y = torch.from_numpy(np.asarray(Image.open("data/grass/test/grass.png"), dtype=np.float32) / 255)[None, None]
    models = {
        name: load_generator(runs / name / "generator.safetensors")
        for name in RUNS
        if (runs / name / "generator.safetensors").is_file()
    }
    A = next(iter(models.values())).A
    x = A(y)  # (1, 1, 128, 32)
    results = {"bicubic": bicubic(x, A.scale)}
    with torch.no_grad():
        torch.manual_seed(0)
        results.update({name: m(x) for name, m in models.items()})
    rows = ["| method | LR-MSE(x, Aŷ) | PSNR dB | SSIM | HF energy ratio |", "|---|---|---|---|---|"]
    for name, yhat in results.items():
        lr_mse = float((A(yhat.double()) - x.double()).square().mean())
        rows.append(
            f"| {name} | {lr_mse:.2e} | {metrics.psnr(y[0], yhat[0]):.2f} | {metrics.ssim(y[0], yhat[0]):.4f} | "
            f"{metrics.hf_ratio(y[0], yhat[0], A.scale):.3f} |"
        )
    table = "\n".join(rows)
    print(table)
    (out / "results.md").write_text(table + "\n")
    crop = (slice(96, 224), slice(0, 128))  # a 128×128 HR crop
    lr = x.repeat_interleave(A.scale, -2).repeat_interleave(A.scale, -1)
    panels = [lr, *results.values(), y]
    grid = torch.cat([p[0, 0][crop] for p in panels], -1).clamp(0, 1)
    img = Image.fromarray((grid.numpy() * 255).round().astype(np.uint8)).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST
    )
    labelled = Image.new("L", (img.width, img.height + 20), 255)  # a row of names above the panels
    labelled.paste(img, (0, 20))
    draw, side = ImageDraw.Draw(labelled), img.width // len(panels)
    for i, name in enumerate(["LR", *results, "HR"]):
        draw.text((i * side + side // 2, 10), name, fill=0, anchor="mm")
    labelled.save(out / "comparison.png")
    print(f"panels: LR (nearest) | {' | '.join(results)} | HR -> {out / 'comparison.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
