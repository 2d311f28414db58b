"""Float32 TIFF: the exact output of affsr (`--bits 32`; docs/promise.md), and its reader.

Written as a baseline little-endian TIFF 6.0: one uncompressed strip of chunky float32 samples
(SampleFormat 3 = IEEE float, BitsPerSample 32), PhotometricInterpretation RGB (3 or 4 channels) or
BlackIsZero (1 or 2), ExtraSamples for alpha, the ICC profile in tag 34675. tifffile, imageio, OpenCV
(`cv2.imread(path, cv2.IMREAD_UNCHANGED)`, channels in BGR order), GIMP, Krita and Photoshop read it.
Pillow has no multi-band float mode: it opens a one-channel float TIFF (mode "F") and nothing with
more bands, so gray outputs open in Pillow and colour ones do not (Pillow 13).

`info` and `load` read back exactly that layout (any file that is not one gives None, for Pillow to
try); images.read_image uses them, so `affsr eval`, `affsr project` and `affsr upscale` read float
outputs with their values outside [0, 1] kept.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import AffsrError

TIFF_LE = b"II*\0"


def header(shape: tuple[int, int, int], icc: bytes | None = None) -> bytes:
    """Header + IFD of a float32 (H, W, C) image whose samples follow at once, in one strip."""
    H, W, C = shape
    nbytes = H * W * C * 4
    if nbytes > 0xFFFF_0000:
        raise AffsrError(f"a {W}×{H}×{C} float32 image is over the 4 GB of a classic TIFF; write .npy")
    # (tag, type, values): type 3 SHORT, 4 LONG, 7 UNDEFINED (bytes); 273 StripOffsets is filled in below
    entries = [
        (256, 4, [W]),
        (257, 4, [H]),
        (258, 3, [32] * C),
        (259, 3, [1]),
        (262, 3, [2 if C >= 3 else 1]),
        (273, 4, [0]),
        (277, 3, [C]),
        (278, 4, [H]),
        (279, 4, [nbytes]),
        (284, 3, [1]),
    ]
    if C in (2, 4):
        entries.append((338, 3, [2]))  # ExtraSamples: unassociated alpha
    entries.append((339, 3, [3] * C))  # SampleFormat: IEEE float
    if icc:
        entries.append((34675, 7, icc))
    bodies = [bytes(v) if t == 7 else struct.pack(f"<{len(v)}{'H' if t == 3 else 'I'}", *v) for _, t, v in entries]
    extra_at = 8 + 2 + 12 * len(entries) + 4  # values over 4 bytes follow the IFD, word-aligned
    data_at = extra_at + sum(len(b) + len(b) % 2 for b in bodies if len(b) > 4)
    ifd, extra = b"", b""
    for (tag, kind, values), body in zip(entries, bodies):
        if tag == 273:
            body = struct.pack("<I", data_at)
        if len(body) > 4:
            field = struct.pack("<I", extra_at + len(extra))
            extra += body + b"\0" * (len(body) % 2)
        else:
            field = body.ljust(4, b"\0")
        ifd += struct.pack("<HHI", tag, kind, len(values)) + field
    return TIFF_LE + struct.pack("<IH", 8, len(entries)) + ifd + b"\0\0\0\0" + extra


def info(path: str | Path) -> tuple[int, int, int, int] | None:
    """(H, W, C, offset of the samples) when the file is a TIFF as `header` lays it out: little-endian,
    float32 samples, uncompressed, chunky, one strip that the file holds whole; else None. Reads the
    first IFD only, and no more of the file than its tags."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[:4] != TIFF_LE:
            return None
        (at,) = struct.unpack("<I", head[4:8])
        if at + 2 > size:
            return None
        fh.seek(at)
        (n,) = struct.unpack("<H", fh.read(2))
        raw = fh.read(12 * n)
        if len(raw) < 12 * n:
            return None
        tags = {}
        for i in range(n):
            tag, kind, count, field = struct.unpack("<HHI4s", raw[12 * i : 12 * i + 12])
            if kind not in (3, 4) or count < 1:
                continue
            width = 2 if kind == 3 else 4
            if count * width > 4:  # the values live elsewhere; the first is all we need (per-sample tags repeat it)
                (where,) = struct.unpack("<I", field)
                if where + width > size:
                    return None
                fh.seek(where)
                field = fh.read(width)
            tags[tag] = (count, struct.unpack("<H" if kind == 3 else "<I", field[:width])[0])
    value = lambda tag, default=None: tags.get(tag, (1, default))[1]  # noqa: E731
    H, W, C, offset = value(257, 0), value(256, 0), value(277, 1), value(273, 0)
    if (
        value(339) != 3
        or value(258) != 32
        or value(259, 1) != 1
        or value(284, 1) != 1
        or tags.get(273, (0,))[0] != 1
        or not (H > 0 and W > 0 and 1 <= C <= 4)
        or offset + H * W * C * 4 > size
    ):
        return None
    return H, W, C, offset


def load(path: str | Path, where: tuple[int, int, int, int]) -> np.ndarray:
    """The samples (H, W, C) float32 of a file that `info` accepted."""
    H, W, C, offset = where
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = np.fromfile(fh, "<f4", H * W * C)
    return data.reshape(H, W, C).astype(np.float32, copy=False)


def read(path: str | Path) -> np.ndarray | None:
    """(H, W, C) float32 of a float TIFF as `header` lays it out, or None."""
    where = info(path)
    return None if where is None else load(path, where)
