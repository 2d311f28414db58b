"""Image files <-> float tensors (C, H, W) in [0, 1], without losing 8- or 16-bit precision.

Reading: gray stays one channel; RGB, palette, CMYK, YCbCr, LAB and HSV become three (Pillow's
conversions; embedded ICC profiles are not applied); alpha (RGBA, LA, palette transparency) is
returned apart; the EXIF orientation is applied. 8-bit samples map k -> k/255, 16-bit k -> k/65535.
Pillow reads 16-bit colour PNGs as 8-bit, so those (and 16-bit gray + alpha) are decoded here.
Float32 samples (affsr's `--bits 32` TIFF, floattiff.py; one-band float TIFFs) keep their values,
outside [0, 1] too (Picture.bits 32).

Writing: PNG (8 or 16 bits, gray, gray + alpha, RGB, RGBA), JPEG, TIFF, BMP, WebP (8 bits), to a
temporary name beside the target, then renamed; an existing file is kept unless `overwrite`.
Every problem with a file is a ValueError that names it.
"""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import floattiff
from .weights import atomic_write  # re-exported: images.atomic_write

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm", ".gif", ".tga")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP", ".webp": "WEBP"}
MAX_SIDE = {"WEBP": 16383, "JPEG": 65535, "PNG": 2**31 - 1}  # pixels a side each format can hold
MAX_BYTES = {"TIFF": 0xFFFF_0000, "BMP": 0xFFFF_0000}  # classic TIFF and BMP: 32-bit offsets and sizes
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION = 0x0112  # EXIF tag
BAND_BYTES = 1 << 20  # rows deflated per thread when writing PNG: at least this many bytes


class ImageFileError(ValueError):
    """A file that cannot be read as an image; the message names the file."""


def check_output_size(path: str | os.PathLike, fmt: str, width: int, height: int, channels: int, bits: int = 8):
    """Refuse, before any work, an output its format cannot hold: WebP stops at 16,383 pixels a side (a WebP
    input ≥ 4,096 wide failed after the whole upscale), JPEG at 65,535, classic TIFF and BMP at 4 GB."""
    side = MAX_SIDE.get(fmt)
    if side is not None and max(width, height) > side:
        raise ValueError(f"{path}: a {width}×{height} image is over the {side:,} pixels a side that {fmt} can hold; "
                         "write png or tif (--ext)")
    size = width * height * channels * max(bits, 8) // 8
    if fmt in MAX_BYTES and size > MAX_BYTES[fmt]:
        raise ValueError(f"{path}: a {width}×{height} image is {size / 2**30:.1f} GB, over the 4 GB that a {fmt} file "
                         "can hold; write png (--ext)" + (" or npy" if bits == 32 else ""))


def walk_images(root: str | os.PathLike, suffixes=SUFFIXES, *, hidden: bool = True,
                skip_folder=None) -> tuple[list[Path], list[str]]:
    """(image files under the folder `root`, sorted; the folders that could not be read, as "FOLDER: why").
    Links to folders are not followed (a `self -> .` link would go round forever); `hidden` False leaves out
    names starting with "."; `skip_folder(path)` True leaves a folder and all under it out (run folders)."""
    root = Path(root)
    found, unreadable = [], []

    def failed(e: OSError):
        unreadable.append(f"{e.filename}: cannot read this folder ({e.strerror})")

    for folder, subfolders, files in os.walk(root, onerror=failed):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if (hidden or not d.startswith("."))
                               and not (skip_folder is not None and skip_folder(here / d)))
        found += [here / f for f in files if (hidden or not f.startswith(".")) and Path(f).suffix.lower() in suffixes
                  and (here / f).is_file()]
    return sorted(found), unreadable


@dataclass
class Picture:
    pixels: torch.Tensor  # (C, H, W) in [0, 1] (float files: as stored, may leave it); C = 1 (gray) or 3 (RGB)
    alpha: torch.Tensor | None  # (1, H, W) in [0, 1], or None when the file has no transparency
    bits: int  # 8 or 16: bits per sample in the file; 32: float32 samples (floattiff.py, Pillow's mode F)

    @property
    def levels(self) -> int:
        return 1 if self.bits == 32 else 2**self.bits - 1


def read_image(path: str | os.PathLike, dtype: torch.dtype = torch.float32, max_pixels: int | None = None) -> Picture:
    """Read an image file; refuse files over `max_pixels` (default: Pillow's bomb limit, ~89 Mpx)."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: {'a folder, not an image file' if path.is_dir() else 'no such file'}")
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    with open(path, "rb") as fh:
        head = fh.read(33)
    if not head:
        raise ImageFileError(f"{path}: the file is empty")
    try:
        floats = floattiff.info(path) if head.startswith(floattiff.TIFF_LE) else None  # affsr's --bits 32 TIFF
        if floats is not None:
            _check_size(path, floats[1], floats[0], limit)
            array, orientation = floattiff.load(path, floats), 1
        elif head.startswith(PNG_SIGNATURE) and len(head) == 33 and head[24] == 16 and head[25] in (2, 4, 6):
            array, orientation = read_png(path, limit), _orientation(path)  # 16-bit colour or gray + alpha
        else:
            array, orientation = (read_pnm16(path, limit), 1) if _pnm16(head) else _read_pil(path, limit)
    except ImageFileError:
        raise
    except MemoryError:
        raise ImageFileError(f"{path}: not enough memory to decode the image") from None
    except Exception as e:  # Pillow reports corrupt data as OSError, SyntaxError, struct.error, ...
        raise ImageFileError(f"{path}: corrupt or truncated image ({e or type(e).__name__})") from None
    array = _orient(array, orientation)  # (H, W, C) uint8, uint16 or float32
    bits = 32 if array.dtype == np.float32 else 16 if array.dtype == np.uint16 else 8
    if bits == 32 and not np.isfinite(array).all():
        raise ImageFileError(f"{path}: the image holds NaN or infinite samples")
    planes = array.transpose(2, 0, 1).astype(np.float64 if dtype == torch.float64 else np.float32)  # (C, H, W)
    if bits != 32:  # float samples are values already
        planes /= 2**bits - 1
    t = torch.from_numpy(planes).to(dtype)
    colour, alpha = (t[:-1], t[-1:]) if t.shape[0] in (2, 4) else (t, None)
    return Picture(colour, alpha, bits)


def _pnm_header(data: bytes) -> tuple[list[int], int]:
    """([width, height, maxval], offset of the first sample) of a binary or plain PPM/PGM (P2, P3, P5, P6)."""
    fields, pos = [], 2
    while len(fields) < 3:
        while pos < len(data) and (data[pos:pos + 1].isspace() or data[pos:pos + 1] == b"#"):
            if data[pos:pos + 1] == b"#":
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end
            pos += 1
        end = pos
        while end < len(data) and data[end:end + 1].isdigit():
            end += 1
        if end == pos:
            raise ImageFileError("corrupt PNM header")
        fields.append(int(data[pos:end]))
        pos = end
    return fields, pos + 1  # one whitespace byte ends the header


def _pnm16(head: bytes) -> bool:
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
    _check_size(path, width, height, limit)
    if not 0 < maxval <= 65535:
        raise ImageFileError(f"{path}: unsupported PPM (maxval {maxval})")
    count = width * height * 3
    if data[:2] == b"P6":
        if len(data) < start + 2 * count:
            raise ImageFileError(f"{path}: truncated PPM (image data ends early)")
        k = np.frombuffer(data, ">u2", count, start)
    else:
        k = np.array(data[start - 1:].split()[:count], dtype=np.int64)
        if k.size < count:
            raise ImageFileError(f"{path}: truncated PPM (image data ends early)")
    if k.max() > maxval:
        raise ImageFileError(f"{path}: corrupt PPM (a sample over its maxval {maxval})")
    scaled = k.astype(np.uint32) if maxval == 65535 else (k.astype(np.uint64) * 65535 * 2 + maxval) // (2 * maxval)
    return scaled.astype(np.uint16).reshape(height, width, 3)


def _read_pil(path: Path, limit: int) -> tuple[np.ndarray, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(path, im.width, im.height, limit)
                im.load()
                return _pil_array(path, im), im.getexif().get(ORIENTATION, 1)
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: not an image file that Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageFileError(f"{path}: refused as a possible decompression bomb ({e})") from None


def _pil_array(path: Path, im: Image.Image) -> np.ndarray:
    """(H, W, C) uint8 or uint16 with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise ImageFileError(f"{path}: 32-bit integer samples are not supported (save as 8- or 16-bit PNG)")
        return a.astype(np.uint16)[..., None]
    if mode in ("RGB", "RGBA") and im.format == "TIFF" and 16 in tuple(im.tag_v2.get(258, (8,))):
        raise ImageFileError(f"{path}: 16-bit colour TIFF, which Pillow reads only as 8 bits; save it as a 16-bit PNG")
    if mode == "F":  # one float32 band (Pillow has no float mode of more bands)
        return np.asarray(im, np.float32)[..., None]
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("1", "La"):
        im = im.convert("L" if mode == "1" else "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if mode == "RGBa" else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a


def _check_size(path: Path, width: int, height: int, limit: int):
    if width * height > limit:
        raise ImageFileError(f"{path}: {width}×{height} pixels is over the limit of {limit} "
                         "(refused as a possible decompression bomb)")
    if width < 1 or height < 1:
        raise ImageFileError(f"{path}: the image has no pixels ({width}×{height})")


def _orientation(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return im.getexif().get(ORIENTATION, 1)
    except Exception:  # no readable EXIF: the upright default
        return 1


_ORIENT = {  # EXIF orientation -> the transform that makes the image upright (as ImageOps.exif_transpose)
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    return _ORIENT[orientation](a) if orientation in _ORIENT else a


# -- PNG, 8 or 16 bits per sample, plain or Adam7 (Pillow reads the rest) ---------------------------

# Adam7's passes: (y0, x0, dy, dx), the pass takes rows y0, y0 + dy, ... and columns x0, x0 + dx, ...
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
# Pillow's C unfilter, by bytes per pixel: [(mode, rawmode, the bytes of each pixel that the decode keeps)]. The
# filters are byte-wise with a stride of bpp bytes, so any unpacker of bpp bytes a pixel serves; the 16-bit
# ones keep one byte of each big-endian sample, byte 0 (";16B", the high) or byte 1 (";16L", the low).
_PIL_DECODES = {1: [("L", "L", [0])], 2: [("LA", "LA", [0, 1])], 3: [("RGB", "RGB", [0, 1, 2])],
                4: [("RGBA", "RGBA", [0, 1, 2, 3])],
                6: [("RGB", "RGB;16B", [0, 2, 4]), ("RGB", "RGB;16L", [1, 3, 5])],
                8: [("RGBA", "RGBA;16B", [0, 2, 4, 6]), ("RGBA", "RGBA;16L", [1, 3, 5, 7])]}


def read_png(path: Path, limit: int) -> np.ndarray:
    """Decode a PNG of colour type 0, 2, 4 or 6 at bit depth 8 or 16: (H, W, C) uint8 or uint16."""
    data = path.read_bytes()
    pos, header, idat = len(PNG_SIGNATURE), None, []
    while True:
        if pos + 12 > len(data):
            raise ImageFileError(f"{path}: truncated PNG (the file ends before its IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
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
    _check_size(path, width, height, limit)
    if depth not in (8, 16) or ctype not in (0, 2, 4, 6):
        raise ImageFileError(f"{path}: unsupported PNG (bit depth {depth}, colour type {ctype})")
    if interlace > 1:
        raise ImageFileError(f"{path}: unsupported PNG (interlace method {interlace})")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = channels * depth // 8  # bytes per pixel
    passes = [(y0, x0, dy, dx, -(-(height - y0) // dy), -(-(width - x0) // dx))  # + the pass's h, w
              for y0, x0, dy, dx in (ADAM7 if interlace else ((0, 0, 1, 1),))]
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


def _unfilter_pil(raw: bytes, shape: tuple[int, int, int], interlace: int, passes: list,
                  rows: list) -> np.ndarray | None:
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
        left, up, up_left = (flat[s - m:e - m:w] for m in (1, w + 1, w + 2))
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
    parts = [data[i:i + step] for i in range(0, len(data), step)]  # views, no copies

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
    return [PNG_SIGNATURE, *_chunk(b"IHDR", [struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)]),
            *profile, *_chunk(b"IDAT", stream), *_chunk(b"IEND", [])]


def _chunk(kind: bytes, content: list) -> list:
    """A PNG chunk whose data is the concatenation of `content`, as pieces."""
    crc = zlib.crc32(kind)
    for piece in content:
        crc = zlib.crc32(piece, crc)
    return [struct.pack(">I", sum(map(len, content))) + kind, *content, struct.pack(">I", crc)]


# -- writing ----------------------------------------------------------------------------------------

def quantize(pixels: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clamp to [0, 1] and round to the nearest of the 2^bits levels (same dtype, values k/(2^bits − 1))."""
    levels = 2**bits - 1
    return (pixels.clamp(0, 1) * levels).round() / levels


def write_image(path: str | os.PathLike, pixels: torch.Tensor, *, alpha: torch.Tensor | None = None,
                bits: int = 8, overwrite: bool = False, quality: int = 95) -> Path:
    """Write (C, H, W) in [0, 1] (C = 1 or 3; alpha (1, H, W) optional) as an image file."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot write '{path.suffix}' images; use one of {', '.join(sorted(WRITE_FORMATS))}")
    if bits not in (8, 16) or (bits == 16 and fmt != "PNG"):
        raise ValueError(f"{path}: {bits}-bit output is not supported for {fmt} (16 bits: PNG only)")
    if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1 or 3, H, W), got {tuple(pixels.shape)}")
    if alpha is not None:
        if fmt in ("JPEG", "BMP"):
            raise ValueError(f"{path}: {fmt} files have no alpha channel; write PNG, TIFF or WebP")
        pixels = torch.cat([pixels, alpha.to(pixels)])
    if not torch.isfinite(pixels).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values")
    a = (quantize(pixels.detach().double().cpu(), bits) * (2**bits - 1)).to(torch.int32).permute(1, 2, 0).numpy()
    a = a.astype(np.uint16 if bits == 16 else np.uint8)

    def write(tmp: Path):
        if fmt == "PNG":  # ours: 16-bit colour (Pillow cannot), and 8-bit faster than Pillow
            write_png(tmp, a)
        else:
            Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(tmp, format=fmt, quality=quality)

    return atomic_write(path, write, overwrite)
