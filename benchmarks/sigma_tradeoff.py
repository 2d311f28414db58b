"""The σ trade-off behind the default operator (docs/operators.md "Choosing σ"), at scale 4 with 9 taps.

For each σ: attenuation of A at the LR Nyquist frequency (anti-aliasing; PIL's bicubic 4×
reduction printed as the reference), the condition number of AAᵀ (2-D), ℓ1+ℓ2 of the exact A⁺
merely cut to a 5×5 LR support (how local A⁺ really is), and the fitted 5×5 A⁺: ℓ1+ℓ2, its
distance to A⁺, and its consistency at the borders (the interior is exact for every σ).

    python benchmarks/sigma_tradeoff.py
"""

import dataclasses

import numpy as np
import torch
from PIL import Image

from affsr_cli.downsample import Downsample
from affsr_cli.pinv import (
    FIT_LR_SIZE,
    LocalPinv,
    _penrose_residuals,
    consistency_report,
    fit_local_pinv,
    truncated_exact,
)
from affsr_cli.projection import OperatorSpec


def nyquist_gain(row: np.ndarray, s: int) -> float:
    """|H| at the LR Nyquist frequency of a 1-D kernel sampled on the HR grid."""
    k = np.arange(len(row)) - (len(row) - 1) / 2
    return float(abs((row * np.exp(-1j * np.pi / s * k)).sum()) / row.sum())


def pil_bicubic_row(s: int = 4, n: int = 256) -> np.ndarray:
    """One LR row's weights of PIL's bicubic n→n/s reduction, probed with single bright columns."""
    resp = np.zeros(n)
    for j in range(n):
        a = np.zeros((8, n), np.float32)
        a[:, j] = 1
        resp[j] = np.asarray(Image.fromarray(a, mode="F").resize((n // s, 8), Image.BICUBIC))[4, n // s // 2]
    return resp[resp != 0]


def main():
    s = 4
    print(f"reference: PIL bicubic 4× reduction, |H| at LR Nyquist = {nyquist_gain(pil_bicubic_row(s), s):.3f}")
    head = ("σ", "|H| Nyq", "cond AAᵀ", "cut A⁺ ℓ1+ℓ2", "fit ℓ1+ℓ2", "fit−exact", "fit border", "fit s")
    print(" ".join(f"{h:>13s}" for h in head))
    for sigma in (0.8, 1.0, 1.2, 1.5, 2.0):
        spec = OperatorSpec(sigma=sigma)
        periodic = dataclasses.replace(spec, boundary="circular")
        A = Downsample(periodic)
        M = A.matrix(64)
        ev = torch.linalg.eigvalsh(M @ M.T)
        g = torch.Generator().manual_seed(1)
        y = torch.randn(8, 1, s * FIT_LR_SIZE, s * FIT_LR_SIZE, generator=g, dtype=torch.float64)
        x = torch.randn(8, 1, FIT_LR_SIZE, FIT_LR_SIZE, generator=g, dtype=torch.float64)
        r1, r2 = _penrose_residuals(A, LocalPinv(periodic, 5, truncated_exact(spec, 5)), y, x)
        B, rep = fit_local_pinv(spec)
        row = [
            sigma,
            nyquist_gain(spec.taps().numpy(), s),
            float(ev.max() / ev.min()) ** 2,
            float(r1.pow(2).mean() + r2.pow(2).mean()),
            rep.l1 + rep.l2,
            rep.distance_to_exact,
            consistency_report(B)["consistency_fitted"],
            rep.seconds,
        ]
        print(
            f"{row[0]:13.2f} {row[1]:13.3f} {row[2]:13.2f} "
            + " ".join(f"{v:13.2e}" for v in row[3:7])
            + f" {row[7]:13.1f}"
        )


if __name__ == "__main__":
    main()
