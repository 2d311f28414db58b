"""Time of Π_x f for a 1024×1024 RGB output (LR 256×256), fitted and exact A⁺, beside PIL's
bicubic 256→1024 upscale measured in the same run.

    python benchmarks/projection.py [--repeat 20] [--threads N]
"""
import argparse
import time

import numpy as np
import torch
from PIL import Image

from affsr_cli.pinv import fit_local_pinv
from affsr_cli.projection import Downsample, OperatorSpec, Projection


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = OperatorSpec()
    A = Downsample(spec)
    B, _ = fit_local_pinv(spec)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 256, 256, generator=g)
    f = torch.rand(1, 3, 1024, 1024, generator=g)
    exact, fitted = Projection(A), Projection(A, B)
    t0 = time.perf_counter()
    exact(f, x)  # the first call inverts the two 256×256 Gram matrices (cached afterwards)
    first = time.perf_counter() - t0
    img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    rows = [
        ("PIL bicubic 256→1024 (reference)", *best_of(lambda: img.resize((1024, 1024), Image.BICUBIC), args.repeat)),
        ("Π exact A⁺, float32", *best_of(lambda: exact(f, x), args.repeat)),
        ("Π fitted 5×5 A⁺, float32", *best_of(lambda: fitted(f, x), args.repeat)),
        ("A alone (Gaussian + stride)", *best_of(lambda: A(f), args.repeat)),
    ]
    with torch.no_grad():
        worst = float((A(exact(f, x)) - x).abs().max())
    ref = rows[0][1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 1024×1024×3 output, best and median of {args.repeat}")
    print(f"{'operation':36s} {'best ms':>9s} {'median ms':>10s} {'× PIL bicubic':>14s}")
    for name, best, med in rows:
        print(f"{name:36s} {best * 1e3:9.2f} {med * 1e3:10.2f} {best / ref:14.2f}")
    print(f"first exact call incl. Gram inverses: {first * 1e3:.1f} ms; max|AΠf − x| = {worst:.2e}")


if __name__ == "__main__":
    main()
