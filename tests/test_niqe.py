"""NIQE (affsr_cli/niqe.py) against what it must do: its fits recover known parameters, its filters agree
with independent implementations, and on real photos it rises with blur, with noise and from the HR
photo to its bicubic ×4 down-up version; `affsr eval` prints it for upscalers, for HR, and without HR."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import metrics as M
from affsr_cli import niqe as N
from affsr_cli.images import write_image
from helpers import affsr

ROOT = Path(__file__).resolve().parent.parent
VAL = ROOT / "examples" / "val"
PHOTOS = ("astronaut", "chelsea", "coffee")  # natural photos of the bundled val set (not in the pristine corpus)


def photo(name: str) -> np.ndarray:
    """(3, H, W) float64 on [0, 1]."""
    return np.asarray(Image.open(VAL / f"{name}.png").convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian (truncated at 4σ), edges mirrored, on each channel of (C, H, W)."""
    taps = M.gaussian_taps(sigma, 4.0).numpy()
    r = len(taps) // 2
    out = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = sum(w * out[:, k : k + img.shape[1], :] for k, w in enumerate(taps))
    return sum(w * out[:, :, k : k + img.shape[2]] for k, w in enumerate(taps))


def ggd_samples(rng, alpha: float, n: int, scale_left: float = 1.0, scale_right: float = 1.0) -> np.ndarray:
    """(A)GGD samples: |x| = β G^(1/α), G ~ Gamma(1/α), β = scale_left on the left (with probability
    β_l/(β_l + β_r)) and scale_right on the right. Equal scales: the symmetric GGD of eq. (2)."""
    mag = rng.gamma(1 / alpha, 1.0, n) ** (1 / alpha)
    left = rng.random(n) < scale_left / (scale_left + scale_right)
    return np.where(left, -scale_left * mag, scale_right * mag)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_ggd_fit_recovers_the_shape_and_variance(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    x = ggd_samples(rng, alpha, 200_000, 1.7, 1.7)
    a, var = N.ggd_fit(x)
    assert abs(a - alpha) < 0.03 * alpha, (a, alpha)
    true_var = 1.7**2 * math.gamma(3 / alpha) / math.gamma(1 / alpha)
    assert abs(var - true_var) < 0.02 * true_var
    if alpha == 2.0:  # the fit of a Gaussian from an independent sampler
        a_norm, var_norm = N.ggd_fit(rng.normal(0, 3, 200_000))
        assert abs(a_norm - 2) < 0.05 and abs(var_norm - 9) < 0.1


def test_ggd_fit_agrees_with_scipy_gennorm():
    stats = pytest.importorskip("scipy.stats")
    for beta in (0.8, 1.5):
        x = stats.gennorm.rvs(beta, scale=0.5, size=(3, 100_000), random_state=np.random.default_rng(1))
        a, _ = N.ggd_fit(x)  # over the last axis: three fits at once
        assert a.shape == (3,) and np.all(np.abs(a - beta) < 0.03 * beta), (a, beta)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 2.0])
def test_aggd_fit_recovers_the_shape_and_the_asymmetry(alpha):
    rng = np.random.default_rng(7)
    bl, br = 1.0, 2.5
    x = ggd_samples(rng, alpha, 300_000, bl, br)
    nu, eta, var_l, var_r = N.aggd_fit(x)
    assert abs(nu - alpha) < 0.04 * alpha, (nu, alpha)
    g = math.gamma
    assert abs(eta - (br - bl) * g(2 / alpha) / g(1 / alpha)) < 0.03 * abs(eta)  # η is the mean
    assert abs(eta - x.mean()) < 0.03 * abs(eta)
    assert abs(var_l - bl**2 * g(3 / alpha) / g(1 / alpha)) < 0.05 * var_l
    assert abs(var_r - br**2 * g(3 / alpha) / g(1 / alpha)) < 0.05 * var_r
    mirrored = N.aggd_fit(-x)  # swapping the sides swaps σ_l and σ_r and negates η
    assert np.isclose(mirrored[1], -eta) and np.isclose(mirrored[2], var_r) and np.isclose(mirrored[3], var_l)


def test_aggd_of_one_signed_samples_is_nan():
    nu, eta, var_l, _ = N.aggd_fit(np.abs(np.random.default_rng(0).normal(size=1000)))
    assert math.isnan(nu) and math.isnan(eta) and math.isnan(var_l)


def test_mscn_window_agrees_with_opencv():
    cv2 = pytest.importorskip("cv2")
    y = N.luma255(torch.from_numpy(photo("chelsea")))
    coef, sigma = N.mscn(y)
    blur = lambda z: cv2.GaussianBlur(z, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)  # noqa: E731
    mu = blur(y)
    ref_sigma = np.sqrt(np.abs(blur(y * y) - mu * mu))
    assert np.abs(sigma - ref_sigma).max() < 1e-6
    assert np.abs(coef - (y - mu) / (ref_sigma + 1)).max() < 1e-8
    assert abs(coef.mean()) < 0.1 and 0.2 < coef.std() < 1.5  # what MSCN is for: near zero mean, unit-ish spread


def test_half_is_the_antialiased_bicubic_of_pillow_inside_the_borders():
    """Pillow's BICUBIC downscale is Keys' a = −0.5 kernel stretched by the factor (antialiased, as
    MATLAB's imresize); it renormalises at the borders instead of mirroring, so compare inside."""
    y = N.luma255(torch.from_numpy(photo("coffee")))
    h, w = y.shape
    ours = N.half(y)
    pil = np.asarray(
        Image.fromarray(y.astype(np.float32), mode="F").resize((w // 2, h // 2), Image.BICUBIC), dtype=np.float64
    )
    assert ours.shape == pil.shape
    assert np.abs(ours[3:-3, 3:-3] - pil[3:-3, 3:-3]).max() < 1e-3


def test_features_shape_and_patch_grid():
    y = N.luma255(torch.from_numpy(photo("astronaut")))  # 288 wide, 320 high: 3 × 3 patches of 96
    feats, sharp = N.features(y)
    assert feats.shape == (9, N.FEATURES) and sharp.shape == (9,)
    assert np.isfinite(feats).all() and (sharp > 0).all()
    assert np.all((feats[:, [0, 18]] >= 0.2) & (feats[:, [0, 18]] <= 10))  # shapes in the table's range
    with pytest.raises(ValueError, match="at least 96×96"):
        N.features(y[:90])


def test_niqe_rises_with_gaussian_blur():
    for name in PHOTOS:
        img = photo(name)
        scores = [N.niqe(torch.from_numpy(img))] + [N.niqe(torch.from_numpy(gaussian_blur(img, s))) for s in (1, 2, 3)]
        assert all(a < b for a, b in zip(scores, scores[1:])), (name, scores)


def test_niqe_rises_with_gaussian_noise():
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        img = photo(name)
        noisy = [np.clip(img + rng.normal(0, s / 255, img.shape), 0, 1) for s in (5, 10, 20)]
        scores = [N.niqe(img)] + [N.niqe(z) for z in noisy]  # numpy input works too
        assert all(a < b for a, b in zip(scores, scores[1:])), (name, scores)


def test_niqe_is_lower_for_the_hr_photo_than_for_its_bicubic_down_up():
    for path in sorted(VAL.glob("*.png")):  # all five, hubble and rocket (JPEG-born) included
        im = Image.open(path).convert("RGB")
        w, h = im.size
        down_up = im.resize((w // 4, h // 4), Image.BICUBIC).resize((w // 4 * 4, h // 4 * 4), Image.BICUBIC)
        hr = np.asarray(im.crop((0, 0, w // 4 * 4, h // 4 * 4)), dtype=np.float64).transpose(2, 0, 1) / 255
        bic = np.asarray(down_up, dtype=np.float64).transpose(2, 0, 1) / 255
        assert N.niqe(hr) < N.niqe(bic), path.name


def test_gray_and_y_channel_inputs_give_the_rgb_luma_score():
    img = torch.from_numpy(photo("chelsea"))
    assert N.niqe(M.to_y(img)) == pytest.approx(N.niqe(img), abs=1e-9)  # Y on [16/255, 235/255], ×255


def test_flat_image_has_no_niqe_and_identical_statistics_have_distance_zero():
    assert math.isnan(N.niqe(torch.full((3, 200, 200), 0.5, dtype=torch.float64)))
    model = N.load_pristine()
    assert N.distance(model.mean, model.cov, model.mean, model.cov) == 0


def test_the_shipped_pristine_model():
    model = N.load_pristine()
    assert model.mean.shape == (N.FEATURES,) and model.cov.shape == (N.FEATURES, N.FEATURES)
    assert np.allclose(model.cov, model.cov.T) and np.linalg.eigvalsh(model.cov).min() > 0
    assert int(model.metadata["patches"]) > N.FEATURES and "training photos" in model.metadata["fitted_on"]
    assert not set(model.metadata["photos"].split(",")) & {f"skimage-{p}" for p in PHOTOS}  # tests use unseen photos


def test_fit_pristine_on_photos_gives_a_model_under_which_they_score_lower_than_their_blur(tmp_path):
    imgs = [N.luma255(torch.from_numpy(photo(p))) for p in PHOTOS]
    feats = np.concatenate([N.features(y)[0] for y in imgs])  # all patches: 27 rows < 37, so not pristine_features
    with pytest.raises(ValueError, match="more than 36 sharp patches"):
        N.fit_pristine(imgs)
    mean, cov = N.mvg(feats)
    model = N.Pristine(mean, cov, {})
    blurred = N.luma255(torch.from_numpy(gaussian_blur(photo("coffee"), 2)))
    assert N.niqe_luma(imgs[2], model) < N.niqe_luma(blurred, model)


def test_load_pristine_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"mean": torch.zeros(3)}, str(bad))
    with pytest.raises(ValueError, match="not a NIQE pristine model"):
        N.load_pristine(bad)
    pickle = tmp_path / "p.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    with pytest.raises(ValueError):
        N.load_pristine(pickle)


# -- affsr eval -----------------------------------------------------------------------------------


@pytest.fixture
def two_photos(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    for name in ("chelsea", "coffee"):
        (d / f"{name}.png").write_bytes((VAL / f"{name}.png").read_bytes())
    return d


def test_eval_prints_niqe_for_baselines_and_hr(two_photos, tmp_path):
    js = tmp_path / "r.json"
    r = affsr(
        "eval",
        "-m",
        "psnr",
        "niqe",
        "hf-ratio",
        "-b",
        "bicubic",
        "--operator",
        "bicubic",
        "--hr",
        two_photos,
        "--json",
        js,
    )
    assert r.returncode == 0, r.stderr
    assert "NIQE (no reference) ↓" in r.stdout and "HR" in r.stdout and "pristine model" in r.stdout
    doc = json.loads(js.read_text())
    assert doc["methods"] == ["bicubic", "HR"]
    means = doc["means"]
    assert means["HR"]["niqe"] < means["bicubic"]["niqe"]  # the photo is more natural than its bicubic
    assert means["HR"]["psnr"] is None  # y's own row holds only the no-reference metrics
    hr_rows = {row["image"]: row["niqe"] for row in doc["images"] if row["method"] == "HR"}
    for name, value in hr_rows.items():
        y = np.asarray(Image.open(two_photos / f"{name}.png").convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255
        assert value == pytest.approx(N.niqe(y), rel=1e-9)  # sides are multiples of 4: no crop


def test_eval_measures_results_without_hr(two_photos, tmp_path):
    js = tmp_path / "r.json"
    r = affsr("eval", "--sr", two_photos, "-m", "niqe", "--json", js)
    assert r.returncode == 0, r.stderr
    assert "NIQE" in r.stdout
    doc = json.loads(js.read_text())
    assert doc["methods"] == ["hr"] and {row["image"] for row in doc["images"]} == {"chelsea", "coffee"}
    r = affsr("eval", "--sr", two_photos, "-m", "psnr", "niqe")
    assert r.returncode != 0 and "psnr" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_eval_refuses_images_too_small_for_niqe(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    write_image(d / "tiny.png", torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0)))
    r = affsr("eval", "-m", "niqe", "-b", "bicubic", "--hr", d)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "tiny.png" in r.stderr and "96×96" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
