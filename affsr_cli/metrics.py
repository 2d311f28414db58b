"""Image quality metrics on float tensors (C, H, W), computed in float64.

    psnr         10·log10(R² / MSE), MSE over every pixel and channel (skimage, BasicSR)
    ssim         Wang et al. 2004 with an 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
                 population covariances, mean over the map where the window fits inside the
                 image (= skimage `structural_similarity(gaussian_weights=True, sigma=1.5,
                 use_sample_covariance=False)` = BasicSR's `calculate_ssim`), then over channels
    hf_ratio     energy of ŷ outside the band an LR image can carry, over that of y: 1 when the
                 spectra agree, < 1 for blur (MSE-like averages), > 1 for noise or over-sharpening
    spectrum_db  mean |10·log10| ratio of the radially averaged power spectra of ŷ and y over the
                 same high band: 0 when they agree; penalises blur and invented texture alike
    lattice      the share of ŷ's non-DC energy at the s² − 1 period-s frequencies (k·H/s, l·W/s),
                 (k, l) ≠ (0, 0), over the same share for y: 1 when ŷ has no more of an s-pixel grid
                 than the real image, 100 when a grid holds a hundred times y's share
    local_lattice  the same count in windows of 16 × 16 LR pixels, each window's own period-s pattern:
                 a grid that changes over the picture, which cancels in the image-wide one

R is the data range (peak-to-peak value of the signal, 1 for images on [0, 1]). `to_y` is ITU-R
BT.601 luma as in BasicSR and MATLAB's rgb2ycbcr; `crop_border` cuts n pixels off every edge.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .errors import AffsrError

BT601_Y = (65.481, 128.553, 24.966)  # Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255 on [0, 1]
SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03  # 11 taps, as skimage and Wang et al.


def to_y(img: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) BT.601 luma Y on [16/255, 235/255]."""
    if img.shape[-3] != 3:
        raise AffsrError(f"the Y channel needs an RGB image, got {img.shape[-3]} channel(s)")
    w = img.new_tensor(BT601_Y).view(3, 1, 1)
    return ((img * w).sum(-3, keepdim=True) + 16.0) / 255.0


def crop_border(img: torch.Tensor, n: int) -> torch.Tensor:
    """Cut n pixels off each edge of (..., H, W)."""
    if n < 0:
        raise AffsrError(f"crop border must be ≥ 0, got {n}")
    H, W = img.shape[-2:]
    if 2 * n >= min(H, W):
        raise AffsrError(f"crop border {n} leaves nothing of a {H}×{W} image")
    return img[..., n : H - n, n : W - n] if n else img


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    _same_shape(a, b)
    return float((a.double() - b.double()).square().mean())


def psnr(y: torch.Tensor, y_hat: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; +inf for identical images."""
    e = mse(y, y_hat)
    return math.inf if e == 0 else 10 * math.log10(data_range**2 / e)


def psnr_from_mse(e: float, data_range: float = 1.0) -> float:
    return math.inf if e == 0 else 10 * math.log10(data_range**2 / e)


def gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> torch.Tensor:
    """1-D Gaussian of radius int(truncate·σ + 0.5) (scipy.ndimage's rule), normalised: (2r+1,)."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _blur_valid(z: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian on one (H, W) plane where the window fits: (H − 2r, W − 2r). The taps are
    symmetric: each pair of rows (columns) is added with one weight. One plane at a time stays in cache."""
    w, k = taps.tolist(), taps.numel()
    r = k // 2
    for dim in (0, 1):
        m = z.shape[dim] - 2 * r
        out = z.narrow(dim, r, m) * w[r]
        for t in range(r):
            out.add_(z.narrow(dim, t, m), alpha=w[t]).add_(z.narrow(dim, k - 1 - t, m), alpha=w[t])
        z = out
    return z


def ssim(
    y: torch.Tensor,
    y_hat: torch.Tensor,
    data_range: float = 1.0,
    *,
    sigma: float = SSIM_SIGMA,
    K1: float = SSIM_K1,
    K2: float = SSIM_K2,
) -> float:
    """Mean SSIM of (C, H, W) images, averaged over channels (Wang et al. 2004, Gaussian window)."""
    _same_shape(y, y_hat)
    taps = gaussian_taps(sigma)
    k = taps.numel()
    if min(y.shape[-2:]) < k:
        raise AffsrError(f"SSIM needs images of at least {k}×{k} pixels (after any crop), got {tuple(y.shape[-2:])}")
    a, b = y.double().reshape(-1, *y.shape[-2:]), y_hat.double().reshape(-1, *y.shape[-2:])  # (C, H, W)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    means = []
    for ac, bc in zip(a, b):  # channel by channel: the maps of one channel fit in cache
        mu_a, mu_b = _blur_valid(ac, taps), _blur_valid(bc, taps)
        sq, ab = _blur_valid(ac * ac + bc * bc, taps), _blur_valid(ac * bc, taps)  # σ_a² + σ_b² needs only a² + b²
        mu_ab, mu_sq = mu_a * mu_b, mu_a**2 + mu_b**2
        s = (2 * mu_ab + c1) * (2 * (ab - mu_ab) + c2) / ((mu_sq + c1) * (sq - mu_sq + c2))
        means.append(s.mean())
    return float(torch.stack(means).mean())


class Spectrum(NamedTuple):
    power: torch.Tensor  # (H, W//2+1) power of the Hann-windowed, mean-free image, channels summed
    fy: torch.Tensor  # (H, 1) |vertical frequency| in cycles/pixel
    fx: torch.Tensor  # (1, W//2+1) horizontal frequency in cycles/pixel
    size: tuple[int, int]  # (H, W)


def spectrum(img: torch.Tensor) -> Spectrum:
    """Power spectrum of a (C, H, W) image (rfft columns weighted by how often they occur in the
    full FFT), for `hf_ratio` and `spectrum_db`; compute it once to compare y with several ŷ."""
    H, W = img.shape[-2:]
    img = img.double().reshape(-1, H, W)
    win = (
        torch.hann_window(H, periodic=False, dtype=torch.float64)[:, None]
        * torch.hann_window(W, periodic=False, dtype=torch.float64)[None, :]
    )
    f = torch.fft.rfft2((img - img.mean((-2, -1), keepdim=True)) * win)
    power = torch.view_as_real(f).square().sum((0, -1))  # (H, W//2+1)
    power[:, 1 : (W + 1) // 2] *= 2  # columns 1 … ⌈W/2⌉−1 stand for their mirror images too
    fy = torch.fft.fftfreq(H, dtype=torch.float64).abs()[:, None]
    return Spectrum(power, fy, torch.fft.rfftfreq(W, dtype=torch.float64)[None, :], (H, W))


def _spectra(y, y_hat) -> tuple[Spectrum, Spectrum]:
    p, q = (v if isinstance(v, Spectrum) else spectrum(v) for v in (y, y_hat))
    if p.size != q.size:
        raise AffsrError(f"images differ in size: {p.size} and {q.size}")
    return p, q


def hf_ratio(y: torch.Tensor | Spectrum, y_hat: torch.Tensor | Spectrum, scale: int) -> float:
    """Σ power of ŷ / Σ power of y over frequencies with max(|f_y|, |f_x|) > 1/(2s) cycles/pixel,
    the ones an LR image at scale s cannot carry (Hann window, mean removed, channels summed).
    y, y_hat: (C, H, W) images or their `spectrum`."""
    p, q = _spectra(y, y_hat)
    band = torch.maximum(p.fy, p.fx) > 1 / (2 * scale)
    ref = float(p.power[band].sum())
    return float(q.power[band].sum()) / ref if ref > 0 else math.nan


def spectrum_db(y: torch.Tensor | Spectrum, y_hat: torch.Tensor | Spectrum, scale: int) -> float:
    """Mean over radial bins with 1/(2s) ≤ |f| < 1/2 of |10·log10(P_ŷ(r) / P_y(r))|, P(r) the radially
    averaged power spectrum in bins 1/min(H, W) wide. y, y_hat: (C, H, W) images or their `spectrum`."""
    p, q = _spectra(y, y_hat)
    n = min(p.size)
    first, last = math.ceil(n / (2 * scale)), n // 2  # bin k: k/n ≤ |f| < (k+1)/n
    bins = (torch.sqrt(p.fy**2 + p.fx**2) * n).floor().long()
    keep = (bins >= first) & (bins < last)
    if not keep.any():
        return math.nan
    idx = bins[keep] - first
    pb = torch.zeros(last - first, dtype=torch.float64).index_add_(0, idx, p.power[keep])
    qb = torch.zeros(last - first, dtype=torch.float64).index_add_(0, idx, q.power[keep])
    eps = 1e-12 * float(p.power.sum() + q.power.sum()) + 1e-300  # empty bins (flat images): no log 0
    return float((10 * torch.log10((qb + eps) / (pb + eps))).abs().mean())


LOCAL_CELLS = 16  # local_lattice: windows of 16 × 16 LR pixels (64 × 64 at 4×)


def _cut_to_period(img: torch.Tensor, scale: int) -> torch.Tensor:
    """img (..., H, W) cut from the top left to sides that are multiples of the period s."""
    H, W = img.shape[-2] // scale * scale, img.shape[-1] // scale * scale
    if H == 0 or W == 0:
        raise AffsrError(f"a {img.shape[-1]}×{img.shape[-2]} image is smaller than the lattice period {scale}")
    return img[..., :H, :W]


def lattice_share(img: torch.Tensor, scale: int) -> float:
    """Share of the non-DC energy of a (C, H, W) image (channels summed, each channel's mean removed,
    no window) at the frequencies of period s: (k·H/s, l·W/s), k, l = 0 … s−1, (k, l) ≠ (0, 0). An
    image whose sides are not multiples of s is cut to them (from the top left) first."""
    img = _cut_to_period(img, scale)
    H, W = img.shape[-2:]
    img = img.double().reshape(-1, H, W)
    power = torch.fft.fft2(img - img.mean((-2, -1), keepdim=True)).abs().square().sum(0)  # (H, W), DC = 0
    total = float(power.sum())
    grid = float(power[:: H // scale, :: W // scale].sum())  # (s, s) bins; (0, 0) is the removed mean
    return grid / total if total > 0 else math.nan


def lattice(y: torch.Tensor, y_hat: torch.Tensor, scale: int) -> float:
    """lattice_share(ŷ) / lattice_share(y): 1 = as much period-s grid as the real image has."""
    _same_shape(y, y_hat)
    ref = lattice_share(y, scale)
    return lattice_share(y_hat, scale) / ref if ref > 0 else math.nan


def local_lattice_share(img: torch.Tensor, scale: int, cells: int = LOCAL_CELLS) -> float:
    """lattice_share counted window by window: the energy of each window's own period-s pattern (windows of
    `cells` × `cells` cells of s × s pixels, from the top left, the rest cut; per window and channel the
    mean of each of the s² pixel phases less the window's mean, each of the cells² pixels of a phase
    counting it) over the image's non-DC energy (each channel's mean removed). A grid that changes over
    the picture (its phase or sign), which cancels in the image-wide pattern, counts here. NaN for an
    image smaller than one window."""
    side = scale * cells
    img = img.double().reshape(-1, *img.shape[-2:])  # (C, H, W)
    H, W = img.shape[-2] // side * side, img.shape[-1] // side * side
    if H == 0 or W == 0:
        return math.nan  # smaller than one window: nothing to count (eval's table shows it as such)
    img = img[:, :H, :W]
    total = float((img - img.mean((-2, -1), keepdim=True)).square().sum())
    phases = img.reshape(-1, H // side, cells, scale, W // side, cells, scale).mean((2, 5))  # (C, bh, s, bw, s)
    pattern = phases - phases.mean((2, 4), keepdim=True)
    return float(pattern.square().sum()) * cells * cells / total if total > 0 else math.nan


def local_lattice(y: torch.Tensor, y_hat: torch.Tensor, scale: int) -> float:
    """local_lattice_share(ŷ) / local_lattice_share(y): 1 = as much local period-s pattern as the real image."""
    _same_shape(y, y_hat)
    ref = local_lattice_share(y, scale)
    return local_lattice_share(y_hat, scale) / ref if ref > 0 else math.nan


def grid_levels(img: torch.Tensor, scale: int, levels: int = 255) -> float:
    """Peak-to-peak of the image-wide period-s pattern of a (C, H, W) image on [0, 1], in `levels`
    (grey levels of 8 bits by default), the largest over channels: the mean of each of the s × s pixel
    phases over all cells, less their mean. It is what `lattice` counts, in units the eye can judge:
    a grid under about one level is invisible. Sides are cut to multiples of s from the top left."""
    img = _cut_to_period(img, scale)
    H, W = img.shape[-2:]
    img = img.double().reshape(-1, H // scale, scale, W // scale, scale)
    phases = img.mean((1, 3))  # (C, s, s)
    return float((phases.amax((1, 2)) - phases.amin((1, 2))).max()) * levels


def _same_shape(a: torch.Tensor, b: torch.Tensor):
    if a.shape != b.shape:
        raise AffsrError(f"images differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
