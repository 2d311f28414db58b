"""The engine of `affsr eval`: pair images, make x = A y, run upscalers, measure, write results.

Mode (a), `evaluate_upscalers`: every HR image y (cropped to a multiple of the scale) gives an LR
input x = A y (rounded to y's bit depth, as a saved LR file would be); each upscaler maps x to ŷ,
which is compared with y. Upscalers are plain callables (x (1, C, h, w), bits) -> ŷ (1, C, s·h, s·w),
so baselines and trained checkpoints sit side by side. A checkpoint runs through infer.Upscaler, the
contract `affsr upscale` uses: its ŷ is the saved file's values (Π, box fit, rounding to `bits`).
Mode (b), `evaluate_pairs`: SR (and LR) images made elsewhere, paired with the HR images by file name.
Mode (c), `evaluate_outputs`: SR images alone, no HR: only the no-reference metrics (NIQE).
Where NIQE is measured in modes (a) and (b), the method `HR` holds the NIQE of y itself. The engine never prints; progress
reaches the caller through `on_image(done, total, name)`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from . import metrics as M
from . import niqe as NQ
from .downsample import Downsample
from .errors import AffsrError
from .images import list_images, pair_by_name, quantize, read_image
from .lpips import LPIPS, NEEDS
from .projection import OperatorSpec, choose_operator
from .upscalers import Upscale

# name: (label, higher is better, format); lr-*-x compare Aŷ with the input x, lr-*-ay with A y
METRICS = {
    "psnr": ("PSNR (dB)", True, "{:.3f}"),
    "ssim": ("SSIM", True, "{:.4f}"),
    "lr-mse-x": ("LR-MSE, Aŷ vs x", False, "{:.3e}"),
    "lr-mse-ay": ("LR-MSE, Aŷ vs Ay", False, "{:.3e}"),
    "lr-psnr-x": ("LR-PSNR (dB), Aŷ vs x", True, "{:.2f}"),
    "lr-psnr-ay": ("LR-PSNR (dB), Aŷ vs Ay", True, "{:.2f}"),
    "hf-ratio": ("HF energy ŷ / y (1 = y's)", None, "{:.3f}"),
    "spectrum-db": ("spectrum distance (dB)", False, "{:.2f}"),
    "lattice": ("s-pixel lattice ŷ / y (1 = y's)", None, "{:.2f}"),
    "lattice-local": ("s-pixel lattice in 16² LR windows ŷ / y", None, "{:.2f}"),
    "grid-levels": ("s-pixel grid of ŷ, peak to peak (8-bit levels)", False, "{:.2f}"),
    "lpips": ("LPIPS (AlexNet)", False, "{:.4f}"),
    "niqe": ("NIQE (no reference)", False, "{:.3f}"),
}
NO_REFERENCE = ("niqe",)  # metrics of ŷ alone: mode (c) measures only these
REFERENCE = "HR"  # the method whose rows hold the no-reference metrics of y itself
GROUPS = {
    "lr-mse": ("lr-mse-x", "lr-mse-ay"),
    "lr-psnr": ("lr-psnr-x", "lr-psnr-ay"),
    "sharpness": ("hf-ratio", "spectrum-db"),
    "all": tuple(m for m in METRICS if m != "lpips"),
}
DEFAULT_METRICS = ("psnr", "ssim", "lr-psnr-x", "lr-psnr-ay", "hf-ratio")


def parse_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """Metric names, groups (lr-mse, lr-psnr, sharpness, all but lpips) and comma lists -> ordered names."""
    out: list[str] = []
    for name in (n.strip().lower() for item in names for n in item.split(",") if n.strip()):
        if name not in METRICS and name not in GROUPS:
            raise AffsrError(f"unknown metric {name!r}; choose from {', '.join([*METRICS, *GROUPS])}")
        out += [m for m in GROUPS.get(name, (name,)) if m not in out]
    return tuple(out) or DEFAULT_METRICS


@dataclass(frozen=True)
class Conventions:
    crop_border: int = 0  # pixels cut off each HR edge before PSNR, SSIM and sharpness (BasicSR: the scale)
    y_channel: bool = False  # compare BT.601 luma Y (BasicSR, MATLAB) instead of all channels
    data_range: float | None = 1.0  # peak-to-peak value on the [0, 1] scale; None: per image, max − min of y
    quantize_lr: bool = True  # mode (a): round x = A y to y's bit depth, as a saved LR file would be
    round_sr: bool = False  # clamp ŷ to [0, 1] and round it to y's bit depth first (as a saved file)

    def describe(self, spec: OperatorSpec | None, lr: str = "made", metrics: tuple[str, ...] = ()) -> dict[str, str]:
        """Everything a reader needs to compare the figures with another tool's; lr: 'made' (mode a),
        'files' or 'none' (mode b with or without --lr)."""
        d = {
            "colour": "Y (ITU-R BT.601 luma, as BasicSR and MATLAB rgb2ycbcr)"
            if self.y_channel
            else "all channels (RGB or gray)",
            "crop border": f"{self.crop_border} px of HR per edge",
            "data range": "max − min of y per image"
            if self.data_range is None
            else f"{self.data_range:g} (images on [0, 1])",
            "SSIM": "Gaussian 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03, channel mean (skimage, Wang et al.)",
            "ŷ": "checkpoints: as affsr upscale saves it (Π, box fit, rounded to the HR bit depth); baselines: "
            + ("clamped and rounded to the HR bit depth" if self.round_sr else "float, unclipped"),
            "LR input x": {
                "made": "A y " + ("rounded to the HR bit depth" if self.quantize_lr else "in floating point"),
                "files": "the LR files",
                "none": "not given",
            }[lr],
            "LR metrics": "Aŷ vs A y only" if lr == "none" else "Aŷ vs the input x, and Aŷ vs A y; whole LR image",
            "means": "average of the per-image values",
        }
        if "niqe" in metrics:
            d["NIQE"] = (
                "no reference; BT.601 luma on 0–255, rounded; 96×96 patches at 2 scales, after the crop; "
                f"pristine model: {NQ.load_pristine().metadata.get('patches', '?')} patches of the HR training photos "
                "of the affsr corpus (not MATLAB's parameters); column HR: y's own"
            )
        if "lpips" in metrics:
            d["LPIPS"] = "v0.1, AlexNet trunk, on RGB (gray repeated) after the crop; --y-channel does not apply"
        if spec is not None:
            d["A"] = spec.describe()
        return d


@dataclass
class Results:
    metrics: tuple[str, ...]
    methods: list[str]
    rows: list[dict] = field(default_factory=list)  # {"image", "method", metric: value, ...}
    conventions: dict[str, str] = field(default_factory=dict)

    def means(self) -> dict[str, dict[str, float]]:
        return {
            m: {k: float(np.mean([r.get(k, math.nan) for r in self.rows if r["method"] == m])) for k in self.metrics}
            for m in self.methods
        }


# -- upscalers ----------------------------------------------------------------------------------------


# -- files -------------------------------------------------------------------------------------------


def _channels(n: int) -> str:
    return {1: "1 channel (gray)", 3: "3 channels (RGB)"}.get(n, f"{n} channels")


# -- measuring ----------------------------------------------------------------------------------------


def single_threaded(fn):
    """Run fn with one torch thread. The metrics work on one image at a time, where a thread pool
    gains little and, on a busy machine, loses up to 10× to threads waiting for each other."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(n)

    return wrapper


class _Reference:
    """What every comparison with one HR image y needs, computed once: y in the compared colour space
    and crop, its data range, its spectrum, A y."""

    @single_threaded
    def __init__(
        self,
        y: torch.Tensor,
        bits: int,
        conv: Conventions,
        metrics: tuple[str, ...],
        lpips: LPIPS | None = None,
        name: str = "the HR image",
    ):
        if "lpips" in metrics and lpips is None:
            raise AffsrError(NEEDS)
        self.bits, self.conv, self.metrics, self.lpips = bits, conv, metrics, lpips
        self.y = y
        self.yc = self.colour_crop(y)
        self.R = conv.data_range if conv.data_range is not None else float(self.yc.max() - self.yc.min()) or 1.0
        self.spec = M.spectrum(self.yc) if {"hf-ratio", "spectrum-db"} & set(metrics) else None
        self.niqe = _niqe(self.yc, name) if "niqe" in metrics else None  # y's own, the HR column

    def colour(self, img: torch.Tensor) -> torch.Tensor:
        return M.to_y(img) if self.conv.y_channel else img

    def colour_crop(self, img: torch.Tensor) -> torch.Tensor:
        return M.crop_border(self.colour(img), self.conv.crop_border)

    def measure(self, y_hat: torch.Tensor, A: Downsample, x: torch.Tensor | None, Ay: torch.Tensor) -> dict[str, float]:
        """ŷ (C, H, W) float64 against y; x (C, h, w) the LR input when known, Ay = A y."""
        if self.conv.round_sr:
            y_hat = quantize(y_hat, self.bits)
        out = self._classic(y_hat, A, x, Ay)
        if "lpips" in self.metrics:  # RGB (gray repeated), cropped; the network may use every thread
            crop = self.conv.crop_border
            out["lpips"] = float(self.lpips(M.crop_border(self.y, crop), M.crop_border(y_hat, crop)))
        return out

    @single_threaded
    def _classic(
        self, y_hat: torch.Tensor, A: Downsample, x: torch.Tensor | None, Ay: torch.Tensor
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        yh = self.colour_crop(y_hat)
        if "psnr" in self.metrics:
            out["psnr"] = M.psnr(self.yc, yh, self.R)
        if "ssim" in self.metrics:
            out["ssim"] = M.ssim(self.yc, yh, self.R)
        if self.spec is not None:
            q = M.spectrum(yh)
            for name, fn in (("hf-ratio", M.hf_ratio), ("spectrum-db", M.spectrum_db)):
                if name in self.metrics:
                    out[name] = fn(self.spec, q, A.scale)
        if "lattice" in self.metrics:
            out["lattice"] = M.lattice(self.yc, yh, A.scale)
        if "lattice-local" in self.metrics:
            out["lattice-local"] = M.local_lattice(self.yc, yh, A.scale)
        if "grid-levels" in self.metrics:
            out["grid-levels"] = M.grid_levels(yh, A.scale)
        if "niqe" in self.metrics:
            out["niqe"] = _niqe(yh, "ŷ")
        lr = [m for m in self.metrics if m.startswith("lr-")]
        if lr:
            A_yhat = self.colour(A(y_hat))
            refs = {"x": None if x is None else self.colour(x), "ay": self.colour(Ay)}
            for name in lr:
                ref = refs[name.rsplit("-", 1)[1]]
                if ref is not None:
                    e = M.mse(ref, A_yhat)
                    out[name] = e if name.startswith("lr-mse") else M.psnr_from_mse(e, self.R)
        return out


def _niqe(img: torch.Tensor, who: str) -> float:
    """NIQE of a (C, H, W) image on [0, 1]; an image it cannot measure is a ValueError that names it."""
    try:
        return NQ.niqe(img)
    except ValueError as e:
        raise AffsrError(f"{who}: {e}") from None


def _with_reference(methods: list[str], metrics: tuple[str, ...]) -> list[str]:
    """The methods, and REFERENCE (y's own NIQE) after them when NIQE is measured."""
    if "niqe" not in metrics:
        return methods
    if REFERENCE in methods:
        raise AffsrError(f"a method is named {REFERENCE!r}, the name of the HR images' own NIQE; rename it")
    return [*methods, REFERENCE]


def _checked(y_hat: torch.Tensor, want: tuple, who: str) -> torch.Tensor:
    if tuple(y_hat.shape) != want:
        raise AffsrError(f"{who} returned an image of shape {tuple(y_hat.shape)}, expected {want}")
    if not torch.isfinite(y_hat).all():
        raise AffsrError(f"{who} returned NaN or infinite values")
    return y_hat.double()


def evaluate_upscalers(
    hr: Path,
    upscalers: dict[str, tuple[Upscale, OperatorSpec]],
    metrics: tuple[str, ...],
    conv: Conventions = Conventions(),
    on_image: Callable[[int, int, str], None] | None = None,
    lpips: LPIPS | None = None,
) -> Results:
    """Mode (a): y -> x = A y -> ŷ = upscaler(x) -> metrics, for every HR image and upscaler.
    Each upscaler's input is made with its own A; upscalers that share A share x."""
    if not upscalers:
        raise AffsrError("nothing to evaluate: give at least one upscaler")
    files = list_images(hr)
    ops = {spec: Downsample(spec) for _, spec in upscalers.values()}
    res = Results(
        metrics,
        _with_reference(list(upscalers), metrics),
        conventions=conv.describe(next(iter(ops)) if len(ops) == 1 else None, "made", metrics),
    )
    if len(ops) > 1:  # upscalers with different A see different x
        res.conventions.update({f"A of {name}": spec.describe() for name, (_, spec) in upscalers.items()})
    for done, (stem, path) in enumerate(files.items()):
        pic = read_image(path, torch.float64)
        refs: dict[int, _Reference] = {}  # by scale: y cropped to a multiple of s
        inputs: dict[OperatorSpec, tuple[torch.Tensor, torch.Tensor]] = {}  # by A: (A y, x)
        for name, (fn, spec) in upscalers.items():
            s, A = spec.scale, ops[spec]
            if s not in refs:
                H, W = pic.pixels.shape[1:]
                if min(H, W) < s:
                    raise AffsrError(f"{path}: {W}×{H} is smaller than the scale {s}")
                refs[s] = _Reference(
                    pic.pixels[:, : H // s * s, : W // s * s], pic.bits, conv, metrics, lpips, path.name
                )
            ref = refs[s]
            if spec not in inputs:
                Ay = A(ref.y)
                inputs[spec] = (Ay, quantize(Ay, pic.bits) if conv.quantize_lr else Ay)
            Ay, x = inputs[spec]
            try:
                with torch.no_grad():
                    y_hat = fn(x.float().unsqueeze(0), pic.bits).detach().cpu()
            except RuntimeError as e:
                raise AffsrError(f"{name} failed on {path.name}: {str(e).splitlines()[0]}") from None
            y_hat = _checked(y_hat, (1, *ref.y.shape), f"{name} on {path.name}")[0]
            res.rows.append({"image": stem, "method": name, **ref.measure(y_hat, A, x, Ay)})
        if "niqe" in metrics:  # y at the first scale's crop
            res.rows.append({"image": stem, "method": REFERENCE, "niqe": next(iter(refs.values())).niqe})
        if on_image:
            on_image(done + 1, len(files), stem)
    return res


def evaluate_pairs(
    hr: Path,
    sr: Path,
    lr: Path | None,
    metrics: tuple[str, ...],
    spec: OperatorSpec | None = None,
    conv: Conventions = Conventions(),
    on_image: Callable[[int, int, str], None] | None = None,
    method: str = "sr",
    lpips: LPIPS | None = None,
) -> Results:
    """Mode (b): results made elsewhere. y is cropped to ŷ's size when it is at most s−1 pixels
    larger (HR sizes not a multiple of the scale); x is A's input when `lr` is given. `spec`: the A that
    made x (default: projection.choose_operator's for files made elsewhere, bicubic)."""
    spec = spec or choose_operator()
    if lr is None and any(m in ("lr-mse-x", "lr-psnr-x") for m in metrics):
        if set(metrics) >= {"lr-mse-x", "lr-mse-ay"} or set(metrics) >= {"lr-psnr-x", "lr-psnr-ay"}:
            metrics = tuple(m for m in metrics if m not in ("lr-mse-x", "lr-psnr-x"))
        else:
            raise AffsrError("LR metrics against the input x need the LR images: pass --lr DIR")
    pairs = pair_by_name(hr, sr, lr)
    A, s = Downsample(spec), spec.scale
    res = Results(
        metrics,
        _with_reference([method], metrics),
        conventions=conv.describe(spec, "none" if lr is None else "files", metrics),
    )
    for done, (stem, hp, sp, lp) in enumerate(pairs):
        y_pic, sr_pic = read_image(hp, torch.float64), read_image(sp, torch.float64)
        y, y_hat = y_pic.pixels, sr_pic.pixels
        if y.shape[0] != y_hat.shape[0]:
            raise AffsrError(
                f"channel mismatch: {hp} has {_channels(y.shape[0])}, {sp} has {_channels(y_hat.shape[0])}"
            )
        (H, W), (h2, w2) = y.shape[1:], y_hat.shape[1:]
        if (H, W) != (h2, w2):
            if not (0 <= H - h2 < s and 0 <= W - w2 < s and h2 % s == 0 and w2 % s == 0):
                raise AffsrError(f"size mismatch: {hp} is {W}×{H}, {sp} is {w2}×{h2}")
            y = y[:, :h2, :w2]  # HR cropped to a multiple of the scale, as the SR result was made
        x = None
        if lp is not None:
            x = read_image(lp, torch.float64).pixels
            if x.shape[0] != y.shape[0]:
                raise AffsrError(
                    f"channel mismatch: {hp} has {_channels(y.shape[0])}, {lp} has {_channels(x.shape[0])}"
                )
            if (s * x.shape[1], s * x.shape[2]) != (h2, w2):
                raise AffsrError(
                    f"size mismatch: {lp} is {x.shape[2]}×{x.shape[1]}, so {s}× is not {sp.name}'s {w2}×{h2} "
                    f"(pass --scale if the scale is not {s})"
                )
        if any(m.startswith("lr-") for m in metrics) and (h2 % s or w2 % s):
            raise AffsrError(f"LR metrics need SR sizes that are multiples of the scale {s}; {sp} is {w2}×{h2}")
        ref = _Reference(y, y_pic.bits, conv, metrics, lpips, hp.name)
        Ay = A(y) if any(m.startswith("lr-") for m in metrics) else None
        res.rows.append({"image": stem, "method": method, **ref.measure(y_hat, A, x, Ay)})
        if "niqe" in metrics:
            res.rows.append({"image": stem, "method": REFERENCE, "niqe": ref.niqe})
        if on_image:
            on_image(done + 1, len(pairs), stem)
    return res


def evaluate_outputs(
    sr: Path,
    metrics: tuple[str, ...],
    conv: Conventions = Conventions(),
    on_image: Callable[[int, int, str], None] | None = None,
    method: str = "sr",
) -> Results:
    """Mode (c): images without HR (a folder or one file), measured by the no-reference metrics only."""
    others = [m for m in metrics if m not in NO_REFERENCE]
    if others:
        raise AffsrError(
            f"without HR images only {', '.join(NO_REFERENCE)} can be measured; {', '.join(others)} "
            "need the ground truth (pass --hr DIR)"
        )
    files = list_images(sr)
    conventions = {
        k: v for k, v in conv.describe(None, "none", metrics).items() if k in ("colour", "crop border", "NIQE", "means")
    }
    conventions["NIQE"] = conventions["NIQE"].replace("; column HR: y's own", "")
    res = Results(metrics, [method], conventions=conventions)
    for done, (stem, path) in enumerate(files.items()):
        img = M.crop_border(read_image(path, torch.float64).pixels, conv.crop_border)
        res.rows.append({"image": stem, "method": method, "niqe": _niqe(img, path.name)})
        if on_image:
            on_image(done + 1, len(files), stem)
    return res
