"""Bounded detail (detail.py, `affsr upscale --detail`): a second network's detail added to f within ±τ,
then Π. The algebra against a reference written here, the two ends (τ = 0: the first network, τ = ∞: the
second), consistency in memory and in the saved file, the CLI, eval's columns, the API, and the refusals."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import affsr_cli as affsr
from affsr_cli import checkpoint, detail, methods
from affsr_cli.errors import AffsrError
from affsr_cli.infer import Upscaler
from affsr_cli.projection import OperatorSpec, project, remove_grid
from helpers import VAL, cli, one_thread

BICUBIC = OperatorSpec(4, family="bicubic")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """m.safetensors and t.safetensors: the shipped AffMSE and AffGAN (bicubic A, 4×; random networks' ŷ
    would all lie within a level of A⁺x), and a random 2× network."""
    d = tmp_path_factory.mktemp("detail")
    for name, shipped in (("m", "affmse-x4"), ("t", "affgan-x4")):
        (d / f"{name}.safetensors").symlink_to(checkpoint.resolve_weights(shipped))
    torch.manual_seed(0)
    half = methods.build_generator("texture", OperatorSpec(2, family="bicubic"), "aff").eval()
    checkpoint.save_generator(d / "half.safetensors", half)
    return d


def lr(box=(40, 30, 72, 54)) -> torch.Tensor:
    """(3, h, w) in [0, 1]: a crop of a bundled photo, reduced with Pillow's bicubic."""
    im = Image.open(VAL / "chelsea.png").convert("RGB")
    im = im.resize((im.width // 4, im.height // 4), Image.BICUBIC).crop(box)
    return torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1).contiguous()


def test_bounded_is_f_plus_the_clipped_null_space_difference():
    """detail.bounded(f, t) = f + clip((t − f) − A⁺A(t − f), ±τ), A⁺ the exact pseudo-inverse computed here
    as a matrix (Aᵀ(AAᵀ)⁻¹ from A applied to the unit images), on a 12×12 LR image."""
    A, pinv = BICUBIC.build()
    torch.manual_seed(0)
    x = torch.rand(1, 12, 12, dtype=torch.float64)
    f, t = torch.rand(1, 48, 48, dtype=torch.float64), torch.rand(1, 48, 48, dtype=torch.float64)
    M = A(torch.eye(48 * 48, dtype=torch.float64).reshape(-1, 1, 48, 48)).reshape(48 * 48, -1).T  # (144, 2304)
    P = M.T @ torch.linalg.inv(M @ M.T)  # A⁺
    diff = (t - f).reshape(-1)
    d = (diff - P @ (M @ diff)).reshape(1, 48, 48)
    for tau in (0.0, 0.01, 0.05, 10.0):
        out = detail.bounded(f.clone(), t, x, A, pinv, tau)
        assert torch.allclose(out, f + d.clamp(-tau, tau), atol=1e-10), tau
    assert torch.equal(detail.bounded(f.clone(), t, x, A, pinv, 0.0), f)


def reference_weight(f: np.ndarray, t: np.ndarray, s: int) -> np.ndarray:
    """Mode "more"'s w computed with SciPy: luma detail = luma − Gaussian(σ s/2), its square under a
    Gaussian of σ 3s/4 ('mirror' borders, 3σ taps), w = clip(E_t / E_f − 1, 0, 1)."""
    from scipy.ndimage import gaussian_filter

    def energy(img):
        y = np.tensordot(np.array([0.299, 0.587, 0.114]), img, axes=1)
        h = y - gaussian_filter(y, s / 2, mode="mirror", truncate=3)
        return gaussian_filter(h * h, 3 * s / 4, mode="mirror", truncate=3)

    return np.clip(energy(t) / (energy(f) + 1e-8) - 1, 0, 1)


def test_mode_more_weighs_the_detail_by_where_the_detail_network_draws_more():
    """bounded(mode="more") = f + w ⊙ clip(N H (t − f), ±τ), H and w against SciPy; w = 0 (f kept exactly)
    where t has less detail than f, w = 1 (mode "all") where t is f plus strong detail; a bad mode is refused."""
    A, pinv = BICUBIC.build()
    torch.manual_seed(0)
    x = torch.rand(3, 16, 16, dtype=torch.float64)
    coarse = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    f = torch.nn.functional.interpolate(coarse, scale_factor=16, mode="bicubic")[0]  # smooth: little detail
    t = f.clone()
    t[:, :, :32] = f[:, :, :32] + 0.2 * torch.rand(3, 64, 32, dtype=torch.float64)  # more detail on the left
    t[:, :, 32:] = 0.5 * f[:, :, 32:] + 0.25  # half the contrast on the right: a quarter of the detail energy
    w = detail.more_weight(f, t, 4)
    ref = reference_weight(f.numpy(), t.numpy(), 4)
    assert np.abs(w.numpy() - ref).max() < 1e-6
    assert w[:, :24].min() == 1 and w[8:-8, 48:].max() == 0  # both ends (48 = 32 + the blurs' 6 + 9 taps + 1)
    tau = 0.05
    out = detail.bounded(f.clone(), t, x, A, pinv, tau, "more")
    from scipy.ndimage import gaussian_filter

    diff = (t - f).numpy()
    high = torch.from_numpy(diff - gaussian_filter(diff, (0, 2, 2), mode="mirror", truncate=3))  # H (t − f)
    d = detail.bounded(torch.zeros_like(f), high, x, A, pinv, tau)  # mode "all" from 0: clip(N H (t − f))
    assert torch.allclose(out, f + torch.from_numpy(ref) * d, atol=1e-6)
    assert torch.equal(out[:, 8:-8, 48:], f[:, 8:-8, 48:])  # t smoother than f: f's own detail kept
    with pytest.raises(ValueError, match="detail mode"):
        detail.bounded(f.clone(), t, x, A, pinv, tau, "most")


def test_the_limit_runs_from_the_first_network_to_the_second(nets):
    """τ = 0 gives the first network's ŷ exactly, a huge τ the detail network's (float); every ŷ downsamples
    to x (1e-5) and the distance to the detail network's ŷ falls as τ grows. With the grids kept: the grid
    removal after the sum is not the sum of the two removals (test_grid.py tests it)."""
    x = lr()
    m = Upscaler.load(str(nets / "m.safetensors"), keep_grid=True)(x, bits=None).y_hat
    t = Upscaler.load(str(nets / "t.safetensors"), keep_grid=True)(x, bits=None).y_hat
    A, _ = BICUBIC.build()
    gaps = []
    for tau in (0, 1, 2, 4, 1e6):
        up = Upscaler.load(
            str(nets / "m.safetensors"), detail_weights=str(nets / "t.safetensors"), detail_limit=tau, keep_grid=True
        )
        y = up(x, bits=None).y_hat
        assert (A(y[None].double())[0] - x).abs().max() < 1e-5, tau
        if tau == 0:
            assert torch.equal(y, m)
        gaps.append(float((y - t).abs().mean()))
    assert (y - t).abs().max() < 1e-5
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[0] > 0.5 / 255  # the two networks differ: the test can fail


def test_the_ensemble_averages_the_weights_only(nets):
    """With ensemble=True the weights' f is the ×8 mean and the detail network runs once: the result is
    bounded(f ×8, t one pass), less its image-wide grid (removed once, from the sum), not bounded of two
    ensembles (8 × the detail network's time)."""
    x = lr((40, 30, 64, 50))
    m, t = str(nets / "m.safetensors"), str(nets / "t.safetensors")
    up = Upscaler.load(m, ensemble=True, detail_weights=t, detail_limit=4)
    assert up.ensemble and not up.detail.ensemble
    f8 = Upscaler.load(m, ensemble=True, keep_grid=True).network(x, 0, None)
    t1 = Upscaler.load(t, keep_grid=True).network(x, 0, None)
    t8 = Upscaler.load(t, ensemble=True, keep_grid=True).network(x, 0, None)
    assert (t8 - t1).abs().max() > 1 / 255  # the two ways differ: the test can fail
    want = remove_grid(project(detail.bounded(f8, t1, x, up.A, up.pinv, 4 / 255), x, up.A, up.pinv), 4)
    assert torch.allclose(up.network(x, 0, None), want, atol=1e-6)


def test_refusals(nets):
    m, t, half = (str(nets / f"{n}.safetensors") for n in ("m", "t", "half"))
    with pytest.raises(AffsrError, match="upscales 2×, the weights 4×"):
        Upscaler.load(m, detail_weights=half)
    for bad in (-1, float("nan"), float("inf"), "8", True):
        with pytest.raises(AffsrError, match="detail limit must be a number"):
            Upscaler.load(m, detail_weights=t, detail_limit=bad)
    with pytest.raises(AffsrError, match="without a detail network"):
        Upscaler.load(m, detail_limit=4)
    with pytest.raises(AffsrError, match="detail_limit without detail"):
        affsr.load(m, detail_limit=4)
    with pytest.raises(AffsrError, match="detail_limit must be a number"):
        affsr.load(m, detail=t, detail_limit=[4])
    for call in (
        lambda: Upscaler.load(m, detail_weights=t, detail_mode="most"),
        lambda: affsr.load(m, detail=t, detail_mode="most"),
    ):
        with pytest.raises(AffsrError, match="mode must be one of all, more"):
            call()
    with pytest.raises(AffsrError, match="detail mode without a detail network"):
        Upscaler.load(m, detail_mode="more")
    with pytest.raises(AffsrError, match="detail_mode without detail"):
        affsr.load(m, detail_mode="more")


def test_cli_writes_a_consistent_file_and_refuses_in_one_line(nets, tmp_path):
    """`affsr upscale --detail W --detail-limit L`: Pillow's bicubic resize of the 8-bit file gives the input
    back, the table names the detail; the same pixels as the API; a missing detail file, a negative limit,
    a limit without --detail: one line each, exit 1 or 2, no file."""
    m, t = nets / "m.safetensors", nets / "t.safetensors"
    x = (lr().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    r = one_thread(
        "upscale", tmp_path / "in.png", "-w", m, "--detail", t, "--detail-limit", "6", "-o", tmp_path / "o.png"
    )
    assert r.returncode == 0, r.stderr
    title = " ".join(r.stdout.split())
    assert "+ detail of" in title and "t.safetensors within ±6 levels" in title, r.stdout
    out = Image.open(tmp_path / "o.png")
    assert np.array_equal(np.asarray(out.resize((x.shape[1], x.shape[0]), Image.BICUBIC)), x)
    r = one_thread("upscale", tmp_path / "in.png", "-w", m, "--detail", t, "-o", tmp_path / "j.png", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["detail_limit"] == detail.DEFAULT_LIMIT, r.stderr
    assert json.loads(r.stdout)[0]["detail_mode"] == "all"
    r = one_thread(
        "upscale", tmp_path / "in.png", "-w", t, "--detail", m, "--detail-mode", "more", "-o", tmp_path / "k.png"
    )
    assert r.returncode == 0 and "where it draws more" in " ".join(r.stdout.split()), r.stderr
    k = Image.open(tmp_path / "k.png")
    assert np.array_equal(np.asarray(k.resize((x.shape[1], x.shape[0]), Image.BICUBIC)), x)
    api = affsr.upscale(Image.fromarray(x), weights=str(m), detail=str(t), detail_limit=6, device="cpu")
    assert np.abs(np.asarray(api).astype(int) - np.asarray(out).astype(int)).max() <= 1  # threads: float sums
    for args, needle in (
        (["--detail", tmp_path / "none.safetensors"], "none.safetensors"),
        (["--detail", t, "--detail-limit", "-1"], "--detail-limit"),
        (["--detail-limit", "4"], "without a detail network"),
        (["--detail-mode", "more"], "without a detail network"),
        (["--detail", t, "--detail-mode", "most"], "mode must be one of all, more"),
    ):
        r = cli("upscale", tmp_path / "in.png", "-w", m, *args, "-o", tmp_path / "bad.png")
        assert r.returncode in (1, 2) and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not (tmp_path / "bad.png").exists()


def test_texture_is_the_affgan_ensemble_with_detail_where_real_esrgan_draws_more(tmp_path):
    """`affsr upscale --texture` = `-w affgan-x4 --ensemble --detail realesrgan-x4plus --detail-mode more
    --detail-limit 12`, the same pixels; a limit given beside it wins; an A without texture weights is
    refused in one line, before any work."""
    x = (lr((40, 30, 64, 48)).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(x).save(tmp_path / "in.png")
    r = one_thread("upscale", tmp_path / "in.png", "--texture", "-o", tmp_path / "t.png", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    assert (row["detail_mode"], row["detail_limit"]) == ("more", 12.0)
    explicit = ("-w", "affgan-x4", "--ensemble", "--detail", "realesrgan-x4plus", "--detail-mode", "more")
    r = one_thread("upscale", tmp_path / "in.png", *explicit, "--detail-limit", "12", "-o", tmp_path / "e.png")
    assert r.returncode == 0, r.stderr
    t = np.asarray(Image.open(tmp_path / "t.png"))
    assert np.array_equal(t, np.asarray(Image.open(tmp_path / "e.png")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "t.png").resize((x.shape[1], x.shape[0]), Image.BICUBIC)), x)
    plain = affsr.upscale(Image.fromarray(x), weights="affgan-x4", ensemble=True, device="cpu")
    assert np.abs(np.asarray(plain).astype(int) - t).mean() > 0.5  # the detail is there: the test can fail
    r = one_thread(
        "upscale", tmp_path / "in.png", "--texture", "--detail-limit", "3", "-o", tmp_path / "l.png", "--json"
    )
    assert r.returncode == 0 and json.loads(r.stdout)[0]["detail_limit"] == 3, r.stderr
    r = cli("upscale", tmp_path / "in.png", "--texture", "--operator", "area", "-o", tmp_path / "a.png")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--texture has weights for" in r.stderr, r.stderr
    assert not (tmp_path / "a.png").exists()


def test_eval_adds_a_column_per_limit(nets, tmp_path):
    """`affsr eval -w M --detail T --detail-limit 0 --detail-limit 1000 --detail-mode all --detail-mode more`:
    the columns M, M + detail ±0 (= M, in both modes), M + detail ±1000 (= T's) and M + detail ±1000 more
    (neither); --detail with --sr, --detail-limit alone and an unknown mode are refused in one line."""
    m, t = nets / "m.safetensors", nets / "t.safetensors"
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.open(VAL / "chelsea.png").convert("RGB").crop((100, 60, 196, 140)).save(hr / "a.png")
    common = ("--hr", hr, "-m", "psnr", "--json", tmp_path / "e.json")
    r = one_thread(
        "eval",
        *common,
        "-w",
        m,
        "-w",
        t,
        "--detail",
        t,
        "--detail-limit",
        "0",
        "--detail-limit",
        "1000",
        "--detail-mode",
        "all",
        "--detail-mode",
        "more",
    )
    assert r.returncode == 0, r.stderr
    means = json.loads((tmp_path / "e.json").read_text())["means"]
    assert means["m + detail ±0"]["psnr"] == means["m"]["psnr"] == means["m + detail ±0 more"]["psnr"]
    assert means["m + detail ±1000 more"]["psnr"] not in (means["m + detail ±1000"]["psnr"], means["m"]["psnr"])
    assert abs(means["m + detail ±1000"]["psnr"] - means["t"]["psnr"]) < 0.01
    assert abs(means["m"]["psnr"] - means["t"]["psnr"]) > 0.1  # they differ: the test can fail
    r = cli("eval", "--hr", hr, "--sr", hr, "--detail", t)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--sr results are finished" in r.stderr
    r = cli("eval", "--hr", hr, "-w", m, "--detail-limit", "3")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--detail-limit without --detail" in r.stderr
    r = cli("eval", "--hr", hr, "-w", m, "--detail", t, "--detail-mode", "most")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--detail-mode must be one of" in r.stderr


def test_the_api_caches_each_detail_and_limit_apart(nets):
    """affsr.load with the same detail and limit gives the same Upscaler; another limit, mode or ensemble, or
    none, another one; the ensemble covers the weights' network only."""
    m, t = str(nets / "m.safetensors"), str(nets / "t.safetensors")
    a = affsr.load(m, device="cpu", detail=t, detail_limit=3)
    assert affsr.load(m, device="cpu", detail=t, detail_limit=3) is a
    b = affsr.load(m, device="cpu", detail=t, detail_limit=5)
    assert b is not a and (a.detail_limit, b.detail_limit) == (3, 5)
    c = affsr.load(m, device="cpu", detail=t, detail_limit=3, detail_mode="more")
    assert c not in (a, b) and (a.detail_mode, c.detail_mode) == ("all", "more")
    e = affsr.load(m, device="cpu", ensemble=True, detail=t, detail_limit=3, detail_mode="more")
    assert e is not c and e.ensemble and not c.ensemble and not e.detail.ensemble
    with pytest.raises(AffsrError, match="ensemble must be True or False"):
        affsr.load(m, device="cpu", ensemble="yes")
    assert affsr.load(m, device="cpu").detail is None


def test_the_shipped_detail_network_is_real_esrgan_x4plus_unchanged():
    """weights/realesrgan-x4plus.safetensors: Real-ESRGAN's RRDBNet (16,697,987 parameters) with its float16
    weights and float32 biases as the ncnn file holds them, under the bicubic A, its licence beside it; by
    name, `--detail realesrgan-x4plus` runs and stays consistent."""
    from safetensors import safe_open

    path = checkpoint.resolve_weights("realesrgan-x4plus")
    assert path.parent.name == "weights" and path.stat().st_size <= 34 * 2**20
    notice = (path.parent / "LICENSE-Real-ESRGAN.txt").read_text()
    assert "Copyright (c) 2021, Xintao Wang" in notice and "Copyright (c) 2023, 喵小吉" in notice
    with safe_open(str(path), framework="pt") as fh:
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys() if k.endswith(".weight")}
        biases = {fh.get_slice(k).get_dtype() for k in fh.keys() if k.endswith(".bias")}
    assert (dtypes, biases) == ({"F16"}, {"F32"})
    model = checkpoint.load_generator(path)
    assert type(model.net).__name__ == "RRDBNet" and model.spec == BICUBIC
    assert sum(p.numel() for p in model.net.parameters()) == 16_697_987
    x = lr((40, 30, 52, 42))  # 12² LR
    y = Upscaler.load("affmse-x4", detail_weights="realesrgan-x4plus")(x, bits=None).y_hat
    A, _ = BICUBIC.build()
    assert (A(y[None].double())[0] - x).abs().max() < 1e-5
