"""16-bit PNM (PPM, PGM) reading: Pillow reads them as 8-bit, so images.read_image decodes them here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ImageFileError
from .png import check_pixels


def _pnm_header(data: bytes) -> tuple[list[int], int]:
    """([width, height, maxval], offset of the first sample) of a binary or plain PPM/PGM (P2, P3, P5, P6)."""
    fields, pos = [], 2
    while len(fields) < 3:
        while pos < len(data) and (data[pos : pos + 1].isspace() or data[pos : pos + 1] == b"#"):
            if data[pos : pos + 1] == b"#":
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end
            pos += 1
        end = pos
        while end < len(data) and data[end : end + 1].isdigit():
            end += 1
        if end == pos:
            raise ImageFileError("corrupt PNM header")
        fields.append(int(data[pos:end]))
        pos = end
    return fields, pos + 1  # one whitespace byte ends the header


def is_pnm16(head: bytes) -> bool:
    """A colour PPM (P3, P6) of more than 8 bits a sample, which Pillow reads as 8 bits (its gray PGMs it reads
    in 16): decoded here, as 16-bit colour PNG is."""
    if head[:2] not in (b"P3", b"P6"):
        return False
    try:
        return _pnm_header(head + b" ")[0][2] > 255
    except ImageFileError:
        return False  # a header longer than the head (comments): Pillow decides


def read_pnm16(path: Path, limit: int) -> np.ndarray:
    """(H, W, 3) uint16 of a colour PPM with maxval 256 … 65535; samples k/maxval scaled to 16 bits as Pillow
    scales PGMs (k·65535/maxval, rounded)."""
    data = path.read_bytes()
    (width, height, maxval), start = _pnm_header(data)
    check_pixels(path, width, height, limit)
    if not 0 < maxval <= 65535:
        raise ImageFileError(f"{path}: unsupported PPM (maxval {maxval})")
    count = width * height * 3
    if data[:2] == b"P6":
        if len(data) < start + 2 * count:
            raise ImageFileError(f"{path}: truncated PPM (image data ends early)")
        k = np.frombuffer(data, ">u2", count, start)
    else:
        k = np.array(data[start - 1 :].split()[:count], dtype=np.int64)
        if k.size < count:
            raise ImageFileError(f"{path}: truncated PPM (image data ends early)")
    if k.max() > maxval:
        raise ImageFileError(f"{path}: corrupt PPM (a sample over its maxval {maxval})")
    scaled = k.astype(np.uint32) if maxval == 65535 else (k.astype(np.uint64) * 65535 * 2 + maxval) // (2 * maxval)
    return scaled.astype(np.uint16).reshape(height, width, 3)
