"""The operator families against the libraries they claim to match (Pillow, OpenCV, MATLAB's imresize),
their exact A⁺ at every pixel, and the promise anyone can check with one line of Pillow."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import boxfit, checkpoint, consistency, methods
from affsr_cli.config import TrainConfig
from affsr_cli.downsample import Downsample
from affsr_cli.infer import Upscaler
from affsr_cli.projection import FAMILIES, ExactPinv, OperatorSpec, Projection
from affsr_cli.recipe import resolve
from helpers import one_thread as affsr

ROOT = Path(__file__).resolve().parent.parent
VAL = ROOT / "examples" / "val"
PILLOW = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "lanczos3": Image.Resampling.LANCZOS,
}
SIZES = [(37, 53), (5, 3), (1, 1), (2, 7), (1, 9)]  # LR (h, w): odd, tiny, non-square


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("family", PILLOW)
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_equals_pillow_resize_of_float_images(family, scale):
    """A = Pillow's Image.resize on mode "F" images (float32 between its two passes), borders included."""
    A = Downsample(OperatorSpec(scale, family=family))
    for h, w in SIZES:
        y = rng(h * w).random((scale * h, scale * w)).astype(np.float32)
        ref = np.asarray(Image.fromarray(y).resize((w, h), PILLOW[family]))
        assert np.abs(A(torch.from_numpy(y).double()).numpy() - ref).max() <= 1e-5, (h, w)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_area_equals_opencv_inter_area(scale):
    cv2 = pytest.importorskip("cv2")
    A = Downsample(OperatorSpec(scale, family="area"))
    for h, w in SIZES:
        y = rng(1).random((scale * h, scale * w)).astype(np.float32)
        ref = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w)
        assert np.abs(A(torch.from_numpy(y).double()).numpy() - ref).max() <= 1e-5, (h, w)


def imresize_contributions(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """MATLAB imresize's contributions() for the cubic kernel with antialiasing, as documented: the
    kernel stretched by 1/scale (width 4/scale), u = x/scale + ½(1 − 1/scale) for 1-based output x,
    ceil(width) + 2 taps from floor(u − width/2), rows normalised, indices mirrored symmetrically.
    Returned as the dense (out_length, in_length) matrix."""

    def cubic(t):
        a = np.abs(t)
        return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))

    width = 4 / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    indices = left + np.arange(int(np.ceil(width)) + 2)[None, :]
    weights = scale * cubic(scale * (u - indices))
    weights /= weights.sum(1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = aux[np.mod(indices.astype(int) - 1, len(aux))] - 1
    M = np.zeros((out_length, in_length))
    np.add.at(M, (np.repeat(np.arange(out_length), indices.shape[1]), indices.ravel()), weights.ravel())
    return M


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_matlab_equals_imresize_contributions(scale):
    A = Downsample(OperatorSpec(scale, family="bicubic", boundary="matlab"))
    for n in (1, 2, 5, 37):
        ref = imresize_contributions(scale * n, n, 1 / scale)
        assert np.abs(A.matrix(n).numpy() - ref).max() <= 1e-12, n
    y = torch.from_numpy(rng(2).random((3, 5 * scale, 7 * scale)))
    Mh, Mw = (torch.from_numpy(imresize_contributions(scale * n, n, 1 / scale)) for n in (5, 7))
    assert (A(y) - Mh @ y @ Mw.T).abs().max() <= 1e-12


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("boundary", ["pil", "matlab", "circular"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_exact_pinv_every_pixel(family, boundary, scale):
    """Aᵀ is A's transpose and Π is exact at every pixel: float64 ≤ 1e-12, float32 ≤ 1e-5."""
    A = Downsample(OperatorSpec(scale, boundary=boundary, family=family))
    P = Projection(A)
    for h, w in SIZES:
        g = torch.Generator().manual_seed(h * w)
        y, r = (
            torch.rand(2, scale * h, scale * w, generator=g, dtype=torch.float64),
            torch.rand(2, h, w, generator=g, dtype=torch.float64),
        )
        assert torch.allclose((A(y) * r).sum(), (y * A.adjoint(r)).sum(), rtol=1e-12, atol=1e-12)
        assert torch.allclose(A.matrix(h) @ y @ A.matrix(w).T, A(y), atol=1e-13)
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            x, f = r.to(dtype), y.to(dtype)
            assert (A(P(f, x)) - x).abs().max() <= tol, (h, w, dtype)


def test_flat_image_ripple_of_pinv():
    """A⁺ of a flat image, away from the borders: flat for the kernels whose shifted copies sum to one
    (box, triangle, Keys cubic), ±0.4 % for Lanczos, ±17.6 % for the paper's Gaussian (the ripple a
    4-pixel lattice starts from; README "Operators"). Pillow's renormalised borders make it ripple
    near the edges; mirrored borders do not."""

    def ripple(family, boundary, inner=True):
        up = ExactPinv(Downsample(OperatorSpec(4, family=family, boundary=boundary)))(
            torch.full((1, 64, 64), 0.5, dtype=torch.float64)
        )
        up = up[0, 64:-64, 64:-64] if inner else up[0]
        return float((up.max() - up.min()) / 2 / 0.5)

    for family in ("area", "bilinear", "bicubic"):
        assert (
            ripple(family, "pil") < 1e-6 and ripple(family, "matlab", inner=False) < 1e-9
        )  # pil: the border's ripple decays inwards
    assert 0.003 < ripple("lanczos3", "pil") < 0.005
    assert 0.17 < ripple("gaussian", "symmetric") < 0.18
    assert ripple("bicubic", "pil", inner=False) > 0.3


@pytest.mark.parametrize("family", PILLOW)
def test_pillow_resize_of_saved_file_gives_input_back(family):
    """The one-line check: Image.resize(out, (w, h), filter) of an 8-bit output equals the 8-bit input,
    through the whole contract (network, Π, box fit, rounding) on crops of real photos."""
    up = Upscaler.load(str(ROOT / "weights" / "affmse-x4.safetensors"))
    up.set_operator(OperatorSpec(4, family=family))
    for name in ("coffee", "astronaut"):
        hr = Image.open(VAL / f"{name}.png").convert("RGB").crop((96, 64, 96 + 224, 64 + 160))
        lr = hr.resize((56, 40), PILLOW[family])
        x = torch.from_numpy(np.array(lr)).permute(2, 0, 1).float() / 255
        out = up(x, bits=8)
        back = np.asarray(Image.fromarray(out.levels).resize(lr.size, PILLOW[family])).astype(int)
        diff = np.abs(back - np.asarray(lr).astype(int))
        assert (diff == 0).mean() >= 0.999 and diff.max() <= 1, (name, (diff == 0).mean(), diff.max())
        # A of the saved file is close to x too (the float operator, not Pillow's 8-bit arithmetic)
        psnr, _ = consistency.lr_psnr(out.levels, x.double(), up.A, 255)
        assert psnr >= 60


def _rounded_before_the_pillow_step():
    """A dark, high-contrast crop (where Pillow's rounding between its passes bites most): the 8-bit LR
    image, x, and Pillow's bicubic upscale box-fitted and rounded as the contract does, before its Pillow
    step, so that some LR values come back a level off. Returns (spec, A, lr, x, levels)."""
    spec = OperatorSpec(4, family="bicubic")
    A, pinv = spec.build()
    hr = Image.open(VAL / "astronaut.png").convert("RGB").crop((0, 0, 256, 256))
    lr = hr.resize((64, 64), PILLOW["bicubic"])
    x = torch.from_numpy(np.array(lr)).permute(2, 0, 1).double() / 255
    f = torch.from_numpy(np.array(lr.resize((256, 256), PILLOW["bicubic"]))).permute(2, 0, 1).double() / 255
    boxfit.fit_box(f, x, A, pinv, 8, max_error=boxfit.MAX_FIT_ERROR)
    return spec, A, lr, x, boxfit.round_shaped(f, 8)


def test_match_pillow_fixes_what_rounding_leaves():
    """Without the Pillow step some LR pixels come back a level off (Pillow rounds and clips between
    its passes); with it none do. A dark, high-contrast crop, where that happens most."""
    spec, A, lr, x, levels = _rounded_before_the_pillow_step()
    before = (consistency.pillow_resize(levels, (64, 64), "bicubic") != np.asarray(lr)).sum()
    passes = consistency.match_pillow(levels, x, spec)
    after = (consistency.pillow_resize(levels, (64, 64), "bicubic") != np.asarray(lr)).sum()
    assert before > 0 and after == 0 and 0 < passes < consistency.PILLOW_PASSES
    assert not consistency.matches_pillow(OperatorSpec(4), x, 8)  # Pillow has no Gaussian
    assert not consistency.matches_pillow(spec, x + 0.3 / 255, 8)  # x not on the 8-bit grid


def test_a_pillow_miss_above_the_floor_is_reported_as_what_it_is():
    """A saved file whose LR-PSNR reaches the 60-dB floor while Pillow's resize misses some values: the
    warning gives the PSNR without calling it under the floor, and how many values are off (the share
    alone printed 100.0 % for 3 values of 300,000)."""
    spec, A, lr, x, levels = _rounded_before_the_pillow_step()
    off = int((consistency.pillow_resize(levels, (64, 64), "bicubic") != np.asarray(lr)).sum())
    v = consistency.verdict(levels, x, A, spec, 8)
    assert off > 0 and v.lr_psnr >= consistency.FLOOR_DB[8] and not v.consistent
    assert "under the" not in v.warning and f"({off} of {x.numel()} a level or more off)" in v.warning


@pytest.mark.parametrize(
    "family,scale,size",
    [("bicubic", 4, (37, 45)), ("lanczos3", 3, (40, 33)), ("area", 2, (50, 42)), ("bilinear", 4, (21, 70))],
)
def test_match_pillow_redoes_only_changed_tiles_with_the_same_result(family, scale, size, monkeypatch):
    """Pillow's resize redone on the changed tiles (box=) gives the same passes and levels as redoing
    it on the whole image (a tile larger than the image), here on sizes that are not multiples of the
    tile, with black and white regions (where Pillow's intermediate clipping moves pixels), gray and RGB;
    and the tiled `got` is Pillow's whole resize of the final levels."""
    h, w = size
    spec = OperatorSpec(scale, family=family)
    A, pinv = spec.build()
    rng = np.random.default_rng(3)
    hr = np.asarray(Image.open(VAL / "astronaut.png").convert("RGB").resize((scale * w, scale * h))).copy()
    hr[: scale * 6] = 255
    hr[:, -scale * 5 :] = 0
    salt = rng.random(hr.shape[:2])
    hr[salt < 0.03], hr[salt > 0.97] = 255, 0
    for channels in (slice(0, 1), slice(0, 3)):
        lr = np.stack(
            [
                np.asarray(Image.fromarray(np.ascontiguousarray(hr[..., c])).resize((w, h), PILLOW[family]))
                for c in range(3)
            ],
            2,
        )[..., channels]
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1).double() / 255
        f = torch.nn.functional.interpolate(x[None], scale_factor=scale, mode="bicubic")[0]
        boxfit.fit_box(f, x, A, pinv, 8, max_error=boxfit.MAX_FIT_ERROR)
        base = boxfit.round_shaped(f, 8)
        tiled, whole = base.copy(), base.copy()
        passes = consistency.match_pillow(tiled, x, spec)
        monkeypatch.setattr(consistency, "PILLOW_TILE", 10**6)
        assert consistency.match_pillow(whole, x, spec) == passes > 0
        monkeypatch.undo()
        assert np.array_equal(tiled, whole) and not np.array_equal(tiled, base)
        back = consistency.pillow_resize(tiled, (h, w), family)
        assert (back != lr).mean() <= 0.001 if passes < consistency.PILLOW_PASSES else (back == lr).all()
        # should a redone tile ever differ from Pillow's whole resize, the whole resize before stopping
        # catches it and the passes go on with whole resizes: here tiles that claim every pixel matches
        redo = consistency._redo_tiles
        monkeypatch.setattr(consistency, "_redo_tiles", lambda got, *a: (redo(got, *a), got.__setitem__(..., lr)))
        lying = base.copy()
        assert consistency.match_pillow(lying, x, spec) == passes
        monkeypatch.undo()
        assert np.array_equal(lying, whole)


def test_spec_metadata_and_validation():
    for family in FAMILIES:
        spec = OperatorSpec(3, family=family)
        assert OperatorSpec.from_metadata(spec.metadata()) == spec
    old = {"scale": "4", "kernel_size": "9", "sigma": "1.5", "boundary": "symmetric"}  # a v1 weights file
    assert OperatorSpec.from_metadata(old) == OperatorSpec()
    assert OperatorSpec(4, family="bicubic").boundary == "pil" and OperatorSpec().boundary == "symmetric"
    assert (OperatorSpec(4, family="bicubic").kernel_size, OperatorSpec(4, family="lanczos3").kernel_size) == (16, 24)
    for bad, message in [
        (dict(family="bicubic", sigma=1.0), "gaussian operator only"),
        (dict(family="area", kernel_size=9), "for gaussian"),
        (dict(family="box"), "operator must be one of"),
        (dict(sigma=1e-300), "sigma must be"),
        (dict(sigma=1e9), "sigma must be"),
        (dict(boundary="mirror"), "boundary must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            OperatorSpec(**bad)
    with pytest.raises(ValueError, match="lacks the operator field 'sigma'"):
        OperatorSpec.from_metadata({"scale": "4", "kernel_size": "9", "boundary": "symmetric"})


def test_train_picks_the_operator():
    """Photos (the patch preset) are made by resizing: bicubic, Pillow borders; the paper's presets and
    the Swiss roll keep its Gaussian; a run saved before the families existed resumes as Gaussian."""
    photos = resolve(TrainConfig(data="x", preset="patch"))
    assert (photos.operator, photos.boundary, photos.kernel_size, photos.sigma) == ("bicubic", "pil", 16, 0.0)
    texture = resolve(TrainConfig(data="x", preset="texture"))
    assert (texture.operator, texture.boundary, texture.kernel_size, texture.sigma) == ("gaussian", "symmetric", 9, 1.5)
    assert resolve(TrainConfig(data="x", preset="patch", operator="area")).operator_spec() == OperatorSpec(
        4, family="area"
    )
    old = {k: v for k, v in texture.to_dict().items() if k != "operator"}
    assert TrainConfig.from_dict(old).operator == "gaussian"


def test_cli_operator_for_upscale_and_eval(tmp_path):
    """A bicubic checkpoint upscales a Pillow-made LR file so that Pillow gives it back; --operator that
    differs from the weights' warns; eval makes its LR inputs and LR metrics with the chosen operator."""
    torch.manual_seed(0)
    ckpt = tmp_path / "bicubic.safetensors"
    checkpoint.save_generator(ckpt, methods.build_generator("texture", OperatorSpec(4, family="bicubic"), "aff").eval())
    lr = Image.open(VAL / "chelsea.png").convert("RGB").crop((100, 60, 260, 180)).resize((40, 30), PILLOW["bicubic"])
    lr.save(tmp_path / "in.png")
    r = affsr("upscale", tmp_path / "in.png", "-w", ckpt, "-o", tmp_path / "out.png", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    back = np.asarray(Image.open(tmp_path / "out.png").resize(lr.size, PILLOW["bicubic"]))
    assert (back == np.asarray(lr)).mean() >= 0.999 and row["lr_psnr"] >= 60 and "warning" not in r.stderr
    r = affsr("upscale", tmp_path / "in.png", "-w", ckpt, "-o", tmp_path / "area.png", "--operator", "area", "--json")
    assert r.returncode == 0 and "warning:" in r.stderr and "area" in r.stderr, r.stderr
    area = np.asarray(Image.open(tmp_path / "area.png").resize(lr.size, PILLOW["area"]))
    assert (area == np.asarray(lr)).all()  # consistent with the operator asked for
    r = affsr("upscale", tmp_path / "in.png", "-w", ckpt, "-o", tmp_path / "bad.png", "--operator", "cubic")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "operator must be one of" in r.stderr
    assert not (tmp_path / "bad.png").exists()
    js = tmp_path / "e.json"
    r = affsr(
        "eval", "--hr", VAL / "chelsea.png", "-b", "bicubic", "-b", "pinv", "--operator", "lanczos3", "--json", js
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(js.read_text())
    assert doc["conventions"]["A"].startswith("lanczos3") and doc["means"]["pinv"]["lr-psnr-x"] > 100


def test_choose_operator_is_one_rule():
    """projection.choose_operator, the A of upscale, eval and project (docs/operators.md, "Which A when none is
    named"): --operator when given (within the weights' family the rest stays theirs), else the weights' A, else
    gaussian when only its own options are given, else bicubic with Pillow's borders."""
    from affsr_cli.projection import choose_operator

    assert choose_operator() == OperatorSpec(4, family="bicubic") and choose_operator().boundary == "pil"
    assert choose_operator(scale=2) == OperatorSpec(2, family="bicubic")
    assert choose_operator(sigma=1.2) == OperatorSpec(4, sigma=1.2, family="gaussian")
    assert choose_operator(kernel_size=13).family == "gaussian"
    assert choose_operator("AREA", 3) == OperatorSpec(3, family="area")
    gauss = OperatorSpec(2, 7, 0.9, "reflect", "gaussian")
    assert choose_operator(trained=gauss) == gauss  # the weights' A, whatever scale the caller guessed
    assert choose_operator("gaussian", boundary="symmetric", trained=gauss) == OperatorSpec(
        2, 7, 0.9, "symmetric", "gaussian"
    )
    assert choose_operator("bicubic", trained=gauss) == OperatorSpec(2, family="bicubic")
    bicubic = OperatorSpec(4, family="bicubic")
    assert choose_operator(boundary="matlab", trained=bicubic) == OperatorSpec(4, boundary="matlab", family="bicubic")
    with pytest.raises(ValueError, match="gaussian operator only"):
        choose_operator("bicubic", sigma=1.0)
