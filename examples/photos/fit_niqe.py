"""Fit NIQE's pristine model (ν₁, Σ₁) on the corpus's HR training photos and write it to the
safetensors file that ships inside the package (affsr_cli/niqe_pristine.safetensors).

    python examples/photos/fit_niqe.py --data data/photos [--out affsr_cli/niqe_pristine.safetensors] [--overwrite]

The corpus (make_corpus.py) keeps its training photos as 256×256 tiles at a stride of 224, named
NAME_TOP_LEFT.png, and drops flat tiles. Each photo is put back together from its tiles at the size
that sources.csv records; the pixels no tile covers are NaN, so that every patch they reach (through
the MSCN window and the ½ downscale) is left out. Then affsr_cli.niqe: luma on 0–255, 96×96 patches at
two scales, the patches sharper than 0.75 × the photo's sharpest, and the MVG of all the photos' kept
patches. Only the photos of the `train` split are read: the validation photos stay unseen. The corpus
is only read, never written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from affsr_cli import niqe as N  # noqa: E402
from affsr_cli.weights import save_atomic  # noqa: E402

TILE = re.compile(r"^(?P<name>.+)_(?P<top>\d{4})_(?P<left>\d{4})\.png$")


def photos(data: Path) -> list[tuple[str, tuple[int, int]]]:
    """(name, (height, width)) of every training photo in sources.csv."""
    with open(data / "sources.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    out = []
    for r in rows:
        w, h = (int(v) for v in r["size"].split("x"))
        out.append((r["name"], (h, w)))
    return out


def reassemble(tiles: list[Path], size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Luma on 0–255 of the photo the tiles were cut from, NaN where no tile lies; and the share covered."""
    canvas = np.full(size, np.nan)
    for t in tiles:
        m = TILE.match(t.name)
        top, left = int(m["top"]), int(m["left"])
        with Image.open(t) as im:
            a = np.asarray(im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB"), dtype=np.float64) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        y = N.luma255(torch.from_numpy(a))
        canvas[top : top + y.shape[0], left : left + y.shape[1]] = y
    return canvas, float(np.isfinite(canvas).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "photos", help="the corpus (make_corpus.py --out)")
    p.add_argument("--out", type=Path, default=N.PRISTINE, help="the safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    train = args.data / "train"
    if not (args.data / "sources.csv").is_file() or not train.is_dir():
        print(
            f"error: {args.data} is not a corpus (needs sources.csv and train/; build it with make_corpus.py)",
            file=sys.stderr,
        )
        return 1
    by_photo: dict[str, list[Path]] = {}
    for t in sorted(train.glob("*.png")):
        m = TILE.match(t.name)
        if m:
            by_photo.setdefault(m["name"], []).append(t)
    start, feats, used = time.time(), [], []
    for name, size in photos(args.data):
        if name not in by_photo:
            print(f"error: no tiles of {name} in {train}", file=sys.stderr)
            return 1
        y, covered = reassemble(by_photo[name], size)
        kept = N.pristine_features(y)
        feats.append(kept)
        used.append(name)
        print(f"{name:45s} {size[1]}×{size[0]}  {covered:5.1%} covered  {len(kept):3d} sharp patches", flush=True)
    feats = np.concatenate(feats)
    mean, cov = N.mvg(feats)
    n = int(np.isfinite(feats).all(axis=1).sum())
    csv_hash = hashlib.sha256((args.data / "sources.csv").read_bytes()).hexdigest()[:16]
    meta = {
        "kind": "niqe-pristine",
        "fitted_on": f"{len(used)} HR training photos of the affsr photo corpus (examples/photos/make_corpus.py: "
        "freely licensed Debian wallpapers and scikit-image/scikit-learn/matplotlib sample photos, "
        "longer side ≤ 1600 px by Lanczos), reassembled from data/photos/train tiles; no validation photo",
        "photos": ",".join(used),
        "patches": str(n),
        "sources_csv_sha256": csv_hash,
        "patch": str(N.PATCH),
        "sharpness_threshold": str(N.SHARPNESS_THRESHOLD),
        "conventions": "BT.601 luma on 0-255 rounded; MSCN 7x7 Gaussian sigma 7/6, C = 1, edges replicated; "
        "scale 2 = MATLAB-style antialiased bicubic 1/2; 36 features (GGD alpha, var; AGGD nu, eta, "
        "var_l, var_r of H, V, D1, D2 products, cyclic in the patch) per scale order 1, 2",
        "script": "examples/photos/fit_niqe.py",
        "date": date.today().isoformat(),
    }
    save_atomic(args.out, {"mean": torch.from_numpy(mean), "cov": torch.from_numpy(cov)}, meta, args.overwrite)
    print(
        f"{n} patches of {len(used)} photos -> {args.out} ({time.time() - start:.0f} s); "
        f"cond(Σ₁) = {np.linalg.cond(cov):.3g}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileExistsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
