"""The invented-detail map (affsr_cli/invented.py, `upscale --invented-map`, `project --invented-map`):
the split ŷ = A⁺Aŷ + (I − A⁺A)ŷ against a dense Moore–Penrose inverse from numpy, its properties,
the map's scale, and the files the commands write."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, invented, methods
from affsr_cli import images as X
from affsr_cli.projection import OperatorSpec
from helpers import VAL
from helpers import one_thread as affsr


def crop(box=(60, 40, 72, 52)) -> torch.Tensor:
    """A small natural HR patch (3, 12, 12) in [0, 1]."""
    im = Image.open(VAL / "chelsea.png").convert("RGB").crop(box)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255


def dense(module, shape) -> np.ndarray:
    """The matrix of a linear map on one channel of `shape` (H, W), column by column."""
    n = shape[0] * shape[1]
    eye = torch.eye(n, dtype=torch.float32).view(n, *shape)
    return module(eye).reshape(n, -1).T.double().numpy()


@pytest.mark.parametrize("family", ["bicubic", "gaussian", "area"])
def test_split_is_the_null_space_part_of_numpy_pinv(family):
    """(I − A⁺A)ŷ equals the same product with numpy's pseudo-inverse of the dense A; it downsamples to
    zero and is orthogonal to the rest, so the two parts' energies add up to ŷ's."""
    spec = OperatorSpec(4, family=family, boundary=None if family != "gaussian" else "reflect")
    A, pinv = spec.build()
    y_hat = crop()
    part = invented.split(y_hat, A, pinv)
    M = dense(A, (12, 12))  # (9, 144)
    P = np.eye(144) - np.linalg.pinv(M) @ M  # I − A⁺A
    want = np.stack([(P @ y_hat[k].double().numpy().ravel()).reshape(12, 12) for k in range(3)])
    assert np.abs(part.double().numpy() - want).max() < 1e-5
    assert float(A(part).abs().max()) < 1e-5
    rest = y_hat - part
    assert abs(float((rest * part).sum())) < 1e-4 * float(y_hat.square().sum())
    assert float(rest.square().sum() + part.square().sum()) == pytest.approx(float(y_hat.square().sum()), rel=1e-5)


def test_share_rms_and_the_input_own_part():
    """A⁺x invents nothing (share 0); adding a null-space pattern invents exactly it; share and rms
    against a direct numpy computation."""
    spec = OperatorSpec(4, family="bicubic")
    A, pinv = spec.build()
    y = crop((40, 40, 88, 80))  # (3, 40, 48)
    base = pinv(A(y))  # A⁺x: everything the input determines
    assert invented.share(invented.split(base, A, pinv), base) < 1e-9
    part = invented.split(y, A, pinv)
    total = y.double().numpy() - y.double().numpy().mean(axis=(1, 2), keepdims=True)
    assert invented.share(part, y) == pytest.approx(
        float((part.double().numpy() ** 2).sum() / (total**2).sum()), rel=1e-9
    )
    assert invented.rms(part) == pytest.approx(float(np.sqrt((part.double().numpy() ** 2).mean())), rel=1e-9)
    assert 0.01 < invented.share(part, y) < 0.5  # a real photo holds detail its 4× reduction does not determine
    flat = torch.full((3, 16, 16), 0.5)
    assert invented.share(torch.zeros_like(flat), flat) == 0.0  # no contrast at all: no division by zero


def test_map_scale():
    """0 → black, MAP_WHITE and over → white, a quarter of MAP_WHITE → mid gray (√ scale); channels sum."""
    W = invented.MAP_WHITE
    v = torch.tensor([[0.0, W / 4, W, 3 * W]])
    assert invented.heat(v)[0, :, 0].tolist() == [0, 128, 255, 255]
    part = torch.zeros(3, 1, 2)
    part[:, 0, 1] = torch.tensor([W / 12, -W / 12, W / 12])  # |·| summed over channels: W / 4
    assert invented.invented_map(part)[0, :, 0].tolist() == [0, 128]


def test_spread_of_samples():
    """Identical samples spread nowhere; two that differ by d at one pixel spread |d|/√2 there (std, n − 1)."""
    a = torch.rand(3, 4, 4)
    picture, mean = invented.spread_map([a, a.clone()])
    assert picture.max() == 0 and mean == 0
    b = a.clone()
    b[:, 1, 2] += 0.05
    picture, mean = invented.spread_map([a, b])
    assert mean == pytest.approx(3 * 0.05 / np.sqrt(2) / 16, rel=1e-4)
    assert picture[1, 2, 0] > 0 and picture.sum() == picture[1, 2, 0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    for name, noise in (("rgb", 0), ("noisy", 2)):
        checkpoint.save_generator(
            d / f"{name}.safetensors",
            methods.build_generator("texture", OperatorSpec(), "aff", noise_channels=noise).eval(),
        )
    return d


def lr_image(path: Path, box=(100, 60, 124, 80)):
    Image.open(VAL / "chelsea.png").convert("RGB").crop(box).save(path)


def test_upscale_writes_the_map_and_its_share(ckpt, tmp_path):
    """The map is a gray PNG of the output's size, it is the split of the file as saved, the share is in
    the JSON and the table; a second run without --overwrite touches nothing; --outscale is refused."""
    lr_image(tmp_path / "in.png")
    r = affsr(
        "upscale",
        tmp_path / "in.png",
        "-o",
        tmp_path / "out.png",
        "-w",
        ckpt / "rgb.safetensors",
        "--invented-map",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    chart = tmp_path / "out_invented.png"
    assert row["invented_map"] == str(chart)
    with Image.open(chart) as m:
        assert m.mode == "L" and m.size == (96, 80)
        got = np.asarray(m)
    spec = OperatorSpec()  # the checkpoint's A (Gaussian)
    A, pinv = spec.build()
    y_hat = invented.as_float(X.read_stored(tmp_path / "out.png"), 8)
    part = invented.split(y_hat, A, pinv)
    assert np.array_equal(got, invented.invented_map(part)[..., 0])
    assert (
        row["invented_share"] == pytest.approx(invented.share(part, y_hat), abs=1e-6) and 0 < row["invented_share"] < 1
    )
    before = chart.read_bytes()
    again = affsr(
        "upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", "-w", ckpt / "rgb.safetensors", "--invented-map"
    )
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert chart.read_bytes() == before
    table = affsr(
        "upscale",
        tmp_path / "in.png",
        "-o",
        tmp_path / "out.png",
        "-w",
        ckpt / "rgb.safetensors",
        "--invented-map",
        "--overwrite",
    )
    assert table.returncode == 0 and f"{100 * row['invented_share']:.1f} %" in table.stdout
    bad = affsr(
        "upscale",
        tmp_path / "in.png",
        "-o",
        tmp_path / "o2.png",
        "-w",
        ckpt / "rgb.safetensors",
        "--invented-map",
        "--outscale",
        "2",
    )
    assert bad.returncode != 0 and "--outscale" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o2.png").exists() and not (tmp_path / "o2_invented.png").exists()


def test_samples_write_a_spread_map(ckpt, tmp_path):
    """A stochastic checkpoint, --samples 3: three consistent files, three maps, one spread map whose
    mean is the samples' per-pixel spread read back from the files."""
    lr_image(tmp_path / "in.png")
    r = affsr(
        "upscale",
        tmp_path / "in.png",
        "-o",
        tmp_path / "s.png",
        "-w",
        ckpt / "noisy.safetensors",
        "--samples",
        "3",
        "--invented-map",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [Path(row["invented_map"]).name for row in rows] == [f"s_seed{k}_invented.png" for k in range(3)]
    assert all(row["consistent"] for row in rows)
    files = [invented.as_float(X.read_stored(row["output"]), 8) for row in rows]
    _, mean = invented.spread_map(files)
    assert rows[0]["spread_map"] == str(tmp_path / "s_spread.png") and rows[0]["spread_mean"] == pytest.approx(
        mean, abs=1e-6
    )
    assert mean > 0  # different seeds, different samples


def test_project_maps_what_another_tool_invented(tmp_path):
    """project --invented-map: a bicubic upscale invents something; A⁺x itself (a float TIFF) nothing."""
    lr_image(tmp_path / "lr.png")
    x = Image.open(tmp_path / "lr.png")
    x.resize((4 * x.width, 4 * x.height), Image.BICUBIC).save(tmp_path / "bic.png")
    A, pinv = OperatorSpec(4, family="bicubic").build()
    xt = torch.from_numpy(np.array(x)).permute(2, 0, 1).float() / 255
    X.write_image(tmp_path / "pinv.tif", pinv(xt).permute(1, 2, 0).numpy())
    shares = {}
    for name in ("bic.png", "pinv.tif"):
        out = tmp_path / f"p-{name}"
        r = affsr(
            "project",
            tmp_path / "lr.png",
            tmp_path / name,
            "-o",
            out,
            "--operator",
            "bicubic",
            "--invented-map",
            "--json",
            *(["--bits", "32"] if name.endswith("tif") else []),
        )
        assert r.returncode == 0, r.stderr
        row = json.loads(r.stdout)[0]
        assert Path(row["invented_map"]).exists()
        shares[name] = row["invented_share"]
    assert shares["bic.png"] > 1e-3 and shares["pinv.tif"] < 1e-8


def test_a_folder_with_maps_runs_again_in_place(ckpt, tmp_path):
    """Upscaled in place with --invented-map, run again (with or without it): the earlier outputs and
    maps are not taken for new inputs; --overwrite replaces them, the input is never touched."""
    folder = tmp_path / "photos"
    folder.mkdir()
    lr_image(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    first = affsr("upscale", folder, "-w", ckpt / "rgb.safetensors", "--invented-map")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x4.png", "a_x4_invented.png"]
    for extra in (["--invented-map", "--overwrite"], ["--skip-existing"], ["--overwrite"]):
        r = affsr("upscale", folder, "-w", ckpt / "rgb.safetensors", *extra)
        assert r.returncode == 0, (extra, r.stderr)
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x4.png", "a_x4_invented.png"], extra
    assert (folder / "a.png").read_bytes() == before
