"""The PNG codec: 8 or 16 bits per sample, plain or Adam7. Pillow reads 16-bit colour PNGs as 8-bit and
writes 8-bit ones in four times our time, so images.py reads and writes PNG here (Pillow reads the rest).
Arrays are (H, W, C) uint8 or uint16, C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA."""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ImageFileError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAND_BYTES = 1 << 20  # rows deflated per thread when writing PNG: at least this many bytes


def check_pixels(path: Path, width: int, height: int, limit: int):
    """Refuse an image of more than `limit` pixels (a decompression bomb) or of none, before decoding it."""
    if width * height > limit:
        raise ImageFileError(
            f"{path}: {width}×{height} pixels is over the limit of {limit} (refused as a possible decompression bomb)"
        )
    if width < 1 or height < 1:
        raise ImageFileError(f"{path}: the image has no pixels ({width}×{height})")


# Adam7's passes: (y0, x0, dy, dx), the pass takes rows y0, y0 + dy, ... and columns x0, x0 + dx, ...
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
# Pillow's C unfilter, by bytes per pixel: [(mode, rawmode, the bytes of each pixel that the decode keeps)]. The
# filters are byte-wise with a stride of bpp bytes, so any unpacker of bpp bytes a pixel serves; the 16-bit
# ones keep one byte of each big-endian sample, byte 0 (";16B", the high) or byte 1 (";16L", the low).
_PIL_DECODES = {
    1: [("L", "L", [0])],
    2: [("LA", "LA", [0, 1])],
    3: [("RGB", "RGB", [0, 1, 2])],
    4: [("RGBA", "RGBA", [0, 1, 2, 3])],
    6: [("RGB", "RGB;16B", [0, 2, 4]), ("RGB", "RGB;16L", [1, 3, 5])],
    8: [("RGBA", "RGBA;16B", [0, 2, 4, 6]), ("RGBA", "RGBA;16L", [1, 3, 5, 7])],
}


def read_png(path: Path, limit: int) -> np.ndarray:
    """Decode a PNG of colour type 0, 2, 4 or 6 at bit depth 8 or 16: (H, W, C) uint8 or uint16."""
    data = path.read_bytes()
    pos, header, idat = len(PNG_SIGNATURE), None, []
    while True:
        if pos + 12 > len(data):
            raise ImageFileError(f"{path}: truncated PNG (the file ends before its IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body, crc = data[pos + 8 : pos + 8 + length], data[pos + 8 + length : pos + 12 + length]
        if len(crc) < 4:
            raise ImageFileError(f"{path}: truncated PNG (chunk {kind!r} is cut short)")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageFileError(f"{path}: corrupt PNG (bad checksum in chunk {kind!r})")
        if kind == b"IHDR":
            if length != 13:
                raise ImageFileError(f"{path}: corrupt PNG (its IHDR chunk is {length} bytes, not 13)")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ImageFileError(f"{path}: corrupt PNG (no IHDR chunk)")
    width, height, depth, ctype, _, _, interlace = header
    check_pixels(path, width, height, limit)
    if depth not in (8, 16) or ctype not in (0, 2, 4, 6):
        raise ImageFileError(f"{path}: unsupported PNG (bit depth {depth}, colour type {ctype})")
    if interlace > 1:
        raise ImageFileError(f"{path}: unsupported PNG (interlace method {interlace})")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = channels * depth // 8  # bytes per pixel
    passes = [
        (y0, x0, dy, dx, -(-(height - y0) // dy), -(-(width - x0) // dx))  # + the pass's h, w
        for y0, x0, dy, dx in (ADAM7 if interlace else ((0, 0, 1, 1),))
    ]
    passes = [p for p in passes if p[4] > 0 and p[5] > 0]  # an empty pass has no bytes, not even filter bytes
    size = sum(h * (1 + w * bpp) for *_, h, w in passes)
    compressed = b"".join(idat)
    try:
        raw = zlib.decompressobj().decompress(compressed, size)  # bounded output
    except zlib.error as e:
        raise ImageFileError(f"{path}: corrupt PNG ({e})") from None
    if len(raw) < size:
        raise ImageFileError(f"{path}: truncated PNG (image data ends early)")
    rows, start = [], 0  # each pass's rows: (h, 1 + w·bpp) uint8, the filter byte first
    for *_, h, w in passes:
        rows.append(np.frombuffer(raw, np.uint8, h * (1 + w * bpp), start).reshape(h, 1 + w * bpp))
        start += h * (1 + w * bpp)
    kind = max(int(r[:, 0].max()) for r in rows)
    if kind > 4:
        raise ImageFileError(f"{path}: corrupt PNG (unknown row filter {kind})")
    out = _unfilter_pil(raw, (width, height, bpp), interlace, passes, rows)
    if out is None:
        out = np.empty((height, width, bpp), np.uint8)
        for (y0, x0, dy, dx, _, _), r in zip(passes, rows):
            out[y0::dy, x0::dx] = _unfilter(r, bpp)
    dtype = np.dtype(">u2") if depth == 16 else np.uint8
    return out.view(dtype).reshape(height, width, channels).astype(np.uint16 if depth == 16 else np.uint8)


def _unfilter_pil(
    raw: bytes, shape: tuple[int, int, int], interlace: int, passes: list, rows: list
) -> np.ndarray | None:
    """The unfiltered bytes (H, W, bpp) uint8 by Pillow's decoder, from the inflated `raw`; None where it cannot
    make them, or makes them wrong on rows spread over each pass (a Pillow with other decoders or unpackers)."""
    width, height, bpp = shape
    out = np.empty((height, width, bpp), np.uint8)
    try:
        compressed = zlib.compress(raw, 0)  # stored: Pillow's inflate is a copy, of the very bytes checked here
        for mode, rawmode, keep in _PIL_DECODES[bpp]:
            im = Image.frombytes(mode, (width, height), compressed, "zip", rawmode, interlace)
            out[..., keep] = np.asarray(im).reshape(height, width, len(keep))
    except MemoryError:
        raise
    except Exception:  # no "zip" decoder, no such rawmode, other decoder arguments: the numpy route
        return None
    good = all(_consistent(r, out[y0::dy, x0::dx]) for (y0, x0, dy, dx, _, _), r in zip(passes, rows))
    return out if good else None


def _predict(kinds: tuple, k: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """The predictor of PNG filter k (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth; `kinds`: those that occur) from
    the bytes a (left), b (up), c (up-left), int16, 0 off the image; k broadcasts against them."""
    pred = None
    for kind in kinds:
        if kind == 4:
            bc, ac = b - c, a - c
            pa, pb, pc = np.abs(bc), np.abs(ac), np.abs(bc + ac)  # |p − a|, |p − b|, |p − c|, p = a + b − c
            v = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        else:
            v = (a + b) >> 1 if kind == 3 else b if kind == 2 else a if kind == 1 else 0
        pred = v if pred is None else np.where(k == kind, v, pred)
    return pred


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the PNG row filters: rows (h, 1 + w·bpp) uint8, the filter byte first -> (h, w, bpp) uint8.

    Byte (i, x) needs (i, x−1), (i−1, x) and (i−1, x−1), so the anti-diagonals i + x = d are done in turn,
    each at once: h + w − 1 numpy steps. In the (h+1, w+1) array with a zero row and column in front,
    flattened, diagonal d is a slice of step w, and its left, up, up-left are that slice moved by 1, w+1, w+2."""
    h, w = rows.shape[0], (rows.shape[1] - 1) // bpp
    kinds = tuple(np.unique(rows[:, 0]).tolist())
    k = np.repeat(rows[:, :1], bpp, axis=1)  # (h, bpp): each row's filter
    raw = np.zeros((h + 1, w + 1, bpp), np.uint8)
    raw[1:, 1:] = rows[:, 1:].reshape(h, w, bpp)
    out = np.zeros((h + 1, w + 1, bpp), np.int16)
    raw, flat = raw.reshape(-1, bpp), out.reshape(-1, bpp)
    for d in range(h + w - 1):
        i0, i1 = max(0, d - w + 1), min(h, d + 1)  # the rows that diagonal d crosses
        s = (i0 + 1) * (w + 1) + d - i0 + 1  # flat index of (i0, d − i0); e: one past (i1 − 1, d − i1 + 1)
        e = s + (i1 - i0 - 1) * w + 1
        left, up, up_left = (flat[s - m : e - m : w] for m in (1, w + 1, w + 2))
        flat[s:e:w] = (raw[s:e:w] + _predict(kinds, k[i0:i1], left, up, up_left)) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def _consistent(rows: np.ndarray, out: np.ndarray, samples: int = 9) -> bool:
    """Whether `out` (h, w, bpp) uint8 unfilters `rows` on `samples` rows spread from first to last: each byte
    is its row's byte plus its filter's prediction from the decoded bytes, mod 256."""
    h, w, bpp = out.shape
    i = np.unique(np.linspace(0, h - 1, min(h, samples)).round().astype(int))
    o = out[i].astype(np.int16)
    b = np.where((i > 0)[:, None, None], out[i - 1], 0).astype(np.int16)
    a, c = np.zeros_like(o), np.zeros_like(b)
    a[:, 1:], c[:, 1:] = o[:, :-1], b[:, :-1]
    k = rows[i, :1, None]
    pred = _predict(tuple(np.unique(k).tolist()), k, a, b, c)
    return np.array_equal((rows[i, 1:].reshape(-1, w, bpp) + pred) & 0xFF, o)


def png_bytes(a: np.ndarray, level: int = 6, *, threads: int | None = None, icc: bytes | None = None) -> bytes:
    """The PNG file of (H, W, C) uint8 or uint16 (see png_pieces)."""
    return b"".join(png_pieces(a, level, threads=threads, icc=icc))


def write_png(path: Path, a: np.ndarray, level: int = 6, *, icc: bytes | None = None):
    """Write the PNG of `a` to `path` piece by piece (no copy of the whole file in memory)."""
    with open(path, "wb") as fh:
        fh.writelines(png_pieces(a, level, icc=icc))


def png_pieces(a: np.ndarray, level: int = 6, *, threads: int | None = None, icc: bytes | None = None) -> list:
    """The PNG file of (H, W, C) uint8 or uint16, in pieces to be written in order: the Up filter on
    every row (files as small as Pillow's per-row choice on photos, in a quarter of its time at
    level 1), zlib `level`, an iCCP chunk when `icc` is given.

    Bands of rows are deflated on `threads` threads (default: the CPUs, at most 8; zlib releases the
    GIL) and joined into the one zlib stream PNG asks for, as pigz does: each band but the last ends
    on a byte boundary (Z_SYNC_FLUSH) and one Adler-32 of all rows closes the stream. A band restarts
    the deflate window, which costs < 0.1 % of the size."""
    height, width, channels = a.shape
    depth = 16 if a.dtype == np.uint16 else 8
    raw = np.ascontiguousarray(a, ">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(height, -1)
    lines = np.empty((height, 1 + raw.shape[1]), np.uint8)  # (H, 1 + row bytes): filter type 2, then the row
    lines[:, 0] = 2
    lines[:1, 1:] = raw[:1]
    np.subtract(raw[1:], raw[:-1], out=lines[1:, 1:])  # Up: uint8 arithmetic wraps mod 256, as the filter asks
    data = memoryview(lines.reshape(-1))
    threads = threads or min(8, os.cpu_count() or 1)
    bands = max(1, min(threads, len(data) // BAND_BYTES))
    step = -(-height // bands) * lines.shape[1]
    parts = [data[i : i + step] for i in range(0, len(data), step)]  # views, no copies

    def deflate(i: int) -> bytes:
        z = zlib.compressobj(level, zlib.DEFLATED, -15)  # raw deflate: the zlib header and trailer are ours
        return z.compress(parts[i]) + z.flush(zlib.Z_FINISH if i == len(parts) - 1 else zlib.Z_SYNC_FLUSH)

    if len(parts) == 1:
        body = [deflate(0)]
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            body = list(pool.map(deflate, range(len(parts))))
    stream = [b"\x78\x01", *body, struct.pack(">I", zlib.adler32(data))]  # zlib header: deflate, 32 K window
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    profile = _chunk(b"iCCP", [b"ICC profile\0\0" + zlib.compress(icc)]) if icc else []
    return [
        PNG_SIGNATURE,
        *_chunk(b"IHDR", [struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)]),
        *profile,
        *_chunk(b"IDAT", stream),
        *_chunk(b"IEND", []),
    ]


def _chunk(kind: bytes, content: list) -> list:
    """A PNG chunk whose data is the concatenation of `content`, as pieces."""
    crc = zlib.crc32(kind)
    for piece in content:
        crc = zlib.crc32(piece, crc)
    return [struct.pack(">I", sum(map(len, content))) + kind, *content, struct.pack(">I", crc)]
