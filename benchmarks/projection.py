"""Π_x f per operator family for a 1024×1024 RGB output (LR 256×256), beside PIL's bicubic 256→1024
upscale measured in the same run; with each family's A⁺ ripple on a flat image and cond(AAᵀ).

    python benchmarks/projection.py [--repeat 20] [--threads N]

Ripple: A⁺ of a flat LR image (0.5) should be flat; the table gives max |A⁺x − 0.5| / 0.5 away from
the borders (64 LR pixels in) and over the whole image. cond(AAᵀ) of the 1-D 256-sample operator
(that of the 2-D A Aᵀ is its square).
"""

import argparse

import numpy as np
import torch
from PIL import Image
from timing import timings  # benchmarks/timing.py

from affsr_cli.downsample import Downsample
from affsr_cli.pinv import fit_local_pinv
from affsr_cli.projection import FAMILIES, ExactPinv, OperatorSpec, Projection

SPECS = [OperatorSpec(4, family=f) for f in FAMILIES] + [OperatorSpec(4, family="bicubic", boundary="matlab")]


def best_of(fn, repeat):
    times = timings(fn, repeat)
    return min(times), float(np.median(times))


def ripple(spec: OperatorSpec) -> tuple[float, float]:
    up = ExactPinv(Downsample(spec))(torch.full((1, 256, 256), 0.5, dtype=torch.float64))[0]
    inner = up[256:-256, 256:-256]
    return float((inner - 0.5).abs().max() / 0.5), float((up - 0.5).abs().max() / 0.5)


def cond(spec: OperatorSpec, n: int = 256) -> float:
    M = Downsample(spec).matrix(n)
    return float(torch.linalg.cond(M @ M.T))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 256, 256, generator=g)
    f = torch.rand(1, 3, 1024, 1024, generator=g)
    img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    ref = best_of(lambda: img.resize((1024, 1024), Image.BICUBIC), args.repeat)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; 1024×1024×3 output, best and median of {args.repeat}"
    )
    print(f"PIL bicubic 256→1024 (reference): best {ref[0] * 1e3:.2f} ms, median {ref[1] * 1e3:.2f} ms\n")
    head = (
        f"{'operator':22s} {'taps':>4s} {'Π best ms':>10s} {'median':>8s} {'× PIL':>6s} {'A ms':>6s} "
        f"{'max|AΠf−x|':>11s} {'ripple inner':>12s} {'ripple all':>10s} {'cond(AAᵀ)':>10s}"
    )
    print(head)
    for spec in SPECS:
        A = Downsample(spec)
        exact = Projection(A)
        exact(f, x)  # the first call inverts the two 256×256 Gram matrices (cached afterwards)
        best, med = best_of(lambda: exact(f, x), args.repeat)
        a_best, _ = best_of(lambda: A(f), args.repeat)
        with torch.no_grad():
            worst = float((A(exact(f, x)) - x).abs().max())
        inner, whole = ripple(spec)
        name = f"{spec.family}/{spec.boundary}"
        print(
            f"{name:22s} {spec.kernel_size:4d} {best * 1e3:10.2f} {med * 1e3:8.2f} {best / ref[0]:6.2f} {a_best * 1e3:6.2f} "
            f"{worst:11.2e} {inner * 100:11.4f}% {whole * 100:9.2f}% {cond(spec):10.2f}"
        )
    spec = OperatorSpec()
    fitted = Projection(Downsample(spec), fit_local_pinv(spec)[0])
    best, med = best_of(lambda: fitted(f, x), args.repeat)
    print(f"\nΠ with the fitted 5×5 A⁺ (App. B) of the Gaussian: best {best * 1e3:.2f} ms, median {med * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
