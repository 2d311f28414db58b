"""Metrics against scikit-image, BasicSR's convention (transcribed), and the behaviour of the
sharpness measures and of the two LR-consistency definitions."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from affsr_cli import evaluate as E
from affsr_cli import metrics as M
from affsr_cli import upscalers
from affsr_cli.downsample import Downsample
from affsr_cli.images import write_image
from affsr_cli.projection import ExactPinv, OperatorSpec


def photo_pairs():
    """(name, y, ŷ) as uint8 HWC or HW arrays: real photos against several distortions."""
    rng = np.random.default_rng(0)
    rgb = data.astronaut()[100:196, 150:278]  # 96×128×3
    gray = data.camera()[200:290, 180:301]  # 90×121, odd width
    out = []
    for name, y in (("rgb", rgb), ("gray", gray)):
        noisy = np.clip(y + rng.normal(0, 12, y.shape), 0, 255).astype(np.uint8)
        blurred = ndimage.gaussian_filter(y.astype(float), [1.5, 1.5, 0][: y.ndim]).round().astype(np.uint8)
        out += [(f"{name}-noise", y, noisy), (f"{name}-blur", y, blurred), (f"{name}-shift", y, np.roll(y, 1, axis=1))]
    return out


def tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float64) / 255)
    return t.permute(2, 0, 1) if t.ndim == 3 else t[None]


@pytest.mark.parametrize("name, y, y_hat", photo_pairs(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("data_range", [1.0, 2.0, 0.75])
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_equal_scikit_image(name, y, y_hat, data_range, crop):
    c = slice(crop, -crop) if crop else slice(None)
    ref_y, ref_yh = (a[c, c].astype(np.float64) / 255 for a in (y, y_hat))
    channel_axis = 2 if y.ndim == 3 else None
    want_psnr = sk_psnr(ref_y, ref_yh, data_range=data_range)
    want_ssim = sk_ssim(
        ref_y,
        ref_yh,
        data_range=data_range,
        channel_axis=channel_axis,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    ty, tyh = M.crop_border(tensor(y), crop), M.crop_border(tensor(y_hat), crop)
    assert abs(M.psnr(ty, tyh, data_range) - want_psnr) <= 1e-4
    assert abs(M.ssim(ty, tyh, data_range) - want_ssim) <= 1e-5
    assert 0.1 < want_ssim < 0.99  # the test pairs are neither trivial nor unrelated


def test_ssim_on_uint8_as_skimage_with_dtype_range():
    _, y, y_hat = photo_pairs()[0]
    want = sk_ssim(
        y, y_hat, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert abs(M.ssim(tensor(y), tensor(y_hat)) - want) <= 1e-5
    assert M.psnr(tensor(y), tensor(y)) == math.inf and M.ssim(tensor(y), tensor(y)) == pytest.approx(1, abs=1e-12)


def basicsr_y(img: np.ndarray) -> np.ndarray:
    """BasicSR metric_util.to_y_channel: float32 / 255, bgr2ycbcr(y_only) on BGR order, × 255."""
    bgr = img[..., ::-1].astype(np.float32) / 255.0
    return (np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0) / 255.0 * 255.0


def basicsr_psnr_ssim(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[float, float]:
    """BasicSR calculate_psnr / calculate_ssim with test_y_channel=True on uint8 HWC images; cv2.filter2D
    with an 11×11 Gaussian window (σ 1.5) kept where it fits ([5:-5, 5:-5]) written with scipy."""
    a, b = (basicsr_y(v[crop:-crop, crop:-crop]).astype(np.float64) for v in (a, b))
    psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g / g.sum(), g / g.sum())
    f = lambda z: ndimage.correlate(z, win, mode="reflect")[5:-5, 5:-5]  # noqa: E731
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return psnr, ssim.mean()


def test_y_channel_and_crop_follow_basicsr():
    rgb = np.random.default_rng(3).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    y = M.to_y(tensor(rgb))[0].numpy()
    assert np.abs(y * 255 - basicsr_y(rgb)).max() < 1e-4  # BasicSR rounds through float32
    assert M.to_y(torch.ones(3, 1, 1)).item() == pytest.approx(235 / 255)
    assert M.to_y(torch.zeros(3, 1, 1)).item() == pytest.approx(16 / 255)
    for name, a, b in photo_pairs()[:3]:
        want_psnr, want_ssim = basicsr_psnr_ssim(a, b, crop=4)
        ya, yb = (M.crop_border(M.to_y(tensor(v)), 4) for v in (a, b))
        assert abs(M.psnr(ya, yb) - want_psnr) <= 1e-4, name
        assert abs(M.ssim(ya, yb) - want_ssim) <= 1e-5, name


def test_sharpness_measures():
    y = tensor(data.camera()[100:292, 100:292])
    assert M.hf_ratio(y, y, 4) == pytest.approx(1) and M.spectrum_db(y, y, 4) == pytest.approx(0, abs=1e-9)
    blurred = [torch.from_numpy(ndimage.gaussian_filter(y.numpy(), [0, s, s])) for s in (0.7, 1.5, 3.0)]
    ratios = [M.hf_ratio(y, b, 4) for b in blurred]
    dists = [M.spectrum_db(y, b, 4) for b in blurred]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    assert 0 < dists[0] < dists[1] < dists[2]
    noisy = y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert M.hf_ratio(y, noisy, 4) > 1.2 and M.spectrum_db(y, noisy, 4) > 1
    assert M.hf_ratio(y, y * 0.5 + 0.2, 4) == pytest.approx(0.25)  # energy, mean-free: contrast², offset-blind
    # at scale 2 the band starts higher: bicubic-like blur loses less of it than at scale 4
    assert M.hf_ratio(y, blurred[0], 2) < M.hf_ratio(y, blurred[0], 4)


def test_lr_consistency_has_two_definitions(tmp_path):
    """Aŷ vs x (the input, rounded to 8 bits) and Aŷ vs A y differ by exactly the rounding of x."""
    rgb = data.coffee()[40:88, 200:264]  # 48×64
    write_image(tmp_path / "c.png", tensor(rgb))
    spec = OperatorSpec()
    res = E.evaluate_upscalers(
        tmp_path,
        {n: (upscalers.baseline(n, spec), spec) for n in upscalers.BASELINES},
        E.parse_metrics(["lr-mse", "lr-psnr"]),
        E.Conventions(),
    )
    rows = {r["method"]: r for r in res.rows}
    A = Downsample(spec)
    Ay = A(tensor(rgb))
    x = (Ay * 255).round() / 255
    assert rows["pinv"]["lr-mse-x"] < 1e-12  # A A⁺ x = x
    assert rows["pinv"]["lr-mse-ay"] == pytest.approx(float((x - Ay).square().mean()), rel=1e-6)
    assert 1e-7 < rows["pinv"]["lr-mse-ay"] < 1e-5  # 8-bit rounding: about (1/255)²/12
    bic = upscalers.bicubic(x.float()[None], 4)[0].double()
    assert rows["bicubic"]["lr-mse-x"] == pytest.approx(float((A(bic) - x).square().mean()), rel=1e-6)
    assert rows["bicubic"]["lr-psnr-x"] == pytest.approx(10 * math.log10(1 / rows["bicubic"]["lr-mse-x"]))
    assert rows["bicubic"]["lr-mse-x"] > 10 * rows["pinv"]["lr-mse-ay"]  # bicubic is not consistent
    float_lr = E.evaluate_upscalers(
        tmp_path,
        {"pinv": (upscalers.baseline("pinv", spec), spec)},
        ("lr-mse-x", "lr-mse-ay"),
        E.Conventions(quantize_lr=False),
    ).rows[0]
    assert float_lr["lr-mse-ay"] < 1e-12  # without rounding, x = A y and the definitions agree


def test_pinv_baseline_is_the_exact_pseudo_inverse():
    spec = OperatorSpec()
    x = torch.rand(1, 3, 6, 7, dtype=torch.float64)
    assert torch.allclose(upscalers.baseline("pinv", spec)(x), ExactPinv(Downsample(spec))(x))
    with pytest.raises(ValueError, match="baseline"):
        upscalers.baseline("lanczos", spec)


def test_lattice_on_images_with_a_known_grid():
    """An image of two cosines, one off the period-4 grid (amplitude a) and one on it (b): the grid's
    share of the non-DC energy is b²/(a² + b²) exactly; the ratio to y's share is what eval reports."""
    H, W, s = 48, 64, 4
    i = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    j = torch.arange(W, dtype=torch.float64)[None, :].expand(H, W)
    smooth = torch.cos(2 * math.pi * 3 * j / W)  # 3 cycles across: no lattice frequency
    grid = torch.cos(2 * math.pi * i / s) * torch.cos(2 * math.pi * j / s)  # period 4 in both directions
    for a, b in ((1.0, 0.1), (0.5, 0.5), (1.0, 0.0)):
        img = (0.5 + a * smooth + b * grid)[None]
        # cos·cos splits into 4 bins of (b/2)² each, the off-grid cosine into 2 of (a/2)²: energies b²/4·… cancel
        expected = (b**2 / 4) / (a**2 / 2 + b**2 / 4)
        assert M.lattice_share(img, s) == pytest.approx(expected, abs=1e-12)
    y = (0.5 + smooth + 0.01 * grid)[None].expand(3, H, W)
    y_hat = (0.5 + smooth + 0.1 * grid)[None].expand(3, H, W)
    assert M.lattice(y, y, s) == pytest.approx(1.0)
    share = lambda b: (b**2 / 4) / (1 / 2 + b**2 / 4)  # noqa: E731
    assert M.lattice(y, y_hat, s) == pytest.approx(share(0.1) / share(0.01), rel=1e-9)
    # a grid of period 2 lies on the period-4 lattice too; a period-3 grid does not
    assert M.lattice_share((smooth + torch.cos(math.pi * i))[None], s) > 0.3
    assert M.lattice_share((smooth + torch.cos(2 * math.pi * i / 3))[None, :, :], s) < 1e-20
    with pytest.raises(ValueError, match="smaller than the lattice period"):
        M.lattice_share(torch.zeros(1, 3, 3), 4)


def test_local_lattice_sees_a_grid_that_changes_over_the_picture():
    """A period-4 grid whose sign flips from one 64-pixel window to the next cancels in the image-wide
    lattice (share 0) but not in the local one, which holds its whole energy: b²/4 / (a²/2 + b²/4) as for an
    unflipped grid; equal to a loop over windows written here; the ratio to y's share; NaN under one window."""
    s, n = 4, M.LOCAL_CELLS
    H, W = 2 * s * n, 4 * s * n  # 2 × 4 windows
    i = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    j = torch.arange(W, dtype=torch.float64)[None, :].expand(H, W)
    smooth = torch.cos(2 * math.pi * j / (s * n))  # a whole cycle per window: every phase's window mean 0
    grid = torch.cos(2 * math.pi * i / s) * torch.cos(2 * math.pi * j / s)
    sign = (-1.0) ** ((i // (s * n)) + (j // (s * n)))  # flips window by window: a checkerboard of windows
    a, b = 1.0, 0.2
    img = (0.5 + a * smooth + b * sign * grid)[None]
    assert M.lattice_share(img, s) < 1e-20
    expected = (b**2 / 4) / (a**2 / 2 + b**2 / 4)
    assert M.local_lattice_share(img, s) == pytest.approx(expected, rel=1e-9)
    by_hand, c = 0.0, img[0]  # every window's own phase means, less the window's mean, n² pixels each
    for r in range(0, H, s * n):
        for q in range(0, W, s * n):
            w = c[r : r + s * n, q : q + s * n]
            means = torch.stack([w[u::s, v::s].mean() for u in range(s) for v in range(s)])
            by_hand += float((means - means.mean()).square().sum()) * n * n
    assert M.local_lattice_share(img, s) == pytest.approx(by_hand / float((c - c.mean()).square().sum()), rel=1e-12)
    y = (0.5 + a * smooth + 0.02 * sign * grid)[None].expand(3, H, W)
    share = lambda b: (b**2 / 4) / (a**2 / 2 + b**2 / 4)  # noqa: E731
    assert M.local_lattice(y, img.expand(3, H, W), s) == pytest.approx(share(b) / share(0.02), rel=1e-9)
    assert math.isnan(M.local_lattice_share(torch.rand(1, 63, 200), 4))  # smaller than one window


def test_grid_levels_of_a_known_grid():
    """A grid of ±d/255 at one pixel phase on a smooth image: grid-levels ≈ 2d (its peak to peak),
    whatever the content that averages out; the largest channel counts; 0 for a constant."""
    H, W, s = 64, 48, 4
    j = torch.arange(W, dtype=torch.float64)[None, :].expand(H, W)
    smooth = 0.5 + 0.3 * torch.cos(2 * math.pi * 3 * j / W)  # whole cycles: every phase has the same mean
    grid = torch.zeros(H, W, dtype=torch.float64)
    grid[0::4, 1::4], grid[2::4, 3::4] = 0.4 / 255, -0.4 / 255
    img = torch.stack([smooth, smooth + grid, smooth])
    assert M.grid_levels(img, s) == pytest.approx(0.8, abs=1e-9)
    assert M.grid_levels(img, s, levels=65535) == pytest.approx(0.8 * 257, abs=1e-6)
    assert M.grid_levels(torch.full((3, 8, 8), 0.3), s) == 0
    noise = torch.rand(1, 512, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = 255 * (1 / 12) ** 0.5 / (512 / s)  # a phase's mean over (512/s)² cells of uniform noise, in levels
    assert 1 * sigma < M.grid_levels(noise, s) < 6 * sigma  # 16 phases: peak to peak ≈ 3.5σ, no grid of its own
    with pytest.raises(ValueError, match="smaller than the lattice period"):
        M.grid_levels(torch.zeros(1, 3, 3), 4)


def test_lattice_through_eval_on_a_real_photo(tmp_path):
    """On a photo, A⁺x under the paper's Gaussian paints a 4-pixel lattice (its ±18 % ripple); under
    area it does not; bicubic upsampling has no more grid than the photo."""
    rgb = data.coffee()[:200, :320]
    write_image(tmp_path / "c.png", tensor(rgb))
    lat = {}
    for family in ("gaussian", "area"):
        spec = OperatorSpec(4, family=family)
        res = E.evaluate_upscalers(
            tmp_path,
            {n: (upscalers.baseline(n, spec), spec) for n in upscalers.BASELINES},
            ("lattice",),
            E.Conventions(crop_border=4, y_channel=True),
        )
        lat[family] = {r["method"]: r["lattice"] for r in res.rows}
    assert lat["gaussian"]["pinv"] > 10 * lat["area"]["pinv"] and lat["gaussian"]["pinv"] > 5
    assert lat["gaussian"]["bicubic"] < 2
