"""Speed of reading 16-bit RGB PNGs (png.read_png), in seconds per megapixel, for each row filter, beside
Pillow's own decode of the same image as 8-bit (the reference: Pillow's C decoder, one pass) in the same run.

    python benchmarks/png16.py [--megapixels 2] [--repeats 3]

The image is photo-like (smooth gradients + noise at ~1/2000 of full scale), every row with the same filter
("mixed": a random filter per row), zlib level 6. Columns: read_png as it runs (Pillow's C unfilter, two
decodes for the high and the low bytes); read_png's numpy route (taken where that Pillow route is unavailable);
Pillow reading the 8-bit file; their ratio. Each time is the best of --repeats, the file read from a temporary folder.
"""

import argparse
import struct
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image
from timing import best  # benchmarks/timing.py

from affsr_cli import png as I

FILTERS = {"none": 0, "sub": 1, "up": 2, "average": 3, "paeth": 4, "mixed": None}


def encode(a: np.ndarray, kind: int | None, rng) -> bytes:
    """PNG of a (H, W, 3) uint8/uint16, every row filtered by `kind` (None: a random filter per row)."""
    height, width, _ = a.shape
    depth = 16 if a.dtype == np.uint16 else 8
    bpp = 3 * depth // 8
    x = np.ascontiguousarray(a, ">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(height, -1).astype(np.int16)
    left, up, up_left = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    left[:, bpp:], up[1:], up_left[1:, bpp:] = x[:, :-bpp], x[:-1], x[:-1, :-bpp]
    p = left + up - up_left
    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    kinds = rng.integers(0, 5, height) if kind is None else np.full(height, kind)
    predictor = np.stack([np.zeros_like(x), left, up, (left + up) // 2, paeth])[kinds, np.arange(height)]
    lines = np.concatenate([kinds[:, None], (x - predictor) % 256], axis=1).astype(np.uint8)

    def chunk(name: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))

    return (
        I.PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(lines.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def photo(height: int, width: int, rng) -> np.ndarray:
    y, x, ch = np.meshgrid(np.arange(height) / height, np.arange(width) / width, np.arange(3), indexing="ij")
    smooth = 0.5 + 0.3 * np.sin(9 * x + 2 * ch) * np.cos(7 * y - ch) + 0.15 * (x - y)
    return np.clip(smooth * 65535 + rng.normal(0, 65535 / 2000, smooth.shape), 0, 65535).round().astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(args.megapixels * 1e6 / width))
    mp = width * height / 1e6
    a16 = photo(height, width, rng)
    a8 = ((a16.astype(np.uint32) + 128) // 257).astype(np.uint8)  # the same image at 8 bits
    print(f"16-bit RGB PNG, {width}×{height} ({mp:.2f} MP), seconds per megapixel (best of {args.repeats})")
    print(f"{'filter':>8} {'MB':>6} {'read_png':>9} {'numpy route':>12} {'Pillow 8-bit':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        f16, f8 = Path(tmp, "a16.png"), Path(tmp, "a8.png")
        for name, kind in FILTERS.items():
            f16.write_bytes(encode(a16, kind, np.random.default_rng(1)))
            f8.write_bytes(encode(a8, kind, np.random.default_rng(1)))
            assert np.array_equal(I.read_png(f16, 10**9), a16)
            ours = best(lambda: I.read_png(f16, 10**9), args.repeats) / mp
            with mock.patch.object(I, "_unfilter_pil", lambda *args: None):
                assert np.array_equal(I.read_png(f16, 10**9), a16)
                numpy_route = best(lambda: I.read_png(f16, 10**9), max(1, args.repeats - 1)) / mp

            def pillow():
                with Image.open(f8) as im:
                    return np.asarray(im)

            assert np.array_equal(pillow(), a8)
            reference = best(pillow, args.repeats) / mp
            print(
                f"{name:>8} {f16.stat().st_size / 1e6:6.1f} {ours:9.3f} {numpy_route:12.3f} {reference:13.3f} "
                f"{ours / reference:5.1f}×"
            )


if __name__ == "__main__":
    main()
