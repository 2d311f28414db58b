"""affsr as a library: `affsr.upscale(image)` for a PIL image, a NumPy array or a torch tensor, the
same type back, 4× larger, through the contract of `affsr upscale` (infer.Upscaler: f on tiles → Π
→ box fit → rounding to the input's bit depth), with the shipped default weights unless told.

    import affsr_cli as affsr
    big = affsr.upscale(small)                  # PIL in, PIL out; Image.resize(big, small.size, BICUBIC) == small
    up = affsr.load("affgan-x4", device="cuda") # the Upscaler itself, cached: loading again costs nothing

Kinds of input and what comes back (the last channel of 2 or 4 is alpha, as in image files):

    PIL   L, LA, RGB, RGBA          same mode, 8-bit levels
          I;16 (16-bit gray), I     same mode, 16-bit levels
          F (float gray in [0, 1])  F, Π's exact values
          1, P, PA, CMYK, YCbCr, LAB, HSV, RGBX, La, RGBa: converted first (1 → L, P → RGB or RGBA with
          transparency, La → LA, RGBa → RGBA, the rest → RGB), and that mode comes back
    NumPy (H, W) or (H, W, C), C = 1…4: uint8, uint16, or float16/32/64 in [0, 1]; same dtype and layout
    torch (C, H, W) or (B, C, H, W), C = 1…4: float in [0, 1] (or uint8); same dtype, same device

8- and 16-bit inputs get the levels `affsr upscale` writes to a file of that depth (Pillow's resize
of an 8-bit result gives the input back under the default weights' bicubic A wherever an image in
range allows; where none does, an InexactWarning says so); float inputs get Π's unrounded float32
values (then cast to the input's dtype): A ŷ = x to float precision, values may leave [0, 1] slightly.
The engine never prints; the notes `affsr upscale` prints are dropped here, its warnings are warnings.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import boxfit, checkpoint, consistency
from .detail import check_mode
from .device import pick_device
from .errors import AffsrError
from .images import icc_fits
from .infer import Upscaler
from .projection import FAMILIES, OperatorSpec

__all__ = ["upscale", "load", "Upscaler", "OperatorSpec", "InexactWarning"]
CONVERTED = {
    "1": "L",
    "La": "LA",
    "RGBa": "RGBA",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
}  # PIL modes read as another (P and PA: RGB, or RGBA when transparent)


class InexactWarning(UserWarning):
    """An 8- or 16-bit result that does not downsample exactly to its input (docs/promise.md)."""


@dataclass
class _Input:
    colour: torch.Tensor  # (C, h, w) float32 in [0, 1], C = 1 or 3
    alpha: torch.Tensor | None  # (1, h, w) float32 in [0, 1]
    bits: int | None  # 8 or 16: levels; None: floats


def load(
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    operator: str | OperatorSpec | None = None,
    tile: int | None = None,
    ensemble: bool = False,
    detail: str | os.PathLike | None = None,
    detail_limit: float | None = None,
    detail_mode: str | None = None,
    keep_grid: bool = False,
) -> Upscaler:
    """The Upscaler of `weights` (a shipped name such as "affgan-x4", a path, a run folder of `affsr train`
    or "hf://owner/repo/file.safetensors"; default: the shipped default of `affsr upscale`, affgan-x4)
    on `device` ("auto": CUDA, then MPS, then the CPU), its outputs consistent with `operator` (the A
    that made your small images: "bicubic", "area", "gaussian", ... or an OperatorSpec; default the
    weights'; another gives a warning, as `affsr upscale --operator` does), run on LR tiles of `tile`
    pixels (default: sized to the free memory), with `ensemble` the ×8 self-ensemble of the weights'
    network (`affsr upscale --ensemble`, 8× its time), with `detail`: another network's detail (a GAN's, e.g.
    the shipped "realesrgan-x4plus", Real-ESRGAN x4plus) added within ±`detail_limit` 8-bit
    levels (default 8), everywhere or with `detail_mode` "more" only where it draws more than the
    weights (for "affgan-x4"), as `affsr upscale --detail` (detail.py); `keep_grid` leaves the network's
    image-wide period-4 pattern in (`affsr upscale --keep-grid`; projection.remove_grid). Cached: the same arguments give the
    same object without reading the files again (while they are unchanged); `load.cache_clear()`
    empties it."""
    if weights is None:
        from .registry import DEFAULT

        if not DEFAULT.path.is_file():
            raise AffsrError(f"the default weights ({DEFAULT.path}) are not installed; pass weights=NAME|PATH|hf://…")
        weights = DEFAULT.path
    if not isinstance(weights, (str, os.PathLike)):
        raise AffsrError(f"weights must be a name, a path or hf://owner/repo/file, got {type(weights).__name__}")
    path = checkpoint.resolve_weights(os.fspath(weights))
    if isinstance(operator, str):
        operator = operator.lower()
    elif operator is not None and not isinstance(operator, OperatorSpec):
        raise AffsrError(
            f"operator must be a family name ({', '.join(FAMILIES)}) or an OperatorSpec, got {type(operator).__name__}"
        )
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int)):
        raise AffsrError(f"tile must be a whole number of LR pixels or None (sized to the free memory), got {tile!r}")
    if detail is not None and not isinstance(detail, (str, os.PathLike)):
        raise AffsrError(f"detail must be a name, a path or hf://owner/repo/file, got {type(detail).__name__}")
    if detail_limit is not None and (isinstance(detail_limit, bool) or not isinstance(detail_limit, (int, float))):
        raise AffsrError(f"detail_limit must be a number of 8-bit levels, got {detail_limit!r}")
    if detail_mode is not None:
        check_mode(detail_mode, "detail_mode")
    extra = None
    if detail is not None:
        other = checkpoint.resolve_weights(os.fspath(detail))
        extra = (str(other), _stamp(other), detail_limit, detail_mode)
    elif detail_limit is not None or detail_mode is not None:
        which = "detail_limit" if detail_limit is not None else "detail_mode"
        raise AffsrError(f"{which} without detail: name the detail network")
    for name, flag in (("ensemble", ensemble), ("keep_grid", keep_grid)):
        if not isinstance(flag, bool):
            raise AffsrError(f"{name} must be True or False, got {flag!r}")
    device = str(pick_device(str(device)))
    return _load(str(path), _stamp(path), device, operator, tile, ensemble, extra, keep_grid)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        return path.stat().st_mtime_ns, path.stat().st_size
    except OSError:
        return None  # Upscaler.load says what is wrong with it


@functools.lru_cache(maxsize=8)
def _load(
    path: str, stamp, device: str, operator, tile: int | None, ensemble: bool, extra, keep_grid: bool
) -> Upscaler:
    detail, _, limit, mode = extra or (None, None, None, None)  # the file's stamp is only for the cache
    return Upscaler.load(
        path,
        device,
        tile=tile,
        operator=operator,
        ensemble=ensemble,
        detail_weights=detail,
        detail_limit=limit,
        detail_mode=mode,
        keep_grid=keep_grid,
    )  # another A than the weights': a warning


load.cache_clear = _load.cache_clear


def upscale(
    image,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    operator: str | OperatorSpec | None = None,
    tile: int | None = None,
    seed: int = 0,
    ensemble: bool = False,
    detail: str | os.PathLike | None = None,
    detail_limit: float | None = None,
    detail_mode: str | None = None,
    keep_grid: bool = False,
):
    """`image` upscaled 4× (the weights' scale), of the same type: a PIL image (same mode; palette, CMYK
    and the other modes are converted to RGB, RGBA, L or LA first, see the module's table), a NumPy
    array (H, W) or (H, W, C) of uint8, uint16 or floats in [0, 1] (same dtype and layout), or a torch
    tensor (C, H, W) or (B, C, H, W) of floats in [0, 1] or uint8 (same dtype, on the same device, no
    gradient). C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); alpha is upscaled and made
    consistent as `affsr upscale` does.

    The result is what `affsr upscale` saves for the same pixels: levels of the input's bit depth
    (8-bit under the default weights: Pillow's bicubic resize of the result gives the input back), or,
    for float input, Π's exact values (A ŷ = x to float precision; not clipped to [0, 1]). Options as
    `load`: `weights`, `device`, `operator` (the A that made the input, if not the weights'), `tile`,
    `ensemble`, `detail`, `detail_limit` and `detail_mode` (another network's detail within a limit,
    `affsr upscale --detail`), `keep_grid`;
    `seed` draws the noise of a stochastic checkpoint (the same seed, the same sample). The weights are
    loaded once and cached. Bad input is a ValueError that says what is wrong with it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AffsrError(f"seed must be a whole number, 0 or more, got {seed!r}")
    pictures, rebuild = _inputs(image)  # checked before any weights are read
    up = load(
        weights,
        device=device,
        operator=operator,
        tile=tile,
        ensemble=ensemble,
        detail=detail,
        detail_limit=detail_limit,
        detail_mode=detail_mode,
        keep_grid=keep_grid,
    )
    outs = []
    for pic in pictures:  # a loop, not a comprehension: InexactWarning's stacklevel reaches the caller
        outs.append(_run(up, pic, int(seed)))
    return rebuild(outs)


def _inputs(image) -> tuple[list[_Input], Callable[[list[np.ndarray]], object]]:
    """The upscaler's inputs of an image (a batch: several), and what makes the caller's type of the results."""
    if isinstance(image, np.ndarray):
        return _from_numpy(image)
    if isinstance(image, torch.Tensor):
        return _from_torch(image)
    from PIL import Image

    if isinstance(image, Image.Image):
        return _from_pil(image)
    raise AffsrError(
        f"expected a PIL image, a NumPy array or a torch tensor, got {type(image).__name__}"
        + (" (read the file first, e.g. with PIL.Image.open)" if isinstance(image, (str, Path)) else "")
    )


def _run(up: Upscaler, pic: _Input, seed: int) -> np.ndarray:
    """(H, W, C) uint8 / uint16 levels, or float32 values, as `affsr upscale` saves them (alpha last)."""
    out = up(pic.colour, bits=pic.bits, seed=seed)
    alpha = up.alpha(pic.alpha, pic.bits) if pic.alpha is not None else None
    if pic.bits is None:
        planes = out.y_hat if alpha is None else torch.cat([out.y_hat, alpha])
        stored = planes.permute(1, 2, 0).numpy()
    else:
        stored = out.levels if alpha is None else np.concatenate([out.levels, boxfit.round_shaped(alpha, pic.bits)], 2)
    v = consistency.verdict(stored, pic.colour, up.A, up.spec, pic.bits or 32, out.fit)
    if not v.consistent:  # as `affsr upscale` warns of such a file
        if pic.bits is None:
            reached = f"max |Aŷ − x| {v.max_error:.1e}"
        else:
            reached = f"LR-PSNR {v.lr_psnr:.1f} dB, under the {consistency.FLOOR_DB[pic.bits]:g} dB of exact {pic.bits}-bit levels"
        if v.pillow is not None:
            reached += f"; Pillow's {up.spec.family} resize gives back {100 * v.pillow:.1f} % of the input's values"
        fix = (
            ""
            if pic.bits is None
            else ("; float input in [0, 1] (e.g. array / 255) gets Π's exact, unrounded values (docs/promise.md)")
        )
        warnings.warn(
            f"the result does not downsample exactly to the input ({reached}){fix}", InexactWarning, stacklevel=3
        )
    return stored


def _checked(a: np.ndarray, what: str) -> _Input:
    """(h, w, C) uint8, uint16 or floats in [0, 1] -> the upscaler's input (the floats read_image makes of a file)."""
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise AffsrError(f"{what} has no pixels ({w}×{h})")
    if a.dtype in (np.uint8, np.uint16):
        bits = 8 if a.dtype == np.uint8 else 16
        planes = a.transpose(2, 0, 1).astype(np.float32)
        planes /= 2**bits - 1  # as images.read_image does for a file of these levels
    elif a.dtype in (np.float16, np.float32, np.float64):
        bits = None
        if not np.isfinite(a).all():
            raise AffsrError(f"{what} holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise AffsrError(
                f"{what} holds floats from {lo:g} to {hi:g}; floats must lie in [0, 1] "
                "(divide 8-bit values by 255, 16-bit ones by 65535)"
            )
        planes = a.transpose(2, 0, 1).astype(np.float32)
    else:
        raise AffsrError(f"{what} has dtype {a.dtype}, which is not supported: use uint8, uint16 or floats in [0, 1]")
    t = torch.from_numpy(np.ascontiguousarray(planes))
    colour, alpha = (t[:-1], t[-1:]) if c in (2, 4) else (t, None)
    return _Input(colour, alpha, bits)


def _check_channels(shape: tuple, what: str, last: bool):
    c = shape[-1] if last else shape[-3]
    if not 1 <= c <= 4:
        layout = "(H, W) or (H, W, C)" if last else "(C, H, W) or (B, C, H, W)"
        hint = ""
        if last and 1 <= shape[0] <= 4:
            hint = "; channels first? use array.transpose(1, 2, 0)"
        elif not last and 1 <= shape[-1] <= 4:
            hint = "; channels last? use tensor.permute(2, 0, 1), or (0, 3, 1, 2) for a batch"
        raise AffsrError(
            f"{what} has shape {tuple(shape)}: expected {layout} with C = 1 (gray), 2 (gray + alpha), "
            f"3 (RGB) or 4 (RGBA){hint}"
        )


def _from_numpy(a: np.ndarray):
    if a.ndim not in (2, 3):
        raise AffsrError(f"the array has {a.ndim} dimensions (shape {a.shape}): expected (H, W) or (H, W, C)")
    if a.ndim == 3:
        _check_channels(a.shape, "the array", last=True)
    pic = _checked(a if a.ndim == 3 else a[..., None], "the array")

    def rebuild(outs: list[np.ndarray]) -> np.ndarray:
        out = outs[0].astype(a.dtype, copy=False)
        return out[..., 0] if a.ndim == 2 else out

    return [pic], rebuild


def _from_torch(t: torch.Tensor):
    if t.dim() not in (3, 4):
        raise AffsrError(
            f"the tensor has {t.dim()} dimensions (shape {tuple(t.shape)}): expected (C, H, W) or (B, C, H, W)"
        )
    _check_channels(tuple(t.shape), "the tensor", last=False)
    if not (t.dtype.is_floating_point or t.dtype == torch.uint8):
        raise AffsrError(
            f"the tensor has dtype {str(t.dtype).replace('torch.', '')}, which is not supported: use "
            "floats in [0, 1] or uint8"
        )
    batch = t.detach().cpu()
    batch = batch[None] if t.dim() == 3 else batch
    if batch.shape[0] == 0:
        raise AffsrError(f"the tensor holds no images (shape {tuple(t.shape)})")
    if batch.dtype in (torch.float16, torch.bfloat16):  # bfloat16 has no NumPy type; float32 holds both exactly
        batch = batch.float()
    pics = [
        _checked(image.permute(1, 2, 0).numpy(), "the tensor" if t.dim() == 3 else f"image {i} of the batch")
        for i, image in enumerate(batch)
    ]

    def rebuild(outs: list[np.ndarray]) -> torch.Tensor:
        out = torch.stack([torch.from_numpy(np.ascontiguousarray(o)).permute(2, 0, 1) for o in outs])
        out = out.to(device=t.device, dtype=t.dtype)
        return out[0] if t.dim() == 3 else out

    return pics, rebuild


def _from_pil(im):
    from PIL import Image

    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in CONVERTED:
        im = im.convert(CONVERTED[mode])
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        raise AffsrError(f"PIL images of mode {mode} are not supported; convert the image to RGB, RGBA, L or LA first")
    if im.width < 1 or im.height < 1:
        raise AffsrError(f"the image has no pixels ({im.width}×{im.height})")
    if im.mode == "I" or im.mode.startswith("I;16"):
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise AffsrError(
                f"the image (mode {im.mode}) holds values from {a.min()} to {a.max()}; integer samples "
                "must lie in 0…65535 (16 bits)"
            )
        a = a.astype(np.uint16)[..., None]
    else:
        a = np.asarray(im, np.float32 if im.mode == "F" else np.uint8)
        a = a[..., None] if a.ndim == 2 else a
    pic = _checked(a, f"the image (mode {mode})")
    target = im.mode

    def rebuild(outs: list[np.ndarray]):
        out = outs[0]
        plane = np.ascontiguousarray(out[..., 0])
        if target == "I":
            big = Image.fromarray(plane.astype(np.int32))
        elif out.shape[2] == 1:
            big = Image.fromarray(plane)  # L (uint8), I;16 (uint16) or F (float32)
        else:
            big = Image.fromarray(np.ascontiguousarray(out))  # LA, RGB or RGBA (uint8)
        icc = im.info.get("icc_profile")
        if icc and icc_fits(icc, 3 if out.shape[2] >= 3 else 1):
            big.info["icc_profile"] = icc  # written by Pillow's save, as `affsr upscale` keeps the profile
        return big

    return [pic], rebuild
