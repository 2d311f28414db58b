"""The training curve of one or more runs: validation PSNR (and SSIM) against the step, from each
run's metrics.jsonl, as a PNG (matplotlib: pip install 'affsr[corpus]').

    python examples/photos/plot_curve.py runs/v2-bicubic-affmse -o examples/photos/curve.png [--offset 2430]

The validation numbers are the ones `affsr train --val` logs (RGB PSNR of centre crops of the val
photos, the run's own degradation), not `affsr eval`'s Y-PSNR with a 4-pixel crop; they show the
trend. `--offset N` shifts a run's steps by N (a run started with --init from a run of N steps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curve(run: Path) -> list[tuple[int, float, float]]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "val_psnr" in d:
            rows.append((d["step"], d["val_psnr"], d.get("val_ssim", float("nan"))))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each with metrics.jsonl)")
    p.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--offset", type=int, nargs="*", default=[], help="step offset per run (default 0)")
    p.add_argument("--title", default="validation PSNR during training")
    args = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: matplotlib is not installed (pip install 'affsr[corpus]')", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for i, run in enumerate(args.runs):
        if not (run / "metrics.jsonl").is_file():
            print(f"error: {run} has no metrics.jsonl", file=sys.stderr)
            return 2
        rows = curve(run)
        if not rows:
            print(f"error: {run} logged no validation numbers (train with --val)", file=sys.stderr)
            return 2
        off = args.offset[i] if i < len(args.offset) else 0
        ax.plot([s + off for s, _, _ in rows], [v for _, v, _ in rows], marker="o", ms=3, label=run.name)
    ax.set_xlabel("generator step (batch 16)")
    ax.set_ylabel("val PSNR (dB, RGB, centre crops)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
