"""NIQE, the Natural Image Quality Evaluator: a no-reference ("completely blind") quality score.

Mittal, Soundararajan and Bovik, *Making a "Completely Blind" Image Quality Analyzer*, IEEE Signal
Processing Letters 20(3), 2013. Lower is better: NIQE is the distance between a multivariate Gaussian
(MVG) fitted to natural-scene statistics of the image's patches and one fitted to the same statistics
of pristine photos. It needs no HR image, so it judges what a GAN invents where PSNR cannot.

Notation (<variable name> -> <name in paper>):
    mscn      -> Î(i, j) = (I(i, j) − μ(i, j)) / (σ(i, j) + C), eq. (1), C = 1
    mu, sigma -> μ, σ: local mean and standard deviation under a 7×7 Gaussian window w, σ_w = 7/6
    ggd_fit   -> α, σ² of the generalised Gaussian f(x; α, β) ∝ exp(−(|x|/β)^α), eq. (2)
    aggd_fit  -> ν, σ_l², σ_r² and η of the asymmetric GGD of the pairwise products, eqs. (3)-(4)
    mean, cov -> ν₁, Σ₁ (pristine model) and ν₂, Σ₂ (the image's patches)
    niqe      -> D(ν₁, ν₂, Σ₁, Σ₂) = sqrt((ν₁ − ν₂)ᵀ ((Σ₁ + Σ₂)/2)⁻¹ (ν₁ − ν₂)), eq. (5)

Steps, as the paper and its reference code (MATLAB `computequality.m`, BasicSR, pyiqa):
  1. the image's luma on 0–255, cut from the top left to a multiple of the 96×96 patch size;
  2. at each of two scales (the image, then a MATLAB-style antialiased bicubic ½ downscale of it):
     MSCN coefficients, eq. (1), Gaussian window with replicated edges;
  3. for every non-overlapping patch (96×96 at scale 1, 48×48 at scale 2): the GGD fit of its MSCN
     values (α, σ²) and the AGGD fits of the products of each coefficient with its neighbour
     horizontally, vertically and along both diagonals (ν, η, σ_l², σ_r² each; the neighbour is taken
     cyclically inside the patch, as `circshift` does in the reference): 18 features a scale, 36 a patch;
  4. the pristine model only: patches whose mean σ (scale 1) exceeds 0.75 × the image's sharpest
     patch; the MVG (ν₁, Σ₁) of those patches of every pristine photo (`fit_pristine`);
  5. the image's MVG (ν₂, Σ₂) over all its patches, and D, eq. (5), with the pseudo-inverse.

Conventions (which change the absolute numbers; the shipped pristine model was fitted with them):
    colour     RGB -> ITU-R BT.601 luma Y = 16 + 65.481 R + 128.553 G + 24.966 B on 0–255 (MATLAB
               rgb2ycbcr, BasicSR, pyiqa), rounded to integers as an 8-bit file's Y would be; a gray
               image is its value × 255, rounded. Input images are float tensors on [0, 1].
    GGD, AGGD  moment matching: the shape whose moment ratio equals the sample's, solved by linear
               interpolation in a table of the ratio over α = 0.2 … 10 in steps of 0.001 (the
               reference's grid, which takes the nearest grid point instead), clamped to that range
    patches    whose MSCN has no negative (or no positive) product have no AGGD fit: they are left
               out (NaN rows are dropped, as `nanmean`/`nancov` would drop them); an image none of
               whose patches has a fit (a flat one) has NIQE NaN
    Σ          sample covariance (N − 1); with a single patch Σ₂ = 0
    pristine   `niqe_pristine.safetensors` beside this module, fitted by examples/photos/fit_niqe.py
               on the HR training photos of the corpus (its metadata says which and how many);
               NOT the MATLAB release's parameters, so values differ from MATLAB's NIQE by an offset
               and scale that depend on the image, while the ranking of degradations agrees
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .errors import AffsrError

PATCH = 96  # patch side at scale 1 (48 at scale 2), as the paper
WINDOW_SIZE, WINDOW_SIGMA = 7, 7 / 6  # the Gaussian window of the MSCN transform, eq. (1)
C = 1.0  # the stabilising constant of eq. (1) on the 0–255 scale
SHARPNESS_THRESHOLD = 0.75  # pristine patches: mean σ above this share of the image's sharpest patch
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # neighbours of the pairwise products: H, V, D1, D2
BT601_Y = (65.481, 128.553, 24.966)  # Y = 16 + (these · RGB on [0, 1])
FEATURES = 36
PRISTINE = Path(__file__).with_name("niqe_pristine.safetensors")


class Pristine(NamedTuple):
    mean: np.ndarray  # (36,) ν₁
    cov: np.ndarray  # (36, 36) Σ₁
    metadata: dict  # what it was fitted on


# -- 1. luma -------------------------------------------------------------------------------------


def luma255(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, H, W) RGB or (1, H, W) / (H, W) gray on [0, 1] -> (H, W) float64 luma on 0–255, rounded."""
    a = img.detach().cpu().double().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 3:
        y = 16.0 + np.tensordot(np.asarray(BT601_Y), a, axes=(0, 0))
    elif a.ndim == 3 and a.shape[0] == 1:
        y = a[0] * 255.0
    elif a.ndim == 2:
        y = a * 255.0
    else:
        raise AffsrError(f"NIQE needs a gray (1, H, W) or RGB (3, H, W) image, got shape {tuple(a.shape)}")
    return np.round(y)


# -- 2. MSCN and the ½ downscale -------------------------------------------------------------------


def _gauss_taps(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    t = np.arange(size) - (size - 1) / 2
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()  # the 2-D window (MATLAB fspecial) is the outer product of these


def _filter_sep(z: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'same' correlation of (H, W) with symmetric taps, edges replicated (imfilter 'replicate')."""
    r = len(taps) // 2
    for axis in (0, 1):
        p = np.pad(z, [(r, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = z.shape[axis]
        z = sum(w * np.take(p, np.arange(k, k + n), axis=axis) for k, w in enumerate(taps))
    return z


def mscn(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (1): (H, W) on 0–255 -> (MSCN coefficients Î, local σ), both (H, W)."""
    taps = _gauss_taps()
    mu = _filter_sep(img, taps)
    sigma = np.sqrt(np.abs(_filter_sep(img * img, taps) - mu * mu))
    return (img - mu) / (sigma + C), sigma


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = −0.5 (MATLAB imresize 'bicubic')."""
    x = np.abs(x)
    return np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1, np.where(x <= 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))


HALF_TAPS = _cubic((np.arange(8) - 3.5) / 2)  # the antialiased kernel stretched ×2: 8 taps at ±0.5 … ±3.5
HALF_TAPS = HALF_TAPS / HALF_TAPS.sum()


def half(img: np.ndarray) -> np.ndarray:
    """(H, W), H and W even -> (H/2, W/2): MATLAB's imresize(img, 0.5) ('bicubic', antialiased, edges
    mirrored half-sample symmetrically). Output pixel j is centred on input 2j + ½."""
    for axis in (0, 1):
        n = img.shape[axis] // 2
        p = np.pad(img, [(4, 4) if a == axis else (0, 0) for a in (0, 1)], mode="symmetric")
        img = sum(w * np.take(p, np.arange(k + 1, k + 1 + 2 * n, 2), axis=axis) for k, w in enumerate(HALF_TAPS))
    return img


# -- 3. GGD and AGGD fits, patch features ---------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """α on 0.2 … 10 (step 0.001), ρ(α) = Γ(1/α)Γ(3/α)/Γ(2/α)² (decreasing; its inverse is the
    AGGD's r(α)), and Γ-ratios for η."""
    alpha = np.round(np.arange(200, 10001) / 1000, 3)
    lg = np.vectorize(math.lgamma)
    rho = np.exp(lg(1 / alpha) + lg(3 / alpha) - 2 * lg(2 / alpha))
    return alpha, rho, lg


def _shape_from_rho(rho_hat: np.ndarray) -> np.ndarray:
    """Invert ρ(α) = Γ(1/α)Γ(3/α)/Γ(2/α)² by linear interpolation; NaN stays NaN; clamped to [0.2, 10]."""
    alpha, rho, _ = _tables()
    out = np.interp(rho_hat, rho[::-1], alpha[::-1])  # rho decreases with α
    return np.where(np.isfinite(rho_hat), out, np.nan)


def ggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean GGD, eq. (2), by moment matching over the last axis: (α, σ²), where
    σ²/E[|x|]² = Γ(1/α)Γ(3/α)/Γ(2/α)². x: (..., n) -> two (...) arrays."""
    x = np.asarray(x, dtype=np.float64)
    var = np.mean(x * x, axis=-1)
    e_abs = np.mean(np.abs(x), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho_hat = var / e_abs**2
    return _shape_from_rho(rho_hat), var


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AGGD, eqs. (3)-(4), over the last axis: (ν, η, σ_l², σ_r²). σ_l, σ_r are the root mean squares
    of the negative and the positive samples; with γ̂ = σ_l/σ_r and r̂ = E[|x|]²/E[x²], ν solves
    Γ(2/ν)²/(Γ(1/ν)Γ(3/ν)) = r̂ (γ̂³ + 1)(γ̂ + 1)/(γ̂² + 1)², and
    η = (σ_r − σ_l) Γ(2/ν)/Γ(1/ν) · sqrt(Γ(1/ν)/Γ(3/ν)). No negative (or positive) sample: NaN."""
    x = np.asarray(x, dtype=np.float64)
    neg, pos = x < 0, x > 0
    sq = x * x
    with np.errstate(divide="ignore", invalid="ignore"):
        var_l = np.where(neg, sq, 0).sum(-1) / neg.sum(-1)
        var_r = np.where(pos, sq, 0).sum(-1) / pos.sum(-1)
        g = np.sqrt(var_l / var_r)
        r_hat = np.mean(np.abs(x), axis=-1) ** 2 / np.mean(sq, axis=-1)
        r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        nu = _shape_from_rho(1 / r_norm)  # r(ν) = 1/ρ(ν)
    _, _, lg = _tables()
    nu_safe = np.where(np.isfinite(nu), nu, 1.0)
    ratio = np.exp(lg(2 / nu_safe) - lg(1 / nu_safe)) * np.exp(0.5 * (lg(1 / nu_safe) - lg(3 / nu_safe)))
    eta = (np.sqrt(var_r) - np.sqrt(var_l)) * ratio
    return nu, np.where(np.isfinite(nu), eta, np.nan), var_l, var_r


def patch_features(coef: np.ndarray, patch: int) -> np.ndarray:
    """(H, W) MSCN coefficients, H and W multiples of `patch` -> (N, 18) features of its N
    non-overlapping patches (row-major): α, σ², then ν, η, σ_l², σ_r² of the H, V, D1, D2 products."""
    H, W = coef.shape
    blocks = coef.reshape(H // patch, patch, W // patch, patch).transpose(0, 2, 1, 3).reshape(-1, patch, patch)
    alpha, var = ggd_fit(blocks.reshape(len(blocks), -1))
    cols = [alpha, var]
    for dy, dx in SHIFTS:
        prod = blocks * np.roll(blocks, (dy, dx), axis=(1, 2))  # cyclic inside each patch
        cols += aggd_fit(prod.reshape(len(blocks), -1))
    return np.stack(cols, axis=1)


def features(img: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) luma on 0–255 -> ((N, 36) patch features at two scales, (N,) sharpness: the mean local σ
    of each patch at scale 1). The image is cut from the top left to multiples of `patch` (even).
    NaN pixels (holes of a reassembled photo) make the patches they reach NaN."""
    H, W = (s // patch * patch for s in img.shape)
    if H == 0 or W == 0 or patch % 2:
        raise AffsrError(f"NIQE needs images of at least {patch}×{patch} pixels, got {img.shape[1]}×{img.shape[0]}")
    img = np.asarray(img[:H, :W], dtype=np.float64)
    coef, sigma = mscn(img)
    sharp = sigma.reshape(H // patch, patch, W // patch, patch).mean(axis=(1, 3)).reshape(-1)
    coef2, _ = mscn(half(img))
    return np.hstack([patch_features(coef, patch), patch_features(coef2, patch // 2)]), sharp


# -- 4. the MVG, the pristine model, eq. (5) ------------------------------------------------------


def mvg(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 36) -> (ν, Σ) over the rows without NaN; Σ = 0 when a single row remains."""
    feats = feats[np.isfinite(feats).all(axis=1)]
    if len(feats) == 0:
        raise AffsrError("NIQE: no patch of the image has usable statistics (is it flat?)")
    cov = np.cov(feats, rowvar=False) if len(feats) > 1 else np.zeros((feats.shape[1],) * 2)
    return feats.mean(axis=0), cov


def pristine_features(img: np.ndarray, threshold: float = SHARPNESS_THRESHOLD, patch: int = PATCH) -> np.ndarray:
    """The rows of `features` a pristine model keeps: sharpness > threshold × the image's maximum
    (among patches with finite features)."""
    feats, sharp = features(img, patch)
    ok = np.isfinite(feats).all(axis=1) & np.isfinite(sharp)
    if not ok.any():
        return feats[:0]
    keep = ok & (sharp > threshold * sharp[ok].max())
    return feats[keep]


def fit_pristine(
    images, threshold: float = SHARPNESS_THRESHOLD, patch: int = PATCH
) -> tuple[np.ndarray, np.ndarray, int]:
    """ν₁, Σ₁ and the number of patches, from an iterable of (H, W) luma images on 0–255."""
    rows = [pristine_features(img, threshold, patch) for img in images]
    feats = np.concatenate(rows) if rows else np.zeros((0, FEATURES))
    if len(feats) < FEATURES + 1:
        raise AffsrError(f"a pristine model needs more than {FEATURES} sharp patches, got {len(feats)}")
    mean, cov = mvg(feats)
    return mean, cov, len(feats)


@functools.lru_cache(maxsize=4)
def load_pristine(path: str | Path | None = None) -> Pristine:
    """The pristine model (ν₁, Σ₁) from a safetensors file (default: the one shipped beside this module)."""
    from .weights import load

    path = Path(path) if path is not None else PRISTINE
    if not path.is_file():
        raise AffsrError(f"the NIQE pristine model {path} is missing (examples/photos/fit_niqe.py writes it)")
    tensors, meta = load(path)
    mean, cov = tensors.get("mean"), tensors.get("cov")
    if mean is None or cov is None or tuple(mean.shape) != (FEATURES,) or tuple(cov.shape) != (FEATURES, FEATURES):
        raise AffsrError(
            f"{path}: not a NIQE pristine model (needs 'mean' ({FEATURES},) and 'cov' ({FEATURES}, {FEATURES}))"
        )
    return Pristine(mean.double().numpy(), cov.double().numpy(), meta)


def distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """Eq. (5): sqrt((ν₁ − ν₂)ᵀ ((Σ₁ + Σ₂)/2)⁺ (ν₁ − ν₂)), with the pseudo-inverse."""
    d = mean1 - mean2
    return float(np.sqrt(max(float(d @ np.linalg.pinv((cov1 + cov2) / 2) @ d), 0.0)))


def niqe_luma(y: np.ndarray, model: Pristine | None = None) -> float:
    """NIQE of an (H, W) luma image on 0–255 (any rounding is the caller's)."""
    model = model or load_pristine()
    feats = features(np.asarray(y, dtype=np.float64))[0]
    if not np.isfinite(feats).all(axis=1).any():
        return math.nan  # no patch has statistics (a flat image): nothing to measure
    mean, cov = mvg(feats)
    return distance(model.mean, model.cov, mean, cov)


def niqe(img: torch.Tensor | np.ndarray, model: Pristine | None = None) -> float:
    """NIQE of a (C, H, W) image on [0, 1] (C = 1 gray or 3 RGB): lower is more natural. At least
    96×96 pixels (else a ValueError); the image is cut from the top left to multiples of 96. NaN when
    no patch has statistics to fit (a flat image)."""
    return niqe_luma(luma255(img), model)
