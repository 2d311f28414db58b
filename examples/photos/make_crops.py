"""Before/after crops of 4× checkpoints on held-out photos: each row is one crop,
LR (nearest-neighbour ×4) | bicubic | one column per checkpoint | HR. By default the shipped pair
trained for the operator: `affmse-x4`/`affgan-x4` written to examples/photos/crops.png (bicubic),
`affmse-x4-gaussian`/`affgan-x4-gaussian` to examples/photos/crops-gaussian.png (gaussian);
`--column LABEL=WEIGHTS` (repeated) names the columns instead (a shipped name or a path), or
`--column LABEL=DIR`: a folder of results made elsewhere, named as the validation photos (e.g.
Real-ESRGAN by run_realesrgan.py, then `affsr project`).

    python examples/photos/make_crops.py [--val data/photos/val] [--operator bicubic|gaussian]
    python examples/photos/make_crops.py --column SPAN=weights/import/spanx4-ch52.safetensors \
        --column "AffMSE v3=affmse-x4" -o /tmp/sheet.png
    python examples/photos/make_crops.py --column "AffGAN=affgan-x4" --column "Real-ESRGAN=runs/realesrgan/sr" \
        --column "Real-ESRGAN + project=runs/realesrgan/projected" -o examples/photos/crops-gan.png

Each HR photo y is downsampled with the operator A of `--operator` (default bicubic, which equals
Pillow's bicubic resize; `gaussian`: the paper's σ = 1.5) and rounded to 8 bits: that LR file x is
what every method gets, and `affsr upscale --operator` makes each output consistent with it. The
AffMSE and AffGAN columns are the 8-bit PNG files `affsr upscale` writes (the real command,
consistency box fit included), so what is shown is what a user gets. The script also prints the
LR-PSNR of the saved files (A applied to the file against x) over all validation photos, for 8-
and 16-bit output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from affsr_cli.images import read_image, write_image
from affsr_cli.projection import OperatorSpec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# (file in the validation folder, HR crop left, top): regions with texture and edges
CROPS = [
    ("skimage-chelsea.png", 130, 40),
    ("skimage-astronaut.png", 160, 60),
    ("skimage-coffee.png", 250, 60),
    ("mate-Wood.png", 700, 500),
    ("plasma-OneStandsOut.png", 600, 400),
    ("lomiri-Picture_0B_by_freespace.png", 700, 500),
]
SUFFIX = {"bicubic": "", "gaussian": "-gaussian"}  # the shipped pair trained for each operator


def upscale(lr: Path, weights: Path, out: Path, bits: int, operator: str) -> dict[str, float]:
    """Runs `affsr upscale` on the folder `lr`; returns each saved file's LR-PSNR by file stem."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "upscale",
            str(lr),
            "-o",
            str(out),
            "-w",
            str(weights),
            "--bit-depth",
            str(bits),
            "--operator",
            operator,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise SystemExit(f"affsr upscale failed: {r.stderr.strip()}")
    return {Path(row["input"]).stem: row["lr_psnr"] for row in json.loads(r.stdout)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--val", type=Path, default=ROOT / "data" / "photos" / "val", help="validation photos (make_corpus.py)"
    )
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder with the shipped files")
    p.add_argument("--size", type=int, default=128, help="HR crop side (px)")
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement of every panel")
    p.add_argument(
        "-o", "--out", type=Path, help="the sheet (default: crops.png, crops-gaussian.png beside this script)"
    )
    p.add_argument("--operator", default="bicubic", choices=list(SUFFIX), help="the A that makes the LR inputs")
    p.add_argument(
        "--column",
        action="append",
        metavar="LABEL=WEIGHTS",
        help="a checkpoint column (default: the shipped pair), or LABEL=DIR: results made elsewhere (a run folder of affsr train is a checkpoint)",
    )
    args = p.parse_args(argv)
    suffix = SUFFIX[args.operator]
    photos = sorted(p for p in args.val.iterdir() if p.suffix == ".png") if args.val.is_dir() else []
    if not photos:
        print(
            f"{args.val}: no validation photos (.png) (run examples/photos/make_corpus.py first, or pass --val)",
            file=sys.stderr,
        )
        return 2
    pairs = [c.split("=", 1) for c in args.column or [f"AffMSE=affmse-x4{suffix}", f"AffGAN=affgan-x4{suffix}"]]
    if any(len(c) != 2 for c in pairs):
        print("--column takes LABEL=WEIGHTS", file=sys.stderr)
        return 2
    run = lambda w: (Path(w) / "generator.safetensors").is_file()  # noqa: E731  a run folder of affsr train
    folders = {label: Path(w) for label, w in pairs if Path(w).is_dir() and not run(w)}  # results made elsewhere
    weights = {
        label: Path(w) / "generator.safetensors"
        if run(w)
        else Path(w)
        if "/" in w or w.endswith(".safetensors")
        else args.weights / f"{w}.safetensors"
        for label, w in pairs
        if label not in folders
    }
    missing = [str(w) for w in weights.values() if not w.is_file()]
    if missing:
        print(
            f"{', '.join(missing)}: no such weights file (the shipped ones are in weights/; --weights, --column)",
            file=sys.stderr,
        )
        return 2
    columns = ["LR (nearest)", "bicubic", *[label for label, _ in pairs], "HR"]
    out = args.out or HERE / f"crops{suffix}.png"
    A, _ = OperatorSpec(4, family=args.operator).build()
    n, z = args.size, args.zoom
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lr = Path(tmp) / "lr"
        lr.mkdir()
        for path in photos:  # the LR input x of every validation photo, 8-bit PNG
            y = read_image(path).pixels  # (C, H, W) in [0, 1]
            write_image(lr / path.name, A(y[None].double())[0].float(), bits=8)
        print(
            f"LR-PSNR (dB) of the files affsr upscale saved, A applied to each against its input, {len(photos)} photos:"
        )
        for i, (label, w) in enumerate(weights.items()):
            for bits in (8, 16):
                psnr = upscale(lr, w, Path(tmp) / f"{i}-{bits}", bits, args.operator)
                v = sorted(psnr.values())
                print(
                    f"  {label} ({w.stem}) {bits:2d}-bit PNG: min {v[0]:.1f}, median {v[len(v) // 2]:.1f}, max {v[-1]:.1f}"
                )
        for name, left, top in CROPS:
            if not (lr / name).exists():
                print(f"skipping {name}: not in {args.val}", file=sys.stderr)
                continue
            xl = Image.open(lr / name)
            panels = {
                "HR": Image.open(args.val / name).convert("RGB"),
                "LR (nearest)": xl.resize((xl.width * 4, xl.height * 4), Image.NEAREST),
                "bicubic": xl.resize((xl.width * 4, xl.height * 4), Image.BICUBIC),
                **{c: Image.open(Path(tmp) / f"{i}-8" / name) for i, c in enumerate(weights)},
                **{c: Image.open(d / name) for c, d in folders.items() if (d / name).exists()},
            }
            if any(c not in panels for c in columns):
                print(f"skipping {name}: not in every --column folder", file=sys.stderr)
                continue
            box = (left, top, left + n, top + n)
            rows.append([panels[c].convert("RGB").crop(box).resize((n * z, n * z), Image.NEAREST) for c in columns])
    if not rows:
        print("no validation photos found: run examples/photos/make_corpus.py first", file=sys.stderr)
        return 2
    gap, label = 4, 18
    side = n * z
    sheet = Image.new("RGB", (len(columns) * (side + gap) - gap, label + len(rows) * (side + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for j, col in enumerate(columns):
        named = col in weights and not args.column  # the shipped pair: say which file; --column labels stand alone
        draw.text((j * (side + gap) + 4, 3), f"{col} ({weights[col].stem})" if named else col, fill="black")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            sheet.paste(im, (j * (side + gap), label + i * (side + gap)))
    sheet.save(out, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
