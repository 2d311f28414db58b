"""examples/table2/results.md's table from the eval JSON that train.sh writes (runs/t2-eval.json),
beside the paper's Table 2 (CelebA 64 → 16 px, Gaussian A).

    python examples/table2/table.py [runs/t2-eval.json]
"""

import json
import sys
from pathlib import Path

PAPER = {
    "mse": (26.30, 0.90, "8.0e-05"),
    "affmse": (26.53, 0.91, "1.6e-10"),
    "softgan": (21.11, 0.76, "2.3e-03"),
    "affgan": (23.02, 0.81, "9.1e-10"),
}  # PSNR, SSIM, ℓMSE(x, Aŷ)
ORDER = ["spanx4-ch52", "mse", "softmse", "affmse", "gan", "softgan", "affgan", "bicubic"]


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/t2-eval.json")
    try:
        means = json.loads(path.read_text())["means"]
    except (OSError, ValueError, KeyError) as e:
        print(f"table: cannot read {path} ({e}); run examples/table2/train.sh first", file=sys.stderr)
        return 1
    rows = {name.split("/")[0].removeprefix("t2-"): v for name, v in means.items()}
    print(
        "| method | Y-PSNR | Y-SSIM | ℓMSE(x, Aŷ) | LR-PSNR | HF ratio | lattice | NIQE ↓ | paper PSNR | paper SSIM | paper ℓMSE |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ORDER + sorted(set(rows) - set(ORDER)):
        if name not in rows:
            continue
        m, p = rows[name], PAPER.get(name, ("", "", ""))
        cell = lambda k, f: "—" if m.get(k) is None else format(m[k], f)  # noqa: E731
        print(
            f"| {'SPAN ch52 (the start) + Π' if name.startswith('span') else name} | {cell('psnr', '.2f')} | "
            f"{cell('ssim', '.4f')} | {cell('lr-mse-x', '.1e')} | {cell('lr-psnr-x', '.1f')} | {cell('hf-ratio', '.3f')} | "
            f"{cell('lattice', '.2f')} | {cell('niqe', '.2f')} | {p[0]} | {p[1]} | {p[2]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
