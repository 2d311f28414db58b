"""CPU training speed of the real loop (`affsr_cli.train.train`), batch 16: steps/s for affgan and
affmse with each generator preset (the efficient tiny/small/base with their bicubic A and default
strided discriminator, the paper's texture and imagenet with the Gaussian A; `--hr-grid` adds
texture on the HR grid; `--discriminators` times affgan with each named D preset), and the share of
a step spent in Π (its forward and backward timed alone on the same tensors, plus one forward for
affgan's discriminator step, over the step time).

    python benchmarks/train_step.py [--steps 30] [--size 128] [--generators tiny small base imagenet]
        [--discriminators auto small-aa texture-aa]
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import best  # benchmarks/timing.py

from affsr_cli.config import TrainConfig
from affsr_cli.downsample import Downsample
from affsr_cli.projection import OperatorSpec, Projection
from affsr_cli.train import train

EFFICIENT = ("tiny", "small", "base")


def projection_ms(
    batch: int, channels: int, size: int, spec: OperatorSpec, backward: bool = True, repeat: int = 20
) -> float:
    """Forward (+ backward) of Π on (batch, channels, size, size), best of `repeat`."""
    A = Downsample(spec)
    P = Projection(A)
    x = torch.rand(batch, channels, size // 4, size // 4)
    f = torch.rand(batch, channels, size, size, requires_grad=True)

    def step():
        out = P(f, x)
        if backward:
            out.sum().backward()

    return best(step, repeat) * 1e3


def steps_per_s(
    root: Path, method: str, generator: str, grid: str, steps: int, size: int, discriminator: str = "auto"
) -> float:
    cfg = TrainConfig(
        method=method,
        data=str(root / "images"),
        out=str(root / f"{method}-{generator}-{grid}"),
        preset="patch",
        **({"discriminator": discriminator} if method == "affgan" else {}),
        operator="bicubic" if generator in EFFICIENT else "gaussian",
        patch=size,
        generator=generator,
        grid=grid,
        batch_size=16,
        steps=steps,
        workers=1,
        log_every=min(5, steps // 2),  # ≥ 2 lines: the first, the warm-up, is not counted
        sample_every=10**9,
        checkpoint_every=10**9,
        overwrite=True,
    )
    out = train(cfg)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return float(np.median([r["images_per_s"] for r in lines[1:]])) / 16  # skip the first (warm-up)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--size", type=int, default=128, help="HR patch side")
    ap.add_argument("--generators", nargs="+", default=["tiny", "small", "base", "texture", "imagenet"])
    ap.add_argument("--hr-grid", action="store_true", help="also the texture generator on the HR grid")
    ap.add_argument(
        "--discriminators", nargs="+", default=["auto"], help="affgan's D presets to time (auto: the generator's)"
    )
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first logged interval is the warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        rng = np.random.default_rng(0)
        for i in range(4):
            Image.fromarray((rng.random((256, 256, 3)) * 255).astype(np.uint8)).save(root / "images" / f"{i}.png")
        n = args.size
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 16, {n}×{n} HR RGB "
            "(affgan runs Π once more, without gradient, for the discriminator step)"
        )
        print(
            f"{'method':8s} {'generator':9s} {'D':10s} {'A':8s} {'grid':4s} {'steps/s':>8s} {'ms/step':>8s} {'Π share':>8s}"
        )
        runs = [(g, "lr") for g in args.generators] + ([("texture", "hr")] if args.hr_grid else [])
        for generator, grid in runs:
            spec = OperatorSpec(4, family="bicubic" if generator in EFFICIENT else "gaussian")
            pi, pi_fwd = projection_ms(16, 3, n, spec), projection_ms(16, 3, n, spec, backward=False)
            for method, d in [("affgan", d) for d in args.discriminators] + [("affmse", "")]:
                sps = steps_per_s(root, method, generator, grid, args.steps, n, d)
                share = (pi + (pi_fwd if method == "affgan" else 0)) / (1e3 / sps)
                print(
                    f"{method:8s} {generator:9s} {d or '-':10s} {spec.family:8s} {grid:4s} {sps:8.2f} {1e3 / sps:8.1f} {share:8.1%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
