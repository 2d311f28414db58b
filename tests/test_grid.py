"""The image-wide grid (projection.remove_grid; `affsr upscale --keep-grid` keeps it): f less the mean of each
of its s × s pixel phases, before Π. Against a reference written here with NumPy; on a shipped AffGAN and a
photo: the saved file's grid is gone, its consistency and Pillow's round trip hold, PSNR does not move;
the CLI, eval's column, the API and the as-trained path that leaves f alone."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import affsr_cli as affsr
from affsr_cli import metrics
from affsr_cli.errors import AffsrError
from affsr_cli.infer import Upscaler
from affsr_cli.projection import project, remove_grid
from helpers import VAL, cli, one_thread


def reference(f: np.ndarray, s: int) -> np.ndarray:
    """f (..., H, W) less, at each pixel phase (i, j), the mean of f[..., i::s, j::s] minus the mean of those means."""
    out = f.copy()
    means = np.stack([np.stack([f[..., i::s, j::s].mean((-2, -1)) for j in range(s)], -1) for i in range(s)], -2)
    pattern = means - means.mean((-2, -1), keepdims=True)  # (..., s, s)
    for i in range(s):
        for j in range(s):
            out[..., i::s, j::s] -= pattern[..., i, j][..., None, None]
    return out


def test_remove_grid_takes_the_phase_means_and_nothing_else():
    """Equal to the reference for s = 2, 3, 4 on a batch; what it takes is periodic with period s and mean
    0 per channel; the result has no period-s pattern left (grid_levels 0) and a second pass changes nothing."""
    torch.manual_seed(0)
    for s in (2, 3, 4):
        f = torch.rand(2, 3, 6 * s, 5 * s, dtype=torch.float64)
        f[..., ::s, ::s] += 0.3  # a strong grid: the test can fail
        g = remove_grid(f.clone(), s)
        assert np.abs(g.numpy() - reference(f.numpy(), s)).max() < 1e-12
        taken = f - g
        assert torch.allclose(taken, taken.roll(s, -1)) and torch.allclose(taken, taken.roll(s, -2))
        assert taken.mean((-2, -1)).abs().max() < 1e-12
        assert metrics.grid_levels(f[0], s) > 50 and metrics.grid_levels(g[0], s) < 1e-9
        assert torch.allclose(remove_grid(g.clone(), s), g, atol=1e-15)


def photo(box=(20, 16, 84, 64)) -> tuple[np.ndarray, torch.Tensor]:
    """(x levels (h, w, 3) uint8, y (3, 4h, 4w) in [0, 1]): a crop of a bundled photo and its Pillow-bicubic LR."""
    im = Image.open(VAL / "hubble.png").convert("RGB")
    im = im.crop((0, 0, im.width // 4 * 4, im.height // 4 * 4))
    x = np.asarray(im.resize((im.width // 4, im.height // 4), Image.BICUBIC).crop(box))
    y = np.asarray(im.crop(tuple(4 * v for v in box)), np.float32) / 255
    return x, torch.from_numpy(y).permute(2, 0, 1)


def test_the_gan_s_grid_goes_and_the_contract_holds():
    """affgan-x4 on 64 × 48 LR pixels of the Hubble deep field (the photo where its grid was largest): the
    saved file's share of period-4 energy falls to under a fifth of the kept grid's, and well under the
    photo's own; Pillow's resize of the 8-bit file gives x back; PSNR within 0.05 dB; f is remove_grid of
    Π_x of the kept f."""
    x, y = photo()
    xt = torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1).contiguous()
    up, kept = Upscaler.load("affgan-x4"), Upscaler.load("affgan-x4", keep_grid=True)
    assert torch.allclose(up.network(xt), remove_grid(project(kept.network(xt), xt, up.A, up.pinv), 4), atol=1e-6)
    a, b = up(xt), kept(xt)
    share = [metrics.lattice_share(o.saved(), 4) for o in (a, b)]
    assert share[0] < 0.2 * share[1] and share[0] < 0.5 * metrics.lattice_share(y.double(), 4), share
    for o in (a, b):
        back = Image.fromarray(o.levels).resize((x.shape[1], x.shape[0]), Image.BICUBIC)
        assert np.array_equal(np.asarray(back), x)
    assert abs(metrics.psnr(y.double(), a.saved()) - metrics.psnr(y.double(), b.saved())) < 0.05


def test_cli_eval_and_api(tmp_path):
    """`affsr upscale --keep-grid` gives the kept grid's pixels, the default others (both Pillow-exact; the JSON
    says which); the API's
    keep_grid the same pixels as the CLI's; `affsr eval --keep-grid` adds a column NAME grid kept whose lattice is
    the larger; a keep_grid that is not a bool is refused."""
    x, _ = photo((20, 16, 52, 40))
    Image.fromarray(x).save(tmp_path / "in.png")
    files = {}
    for name, extra in (("d", ()), ("k", ("--keep-grid",))):
        r = one_thread(
            "upscale", tmp_path / "in.png", "-w", "affgan-x4", *extra, "-o", tmp_path / f"{name}.png", "--json"
        )
        assert r.returncode == 0 and json.loads(r.stdout)[0]["keep_grid"] == bool(extra), r.stderr
        files[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
        back = Image.fromarray(files[name]).resize((x.shape[1], x.shape[0]), Image.BICUBIC)
        assert np.array_equal(np.asarray(back), x)
    assert np.abs(files["d"].astype(int) - files["k"]).max() >= 1  # the grid was there: the test can fail
    for keep, name in ((False, "d"), (True, "k")):
        api = np.asarray(affsr.upscale(Image.fromarray(x), weights="affgan-x4", keep_grid=keep, device="cpu"))
        assert np.abs(api.astype(int) - files[name]).max() <= 1  # threads: float sums
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray((photo()[1].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(hr / "a.png")
    r = one_thread("eval", "--hr", hr, "-w", "affgan-x4", "--keep-grid", "-m", "lattice", "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    means = json.loads((tmp_path / "e.json").read_text())["means"]
    assert means["affgan-x4 grid kept"]["lattice"] > 3 * means["affgan-x4"]["lattice"], means
    with pytest.raises(AffsrError, match="keep_grid must be True or False"):
        affsr.load("affgan-x4", keep_grid="yes")
    r = cli("upscale", tmp_path / "in.png", "--keep-grid=maybe", "-o", tmp_path / "bad.png")
    assert r.returncode == 2 and "Traceback" not in r.stderr and not (tmp_path / "bad.png").exists()
