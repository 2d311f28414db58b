"""What `affsr upscale` needs beside images.py: ICC profiles, integer sample arrays written with
their profile, float32 outputs (TIFF, .npy) for exact values, and a saved file read back as stored
(uint8, uint16 or float32, without conversion) to measure its consistency.

Arrays are (H, W, C): C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Every write goes through
weights.atomic_write (temporary file, then rename; nothing is overwritten without `overwrite`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from . import floattiff
from .images import WRITE_FORMATS, read_png, write_png
from .weights import atomic_write

FLOAT_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".npy": "NPY"}  # float32 outputs
LOSSY = ("JPEG",)  # WebP is written lossless
LEVEL_BITS = {"PNG": (8, 16), "TIFF": (8,), "JPEG": (8,), "BMP": (8,), "WEBP": (8,)}


def source_info(path: str | os.PathLike) -> tuple[bytes | None, int]:
    """(embedded ICC profile or None, number of frames) of an image file that Pillow can open."""
    try:
        with Image.open(path) as im:
            return im.info.get("icc_profile") or None, getattr(im, "n_frames", 1)
    except Exception:  # read_image reports unreadable files; here we only look
        return None, 1


def icc_fits(icc: bytes | None, channels: int) -> bool:
    """Whether the profile describes the output's colour space (a CMYK profile does not fit RGB output)."""
    return icc is not None and len(icc) >= 20 and icc[16:20] == (b"RGB " if channels >= 3 else b"GRAY")


def write_levels(path: str | os.PathLike, a: np.ndarray, *, icc: bytes | None = None, overwrite: bool = False,
                 quality: int = 95) -> Path:
    """Write integer samples (H, W, C) uint8 (any format) or uint16 (PNG) with an optional ICC profile."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    bits = 16 if a.dtype == np.uint16 else 8
    if fmt is None:
        raise ValueError(f"{path}: cannot write '{path.suffix}' images; use one of {', '.join(sorted(WRITE_FORMATS))}, .npy")
    if bits not in LEVEL_BITS[fmt]:
        raise ValueError(f"{path}: {fmt} cannot hold {bits}-bit samples here (16 bits: PNG; float32: TIFF or .npy)")
    if a.shape[2] in (2, 4) and fmt in ("JPEG", "BMP"):
        raise ValueError(f"{path}: {fmt} files have no alpha channel; write PNG, TIFF or WebP")

    def write(tmp: Path):
        if fmt == "PNG":  # ours: 16-bit colour (Pillow cannot), and 8-bit in a quarter of Pillow's time
            write_png(tmp, a, level=3 if bits == 16 else 1, icc=icc)
            return
        im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
        extra = {"icc_profile": icc} if icc else {}
        if fmt == "WEBP":
            extra.update(lossless=True, exact=True, quality=100)
        elif fmt == "JPEG":
            extra.update(quality=quality)
        im.save(tmp, format=fmt, **extra)

    return atomic_write(path, write, overwrite)


def write_float(path: str | os.PathLike, a: np.ndarray, *, icc: bytes | None = None, overwrite: bool = False) -> Path:
    """Write float32 samples (H, W, C) as .npy (the array as is) or as an uncompressed float32 TIFF
    (floattiff.py: which readers open it; Pillow only one-channel ones)."""
    path = Path(path)
    fmt = FLOAT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: float32 output is written as .tif, .tiff or .npy")
    a = np.ascontiguousarray(a, np.float32)
    if fmt == "NPY":
        def write(tmp: Path):
            with open(tmp, "wb") as fh:
                np.save(fh, a, allow_pickle=False)
    else:
        def write(tmp: Path):
            with open(tmp, "wb") as fh:
                fh.write(floattiff.header(a.shape, icc))
                fh.write(a.data)
    return atomic_write(path, write, overwrite)


def read_stored(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """The samples of a file this module wrote, as stored: (H, W, C) uint8, uint16 or float32."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    with open(path, "rb") as fh:
        head = fh.read(33)
    if suffix in (".tif", ".tiff") and head[:4] == floattiff.TIFF_LE:
        float_tiff = floattiff.read(path)
        if float_tiff is not None:
            return float_tiff
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16:
        return read_png(path, max_pixels or Image.MAX_IMAGE_PIXELS)
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a
