"""`affsr project`: another tool's upscaled files made consistent with their LR inputs."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers import VAL, one_thread


def affsr(*args):
    return one_thread("project", *args)


@pytest.fixture()
def pair(tmp_path):
    """An LR photo made by Pillow's bicubic 4× reduction and its bicubic 4× upscale (another tool's result)."""
    hr = Image.open(VAL / "coffee.png").convert("RGB").crop((100, 60, 260, 180))
    lr = hr.resize((40, 30), Image.BICUBIC)
    (tmp_path / "lr").mkdir()
    (tmp_path / "sr").mkdir()
    lr.save(tmp_path / "lr" / "a.png")
    lr.resize((160, 120), Image.BICUBIC).save(tmp_path / "sr" / "a.png")
    return tmp_path, lr


def test_makes_a_foreign_result_consistent(pair):
    d, lr = pair
    r = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "out.png", "--operator", "bicubic", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    assert row["scale"] == 4 and row["lr_psnr_before"] < 50 and row["lr_psnr_after"] >= 60
    back = np.asarray(Image.open(d / "out.png").resize(lr.size, Image.BICUBIC))
    assert (back == np.asarray(lr)).all()  # Pillow's own resize gives the input back
    sr = np.asarray(Image.open(d / "sr" / "a.png")).astype(int)
    assert np.abs(np.asarray(Image.open(d / "out.png")).astype(int) - sr).mean() < 3  # a correction, not a new image


def test_folders_pair_by_name_and_nothing_is_lost(pair):
    d, lr = pair
    lr.save(d / "lr" / "b.png")
    lr.resize((140, 105), Image.BICUBIC).save(d / "sr" / "b.png")  # 3.5×: an --outscale'd result
    r = affsr(d / "lr", d / "sr", "-o", d / "out", "--operator", "bicubic")
    assert r.returncode == 1 and (d / "out" / "a.png").exists() and not (d / "out" / "b.png").exists()
    assert "b: SR 140×105 is not an integer multiple" in r.stderr and "Traceback" not in r.stderr
    before = (d / "out" / "a.png").read_bytes()
    r = affsr(d / "lr", d / "sr", "-o", d / "out", "--operator", "bicubic")
    assert "exists; pass --overwrite" in r.stderr and (d / "out" / "a.png").read_bytes() == before
    r = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "sr" / "a.png", "--operator", "bicubic", "--overwrite")
    assert r.returncode == 1 and "would replace an input" in r.stderr
    (d / "sr" / "b.png").unlink()
    (d / "sr" / "c.png").write_bytes((d / "sr" / "a.png").read_bytes())
    r = affsr(d / "lr", d / "sr", "-o", d / "out2", "--operator", "bicubic")
    assert r.returncode == 2 and "do not pair by name" in r.stderr and not (d / "out2").exists()


def test_without_operator_bicubic_and_a_note_say_which(pair):
    """Issue 34 §4: --operator was required; now the rule of every command (projection.choose_operator): no
    weights, no --operator -> bicubic (gaussian when only --kernel-size/--sigma are given), said in one note."""
    d, lr = pair
    r = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "out.png", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("note: A = bicubic") and "no --operator" in r.stderr and r.stderr.count("\n") == 1
    r2 = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "named.png", "--operator", "bicubic", "--json")
    assert r2.returncode == 0 and "note:" not in r2.stderr
    assert (d / "out.png").read_bytes() == (d / "named.png").read_bytes()
    assert (np.asarray(Image.open(d / "out.png").resize(lr.size, Image.BICUBIC)) == np.asarray(lr)).all()
    r = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "g.png", "--sigma", "1.2")
    assert r.returncode == 0 and "note: A = Gaussian σ = 1.2" in r.stderr, r.stderr
    r = affsr(d / "lr" / "a.png", d / "sr" / "a.png", "-o", d / "out3.png", "--operator", "bicubic", "--sigma", "1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "gaussian operator only" in r.stderr
    r = affsr(d / "lr" / "a.png", d / "sr" / "missing.png", "-o", d / "out4.png")
    assert r.returncode != 0 and "note:" not in r.stderr  # an error stays one line


def test_remove_grid_takes_a_painted_grid_out_and_stays_consistent(pair):
    """An SR result with a ±4-level grid painted at one pixel phase: plain Π keeps it (the nearest
    consistent image), --remove-grid takes it out (grid-levels under 0.5, from ~8); both files Pillow-exact."""
    from affsr_cli import metrics
    from affsr_cli.images import read_image

    d, lr = pair
    sr = np.asarray(Image.open(d / "sr" / "a.png")).astype(int)
    sr[1::4, 2::4] += 4
    sr[3::4, 0::4] -= 4
    Image.fromarray(np.clip(sr, 0, 255).astype(np.uint8)).save(d / "sr" / "g.png")
    levels = {}
    for name, extra in (("plain", ()), ("removed", ("--remove-grid",))):
        out = d / f"{name}.png"
        r = affsr(d / "lr" / "a.png", d / "sr" / "g.png", "-o", out, "--operator", "bicubic", *extra)
        assert r.returncode == 0, r.stderr
        assert (np.asarray(Image.open(out).resize(lr.size, Image.BICUBIC)) == np.asarray(lr)).all()
        levels[name] = metrics.grid_levels(read_image(out).pixels, 4)
    assert levels["plain"] > 5 and levels["removed"] < 0.5, levels
