"""Image files <-> float tensors (C, H, W) in [0, 1], without losing 8- or 16-bit precision.

Reading: gray stays one channel; RGB, palette, CMYK, YCbCr, LAB and HSV become three (Pillow's
conversions; embedded ICC profiles are not applied); alpha (RGBA, LA, palette transparency) is
returned apart; the EXIF orientation is applied. 8-bit samples map k -> k/255, 16-bit k -> k/65535.
Pillow reads 16-bit colour PNGs as 8-bit, so those (and 16-bit gray + alpha) are decoded here.
Float32 samples (affsr's `--bits 32` TIFF, floattiff.py; one-band float TIFFs) keep their values,
outside [0, 1] too (Picture.bits 32).

Listing: SUFFIXES, the one table of what is read (upscale, eval, project and training alike);
walk_images (a folder tree), list_images and pair_by_name (folders paired by file name).

Writing: write_image, the one writer: PNG (8 or 16 bits, gray, gray + alpha, RGB, RGBA; png.py), JPEG,
TIFF, BMP, WebP (8 bits), float32 TIFF or .npy, to a temporary name beside the target, then renamed;
an existing file is kept unless `overwrite`. Every problem with a file is an AffsrError (a ValueError)
that names it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import floattiff
from .errors import AffsrError, ImageFileError
from .files import atomic_write
from .png import PNG_SIGNATURE, check_pixels, read_png, write_png
from .pnm import is_pnm16, read_pnm16

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm", ".gif", ".tga")
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}
FLOAT_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".npy": "NPY"}  # float32 outputs (write_image)
LOSSY = ("JPEG",)  # WebP is written lossless
LEVEL_BITS = {"PNG": (8, 16), "TIFF": (8,), "JPEG": (8,), "BMP": (8,), "WEBP": (8,)}  # integer samples each can hold
MAX_SIDE = {"WEBP": 16383, "JPEG": 65535, "PNG": 2**31 - 1}  # pixels a side each format can hold
MAX_BYTES = {"TIFF": 0xFFFF_0000, "BMP": 0xFFFF_0000}  # classic TIFF and BMP: 32-bit offsets and sizes
ORIENTATION = 0x0112  # EXIF tag


def check_output_size(path: str | os.PathLike, fmt: str, width: int, height: int, channels: int, bits: int = 8):
    """Refuse, before any work, an output its format cannot hold: WebP stops at 16,383 pixels a side (a WebP
    input ≥ 4,096 wide failed after the whole upscale), JPEG at 65,535, classic TIFF and BMP at 4 GB."""
    side = MAX_SIDE.get(fmt)
    if side is not None and max(width, height) > side:
        raise AffsrError(
            f"{path}: a {width}×{height} image is over the {side:,} pixels a side that {fmt} can hold; "
            "write png or tif (--ext)"
        )
    size = width * height * channels * max(bits, 8) // 8
    if fmt in MAX_BYTES and size > MAX_BYTES[fmt]:
        raise AffsrError(
            f"{path}: a {width}×{height} image is {size / 2**30:.1f} GB, over the 4 GB that a {fmt} file "
            "can hold; write png (--ext)" + (" or npy" if bits == 32 else "")
        )


def walk_images(
    root: str | os.PathLike, suffixes=SUFFIXES, *, hidden: bool = True, skip_folder=None
) -> tuple[list[Path], list[str]]:
    """(image files under the folder `root`, sorted; the folders that could not be read, as "FOLDER: why").
    Links to folders are not followed (a `self -> .` link would go round forever); `hidden` False leaves out
    names starting with "."; `skip_folder(path)` True leaves a folder and all under it out (run folders)."""
    root = Path(root)
    found, unreadable = [], []

    def failed(e: OSError):
        unreadable.append(f"{e.filename}: cannot read this folder ({e.strerror})")

    for folder, subfolders, files in os.walk(root, onerror=failed):
        here = Path(folder)
        subfolders[:] = sorted(
            d
            for d in subfolders
            if (hidden or not d.startswith(".")) and not (skip_folder is not None and skip_folder(here / d))
        )
        found += [
            here / f
            for f in files
            if (hidden or not f.startswith(".")) and Path(f).suffix.lower() in suffixes and (here / f).is_file()
        ]
    return sorted(found), unreadable


def list_images(folder: Path) -> dict[str, Path]:
    """Image files of a folder (or one file) by stem; hidden and non-image files are skipped."""
    folder = Path(folder)
    if folder.is_file():
        return {folder.stem: folder}
    if not folder.is_dir():
        raise AffsrError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in SUFFIXES or not p.is_file():
            continue
        if p.stem in found:
            raise AffsrError(
                f"{folder}: two images named {p.stem!r} ({found[p.stem].name}, {p.name}); pairing by name is ambiguous"
            )
        found[p.stem] = p
    if not found:
        raise AffsrError(f"{folder}: no image files ({', '.join(SUFFIXES)})")
    return found


def pair_by_name(hr: Path, sr: Path, lr: Path | None = None) -> list[tuple[str, Path, Path, Path | None]]:
    """(stem, HR, SR, LR) for every stem; an error lists every file that has no partner. Single
    files (not folders) pair with each other whatever their names."""
    if all(p is None or Path(p).is_file() for p in (hr, sr, lr)):
        return [(Path(hr).stem, Path(hr), Path(sr), Path(lr) if lr else None)]
    folders = {"HR": list_images(hr), "SR": list_images(sr), **({"LR": list_images(lr)} if lr else {})}
    stems = set().union(*folders.values())
    missing = [f"{stem} (no {kind})" for stem in sorted(stems) for kind, files in folders.items() if stem not in files]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise AffsrError(f"{len(missing)} image(s) do not pair by name: {shown}")
    return [(s, folders["HR"][s], folders["SR"][s], folders["LR"][s] if lr else None) for s in sorted(stems)]


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
            check_pixels(path, floats[1], floats[0], limit)
            array, orientation = floattiff.load(path, floats), 1
        elif head.startswith(PNG_SIGNATURE) and len(head) == 33 and head[24] == 16 and head[25] in (2, 4, 6):
            array, orientation = read_png(path, limit), _orientation(path)  # 16-bit colour or gray + alpha
        else:
            array, orientation = (read_pnm16(path, limit), 1) if is_pnm16(head) else _read_pil(path, limit)
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


def _read_pil(path: Path, limit: int) -> tuple[np.ndarray, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_pixels(path, im.width, im.height, limit)
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


def _orientation(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return im.getexif().get(ORIENTATION, 1)
    except Exception:  # no readable EXIF: the upright default
        return 1


_ORIENT = {  # EXIF orientation -> the transform that makes the image upright (as ImageOps.exif_transpose)
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    return _ORIENT[orientation](a) if orientation in _ORIENT else a


# -- writing ----------------------------------------------------------------------------------------


def quantize(pixels: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clamp to [0, 1] and round to the nearest of the 2^bits levels (same dtype, values k/(2^bits − 1))."""
    levels = 2**bits - 1
    return (pixels.clamp(0, 1) * levels).round() / levels


def write_image(
    path: str | os.PathLike,
    image: torch.Tensor | np.ndarray,
    *,
    alpha: torch.Tensor | None = None,
    bits: int = 8,
    icc: bytes | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write an image file, the one writer of every output (upscale, project, eval, training samples):

    - a tensor (C, H, W) of floats in [0, 1] (C = 1 or 3; `alpha` (1, H, W) optional), rounded to `bits`
      8 or 16 levels, or kept as float32 with `bits` 32;
    - an array (H, W, C) as stored: uint8 (any format), uint16 (PNG) or float32 (.tif, .npy), C = 1 gray,
      2 gray + alpha, 3 RGB, 4 RGBA (`alpha` and `bits` are not read).

    Formats by suffix: PNG (ours: 16-bit colour, which Pillow cannot, and 8-bit in a quarter of its
    time), WebP (lossless), JPEG (`quality`), TIFF, BMP; float32 as an uncompressed TIFF (floattiff.py)
    or .npy. `icc`: the colour profile to embed. Written through files.atomic_write: a temporary beside
    the target, then renamed; an existing file is replaced only with `overwrite`."""
    path = Path(path)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise AffsrError(f"expected an image of shape (1 or 3, H, W), got {tuple(image.shape)}")
        if bits not in (8, 16, 32):
            raise AffsrError(f"{path}: {bits}-bit output is not supported (8, 16 or 32)")
        if alpha is not None:
            image = torch.cat([image, alpha.to(image)])
        image = image.detach().double().cpu()
        if not torch.isfinite(image).all():
            raise AffsrError(f"{path}: the image holds NaN or infinite values")
        if bits == 32:
            a = image.permute(1, 2, 0).numpy().astype(np.float32)
        else:
            a = (quantize(image, bits) * (2**bits - 1)).to(torch.int32).permute(1, 2, 0).numpy()
            a = a.astype(np.uint16 if bits == 16 else np.uint8)
    else:
        a = image
    return _write_array(path, a, icc, overwrite, quality)


def _write_array(path: Path, a: np.ndarray, icc: bytes | None, overwrite: bool, quality: int) -> Path:
    """The refusals, then the write, of an array (H, W, C) uint8, uint16 or float32 (write_image)."""
    suffix = path.suffix.lower()
    if a.dtype == np.float32:
        fmt = FLOAT_FORMATS.get(suffix)
        if fmt is None:
            raise AffsrError(f"{path}: float32 output is written as .tif, .tiff or .npy")
        a = np.ascontiguousarray(a)
    elif a.dtype in (np.uint8, np.uint16):
        fmt = WRITE_FORMATS.get(suffix)
        bits = 16 if a.dtype == np.uint16 else 8
        if fmt is None:
            raise AffsrError(
                f"{path}: cannot write '{path.suffix}' images; use one of {', '.join(sorted(WRITE_FORMATS))}, .npy"
            )
        if bits not in LEVEL_BITS[fmt]:
            raise AffsrError(
                f"{path}: {fmt} cannot hold {bits}-bit samples here (16 bits: PNG only; float32: TIFF or .npy)"
            )
    else:
        raise AffsrError(f"{path}: samples of type {a.dtype} are not written (uint8, uint16 or float32)")
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise AffsrError(f"expected an array of shape (H, W, 1 to 4), got {a.shape}")
    if a.shape[2] in (2, 4) and fmt in ("JPEG", "BMP"):
        raise AffsrError(f"{path}: {fmt} files have no alpha channel; write PNG, TIFF or WebP")

    def write(tmp: Path):
        if fmt == "NPY":
            with open(tmp, "wb") as fh:
                np.save(fh, a, allow_pickle=False)
        elif a.dtype == np.float32:
            with open(tmp, "wb") as fh:
                fh.write(floattiff.header(a.shape, icc))
                fh.write(a.data)
        elif fmt == "PNG":
            write_png(tmp, a, level=3 if a.dtype == np.uint16 else 1, icc=icc)
        else:
            extra = {"icc_profile": icc} if icc else {}
            if fmt == "WEBP":
                extra.update(lossless=True, exact=True, quality=100)
            elif fmt == "JPEG":
                extra.update(quality=quality)
            Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(tmp, format=fmt, **extra)

    return atomic_write(path, write, overwrite)


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


def read_stored(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """The samples of a file write_image wrote, as stored: (H, W, C) uint8, uint16 or float32 (to measure
    the consistency of what was saved, without any conversion)."""
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
    if head[:8] == PNG_SIGNATURE and head[24] == 16:
        return read_png(path, max_pixels or Image.MAX_IMAGE_PIXELS)
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a
