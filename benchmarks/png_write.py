"""Speed and size of writing 8-bit RGB PNGs: png.png_bytes (the Up filter, zlib bands deflated on threads)
beside Pillow's encoder (its per-row filter choice) at the same zlib levels, in the same run.

    python benchmarks/png_write.py [--sizes 1024 4096] [--repeats 5]

The image is what `affsr upscale` writes: a photo (the bundled astronaut) reduced 4× and enlarged back by
Pillow's bicubic to side × side. Each time is the best of --repeats, encoding to memory (no disk).
"""

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from timing import best  # benchmarks/timing.py

from affsr_cli import png as I

ROOT = Path(__file__).resolve().parents[1]


def photo(side: int) -> np.ndarray:
    im = Image.open(ROOT / "examples" / "val" / "astronaut.png").convert("RGB")
    return np.asarray(im.resize((side // 4, side // 4), Image.BICUBIC).resize((side, side), Image.BICUBIC))


def pillow(a: np.ndarray, level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    cpus = min(8, os.cpu_count() or 1)
    print(f"{os.cpu_count()} CPUs; Pillow {Image.__version__}; ms and MB, best of {args.repeats}")
    print(f"{'side':>6s} {'level':>5s} {'encoder':32s} {'ms':>8s} {'MB':>7s} {'vs Pillow':>9s}")
    for side in args.sizes:
        a = photo(side)
        for level in (1, 6):
            ref_s = best(lambda: pillow(a, level), args.repeats)
            ref_mb = len(pillow(a, level)) / 1e6
            rows = [("Pillow (per-row filters)", ref_s, ref_mb)]
            for threads in sorted({1, cpus}):
                s = best(lambda: I.png_bytes(a, level, threads=threads), args.repeats)
                rows.append(
                    (
                        f"png_bytes, Up, {threads} thread{'s' * (threads > 1)}",
                        s,
                        len(I.png_bytes(a, level, threads=threads)) / 1e6,
                    )
                )
            for name, s, mb in rows:
                print(f"{side:6d} {level:5d} {name:32s} {1e3 * s:8.1f} {mb:7.3f} {ref_s / s:8.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
