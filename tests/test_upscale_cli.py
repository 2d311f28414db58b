"""`affsr upscale` as a user runs it: a subprocess on real image files of every kind, with tiny
checkpoints of random weights (Π makes their outputs consistent all the same)."""

import hashlib
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from affsr_cli import checkpoint, methods
from affsr_cli.downsample import Downsample
from affsr_cli.images import read_image, write_image
from affsr_cli.projection import OperatorSpec
from affsr_cli.registry import DEFAULT
from helpers import VAL

A = Downsample(OperatorSpec())


def affsr(*args, env=None, cwd=None):
    """One thread: the images are tiny, and the test machine's cores are shared."""
    return subprocess.run(
        [sys.executable, "-m", "affsr_cli", "upscale", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})},
    )


def natural(name="chelsea", box=(50, 30, 74, 50)) -> Image.Image:
    """A small natural LR image: a crop of a bundled photo after a bicubic 2× reduction."""
    im = Image.open(VAL / f"{name}.png").convert("RGB")
    return im.resize((im.width // 2, im.height // 2), Image.BICUBIC).crop(box)


def lr_psnr(output: Path, source: Path) -> float:
    """A(saved file) against the input x, both read with images.read_image (independent of the engine)."""
    y, x = read_image(output), read_image(source)
    mse = float(((A(y.pixels[None].double()) - x.pixels[None].double()) ** 2).mean())
    return 10 * math.log10(1 / mse) if mse else math.inf


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


def test_short_flags_of_realesrgan_and_ncnn(ckpt, tmp_path):
    """-i (repeatable, beside INPUTS), -o, -n (= -w), -s (--outscale), -t (--tile; 0 = no tiling): the
    same file as the long options; no input at all is one line."""
    natural().save(tmp_path / "a.png")
    natural("coffee").save(tmp_path / "b.png")
    w = ckpt / "rgb.safetensors"
    r = affsr(tmp_path / "a.png", "--weights", w, "--outscale", "4", "--tile", "auto", "-o", tmp_path / "long.png")
    assert r.returncode == 0, r.stderr
    assert (
        "note: A = Gaussian σ = 1.5, 9 taps, stride 4, symmetric borders: the weights' own" in r.stderr
    )  # no --operator
    r = affsr("-i", tmp_path / "a.png", "-n", w, "-s", "4", "-t", "0", "-o", tmp_path / "short.png")
    assert r.returncode == 0 and "no tiling" in r.stdout, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "long.png")), np.asarray(Image.open(tmp_path / "short.png")))
    r = affsr(tmp_path / "a.png", "-i", tmp_path / "b.png", "-n", w, "-s", "2", "-o", tmp_path / "out", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(Path(row["output"]).name for row in json.loads(r.stdout)) == ["a.png", "b.png"]
    assert Image.open(tmp_path / "out" / "b.png").size == (48, 40)  # -s 2: twice the 24×20 input
    r = affsr("-n", w)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "affsr: error: no inputs: give image files, folders or globs (or -i PATH); see 'affsr upscale --help'"
    ]
    r = affsr(tmp_path / "a.png", "-n", w, "-t", "4")
    assert r.returncode == 2 and "tile size must be 0 (no tiling" in r.stderr and "note:" not in r.stderr
    r = affsr(tmp_path / "a.png", "-n", w, "--operator", "gaussian", "-o", tmp_path / "named.png")
    assert r.returncode == 0 and "note: A" not in r.stderr, r.stderr


def test_every_format_in_a_folder(ckpt, tmp_path):
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    im = natural()
    im.save(src / "rgb.png")
    write_image(
        src / "deep.png",
        torch.from_numpy(np.array(natural("coffee", (60, 40, 84, 60)))).permute(2, 0, 1) / 255,
        bits=16,
    )  # 16-bit colour PNG
    im.convert("L").save(src / "gray.png")
    rgba = im.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(im.size))
    rgba.save(src / "rgba.png")
    rgba.convert("LA").save(src / "sub" / "la.png")
    im.save(src / "photo.jpg", quality=95)
    im.convert("CMYK").save(src / "cmyk.jpg")
    frames = [im.convert("P", palette=Image.Palette.ADAPTIVE, dither=Image.Dither.NONE), im.rotate(90).convert("P")]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    im.crop((0, 0, 24, 16)).save(src / "rotated.jpg", exif=exif.tobytes(), quality=95)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im.save(src / "sub" / "icc.png", icc_profile=icc)
    im.save(src / "sub" / "deeper" / "tree.webp", lossless=True)
    im.save(src / "t.tif")
    im.save(src / "b.bmp")

    r = affsr(src, "-o", tmp_path / "out", "-w", ckpt / "rgb.safetensors", "--json")
    assert r.returncode == 0, r.stderr
    rows = {Path(row["input"]).relative_to(src).as_posix(): row for row in json.loads(r.stdout)}
    expected = {
        "rgb.png": "rgb.png",
        "deep.png": "deep.png",
        "gray.png": "gray.png",
        "rgba.png": "rgba.png",
        "sub/la.png": "sub/la.png",
        "photo.jpg": "photo.png",
        "cmyk.jpg": "cmyk.png",
        "anim.gif": "anim.png",
        "rotated.jpg": "rotated.png",
        "sub/icc.png": "sub/icc.png",
        "sub/deeper/tree.webp": "sub/deeper/tree.webp",
        "t.tif": "t.tif",
        "b.bmp": "b.bmp",
    }
    assert set(rows) == set(expected)
    for name, out_name in expected.items():
        row, out = rows[name], tmp_path / "out" / out_name
        assert Path(row["output"]) == out and out.is_file(), name
        w, h = row["size_in"]
        with Image.open(out) as o:
            assert o.size == (4 * w, 4 * h) == tuple(row["size_out"]), name
        target = 80 if name == "deep.png" else 60
        assert row["lr_psnr"] >= target, (name, row["lr_psnr"])
        assert abs(lr_psnr(out, src / name) - row["lr_psnr"]) < 0.05, name  # the saved file's (engine: A in float32)
        assert row["seconds"] > 0 and row["bits"] == (16 if name == "deep.png" else 8)
    assert read_image(tmp_path / "out" / "deep.png").bits == 16
    assert rows["rotated.jpg"]["size_in"] == [16, 24]  # EXIF orientation applied: 24×16 stored, 16×24 seen
    assert "anim.gif: 2 frames; only the first is upscaled" in r.stderr
    with Image.open(tmp_path / "out" / "sub" / "icc.png") as o:
        assert o.info.get("icc_profile") == icc
    with Image.open(tmp_path / "out" / "gray.png") as o:
        assert o.mode == "L"
    for name in ("rgba.png", "sub/la.png"):  # alpha upscaled apart, consistent with the input's alpha
        y, x = read_image(tmp_path / "out" / name), read_image(src / name)
        assert y.alpha is not None and y.pixels.shape[0] == x.pixels.shape[0]
        assert (A(y.alpha[None]) - x.alpha[None]).abs().max() < 2 / 255
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left


def test_single_file_suffix_overwrite_and_table(ckpt, tmp_path):
    natural().save(tmp_path / "a.png")
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--bit-depth", "16")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "a_x4.png"  # beside the input, default suffix
    assert read_image(out).bits == 16 and lr_psnr(out, tmp_path / "a.png") >= 80
    assert "LR-PSNR" in r.stdout and "a_x4.png" in r.stdout and "24×20 → 96×80" in r.stdout
    before = out.read_bytes()
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "-o", out)
    assert r.returncode == 1 and "exists; pass --overwrite" in r.stderr and out.read_bytes() == before
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "-o", out, "--overwrite", "--json")
    assert r.returncode == 0 and out.read_bytes() != before and read_image(out).bits == 8
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--suffix", "-big", "--ext", "webp", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["output"] == str(tmp_path / "a-big.webp")
    assert lr_psnr(tmp_path / "a-big.webp", tmp_path / "a.png") >= 60  # WebP is written lossless


def test_float_outputs_are_exact(ckpt, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    natural().save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png").pixels.double()
    for args, out in (
        (["--bit-depth", "32", "-o", tmp_path / "a.tif"], tmp_path / "a.tif"),
        (["--ext", "npy", "-o", tmp_path / "npy"], tmp_path / "npy" / "a.npy"),
    ):
        r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--json", *args)
        assert r.returncode == 0, r.stderr
        y = tifffile.imread(out) if out.suffix == ".tif" else np.load(out)
        assert y.dtype == np.float32 and y.shape == (80, 96, 3)
        assert (A(torch.from_numpy(y).permute(2, 0, 1).double()) - x).abs().max() <= 1e-5
        assert json.loads(r.stdout)[0]["lr_psnr"] >= 100


def test_samples_are_consistent_and_seeded(ckpt, tmp_path):
    natural().save(tmp_path / "a.png")
    digests = []
    for run in ("one", "two"):
        r = affsr(
            tmp_path / "a.png",
            "-w",
            ckpt / "noisy.safetensors",
            "--samples",
            "2",
            "--seed",
            "5",
            "-o",
            tmp_path / run,
            "--json",
        )
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert [Path(row["output"]).name for row in rows] == ["a_seed5.png", "a_seed6.png"]
        assert [row["seed"] for row in rows] == [5, 6] and min(row["lr_psnr"] for row in rows) >= 60
        digests.append([hashlib.sha256(Path(row["output"]).read_bytes()).hexdigest() for row in rows])
    assert digests[0] == digests[1] and digests[0][0] != digests[0][1]  # same seed, same files; seeds differ
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--samples", "2", "-o", tmp_path / "det")
    assert r.returncode == 2 and "stochastic checkpoint" in r.stderr and not (tmp_path / "det").exists()


def test_outscale_tiles_device_and_precision(ckpt, tmp_path):
    natural("chelsea", (40, 20, 80, 60)).save(tmp_path / "a.png")  # LR 40×40
    r = affsr(
        tmp_path / "a.png",
        "-w",
        ckpt / "rgb.safetensors",
        "--outscale",
        "2",
        "-o",
        tmp_path / "half.png",
        "--json",
        "--precision",
        "bf16",
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    assert row["lr_psnr"] is None and row["size_out"] == [80, 80] and Image.open(tmp_path / "half.png").size == (80, 80)
    assert "no longer downsample exactly" in r.stderr and "bf16 is not used on the CPU" in r.stderr
    for tile in ("auto", "28"):  # float32 output: the rounding's error feedback would amplify 1e-7 differences
        r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--tile", tile, "-o", tmp_path / f"t{tile}.npy")
        assert r.returncode == 0, r.stderr
    a, b = (np.load(tmp_path / f"t{t}.npy") for t in ("auto", "28"))
    assert (
        np.abs(a - b).max() <= 1e-5
    )  # 2×2 tiles overlapping by 16 ≥ 2R + 2 LR pixels = one tile, up to float rounding
    r = affsr(
        tmp_path / "a.png",
        "-w",
        ckpt / "rgb.safetensors",
        "--tile",
        "28",
        "--overlap",
        "-100",
        "-o",
        tmp_path / "gap.png",
    )
    lines = r.stderr.strip().splitlines()  # a negative overlap left gaps between tiles (37 levels off), exit 0
    assert (
        r.returncode == 2 and len(lines) == 1 and "'--overlap': Input should be greater than or equal to 0" in lines[0]
    )  # at parse time
    assert not (tmp_path / "gap.png").exists()
    if not torch.cuda.is_available():
        r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--device", "cuda:0")
        assert r.returncode == 2 and "CUDA is not available" in r.stderr and "Traceback" not in r.stderr
    r = affsr(tmp_path / "a.png", "-w", ckpt / "rgb.safetensors", "--tile", "big")
    assert r.returncode == 2 and "--tile" in r.stderr


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height pixels (a decompression bomb's header) with almost no data."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_inputs_are_reported_and_the_rest_is_done(ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    natural().save(src / "good.png")
    good = (src / "good.png").read_bytes()
    bad = {
        "empty.png": b"",
        "corrupt.png": good[:40] + bytes(range(256)) * 4 + good[-40:],
        "truncated.png": good[: len(good) // 2],
        "text.jpg": b"just some words\n",
        "bomb.png": png_header_only(40000, 40000),
    }
    for name, data in bad.items():
        (src / name).write_bytes(data)
    (tmp_path / "folder.png").mkdir()  # a folder named like an image, given explicitly
    r = affsr(
        src,
        tmp_path / "folder.png",
        tmp_path / "missing.png",
        "-o",
        tmp_path / "out",
        "-w",
        ckpt / "rgb.safetensors",
        "--json",
    )
    assert r.returncode == 1
    rows = json.loads(r.stdout)
    assert len(rows) == 8 and [row["lr_psnr"] >= 60 for row in rows if not row.get("error")] == [True]
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    for name in bad:
        assert sum(name in line for line in lines) == 1, (name, r.stderr)
    assert any("bomb.png" in line and "decompression bomb" in line for line in lines)
    assert any("folder.png: a folder with no image files" in line for line in lines)
    assert any("missing.png: no such file or folder" in line for line in lines)
    assert lines[-1] == "affsr: error: 7 input(s) failed, 1 file(s) written"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]  # nothing else, no temporary files
    r = affsr(src / "good.png", "-o", tmp_path / "small.png", "--max-pixels", "100", "-w", ckpt / "rgb.safetensors")
    assert r.returncode == 1 and "over the limit of 100" in r.stderr and not (tmp_path / "small.png").exists()


class Boom:  # unpickling this would create a file
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_bad_weights_are_refused_without_unpickling(tmp_path):
    natural().save(tmp_path / "a.png")
    marker = tmp_path / "unpickled"
    torch.save({"x": Boom(str(marker))}, tmp_path / "torch.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(Boom(str(marker))))
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    for name, words in (
        ("torch.pt", "pickle"),
        ("raw.pkl", "pickle"),
        ("empty.safetensors", "empty"),
        ("corrupt.safetensors", "not a valid safetensors"),
        ("no-such-name", "no shipped weights"),
    ):
        r = affsr(tmp_path / "a.png", "-w", tmp_path / name if "." in name else name, "-o", tmp_path / "out.png")
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert not (tmp_path / "out.png").exists()
    assert not marker.exists()


def test_default_weights_and_the_hub_cache(ckpt, tmp_path):
    natural().save(tmp_path / "a.png")
    if not DEFAULT.path.exists():
        r = affsr(tmp_path / "a.png")
        assert r.returncode == 2 and "not shipped yet" in r.stderr and "--weights" in r.stderr
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-affsr"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "rgb.safetensors").write_bytes((ckpt / "rgb.safetensors").read_bytes())
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    r = affsr(
        tmp_path / "a.png",
        "-w",
        "hf://someone/tiny-affsr/rgb.safetensors",
        "-o",
        tmp_path / "hub.png",
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["lr_psnr"] >= 60
    r = affsr(tmp_path / "a.png", "-w", "hf://someone/other/rgb.safetensors", "-o", tmp_path / "no.png", env=env)
    assert (
        r.returncode == 2 and "not in the local Hugging Face cache" in r.stderr and not (tmp_path / "no.png").exists()
    )


def test_shards_cover_a_folder_exactly_once_and_balance_pixels(ckpt, tmp_path):
    """N processes with --shard 0/N … N−1/N write every output once, the same files a single run
    writes; --skip-existing finishes a batch after a failure. The split balances pixels, not files."""
    from affsr_cli.outputs import shards

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        w, h = int(rng.integers(8, 30)), int(rng.integers(8, 30))
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(src / f"p{i}.png")
    r = affsr(src, "-o", tmp_path / "one", "-w", ckpt / "rgb.safetensors")
    assert r.returncode == 0, r.stderr
    for k in range(3):
        r = affsr(src, "-o", tmp_path / "many", "-w", ckpt / "rgb.safetensors", "--shard", f"{k}/3")
        assert r.returncode == 0 and f"shard {k}/3" in r.stderr, r.stderr
    one, many = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "many").iterdir())
    assert [p.name for p in one] == [p.name for p in many] and all(
        a.read_bytes() == b.read_bytes() for a, b in zip(one, many)
    )
    (tmp_path / "many" / "p3.png").unlink()  # a shard that died
    r = affsr(src, "-o", tmp_path / "many", "-w", ckpt / "rgb.safetensors", "--skip-existing", "--json")
    assert r.returncode == 0 and [Path(x["output"]).name for x in json.loads(r.stdout)] == ["p3.png"]
    for bad in ("3/3", "1", "a/b", "-1/2"):
        r = affsr(src, "-o", tmp_path / "x", "-w", ckpt / "rgb.safetensors", "--shard", bad)
        assert r.returncode == 2 and "--shard must be K/N" in r.stderr and not (tmp_path / "x").exists()
    sizes = [int(a) * int(b) for a, b in rng.integers(64, 4000, (1000, 2))]
    owner = shards(sizes, 7)
    load = [sum(s for s, o in zip(sizes, owner) if o == k) for k in range(7)]
    assert sorted(set(owner)) == list(range(7)) and max(load) / (sum(load) / 7) < 1.01
    assert shards(sizes, 7) == owner  # the same list, the same split in every process


def test_suffix_with_a_path_separator_is_refused(ckpt, tmp_path):
    """--suffix /../../x wrote outside the input's folder (issue 19 §5): refused, nothing written."""
    natural().save(tmp_path / "p.png")
    for bad in ("/../../x", "a\\b", "_x4/"):
        r = affsr(tmp_path / "p.png", "-w", ckpt / "rgb.safetensors", "--suffix", bad)
        assert r.returncode == 2 and "path separator" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"] and not (tmp_path.parent.parent / "x.png").exists()


def test_glob_visits_each_real_file_once(ckpt, tmp_path):
    """A `self -> .` link under a '**' glob gave 41 outputs from one image (issue 19 §5); the same file
    named by a glob, a folder and its path is upscaled once."""
    (tmp_path / "in" / "a").mkdir(parents=True)
    natural().save(tmp_path / "in" / "a" / "p.png")
    (tmp_path / "in" / "a" / "self").symlink_to(".")
    r = affsr(
        f"{tmp_path / 'in'}/**/*.png",
        tmp_path / "in" / "a",
        tmp_path / "in" / "a" / "p.png",
        "-o",
        tmp_path / "out",
        "-w",
        ckpt / "rgb.safetensors",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 1 and [p.name for p in (tmp_path / "out").rglob("*.png")] == ["p.png"]


def test_a_latin1_terminal_gets_ascii_not_a_crash(ckpt, tmp_path):
    """LANG=C / latin-1 terminals: the table's → and × failed the run after the file was written (exit 2,
    issue 19 §8); now they print as ASCII."""
    natural().save(tmp_path / "p.png")
    r = subprocess.run(
        [sys.executable, "-m", "affsr_cli", "upscale", str(tmp_path / "p.png"), "-w", str(ckpt / "rgb.safetensors")],
        capture_output=True,
        encoding="latin-1",
        env={**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "latin-1"},
    )
    assert r.returncode == 0 and (tmp_path / "p_x4.png").exists(), r.stderr
    assert "->" in r.stdout and "→" not in r.stdout


def test_sigterm_leaves_no_partial_file(ckpt, tmp_path):
    """SIGTERM during upscale (timeout, docker stop, schedulers) left hidden .NAME.XXXX.tmp files
    (issue 19 §6): it now stops like Ctrl-C, one line, exit 130, no temporaries."""
    import signal
    import time

    src = tmp_path / "in"
    src.mkdir()
    big = Image.open(VAL / "astronaut.png").convert("RGB")
    for i in range(6):
        big.save(src / f"p{i}.png")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "upscale",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "-w",
            str(ckpt / "rgb.safetensors"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        (tmp_path / "out").glob("*.png")
    ):  # the first file is written: work under way
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert all(
        Image.open(p).size == (4 * big.width, 4 * big.height) for p in (tmp_path / "out").glob("*.png")
    )  # whole files


def test_no_input_of_the_batch_is_replaced_or_upscaled_again(ckpt, tmp_path):
    """p.png beside a user's own p_x4.png: with --overwrite p.png's output replaced p_x4.png and then
    p_x4.png was upscaled again into p_x4_x4.png (issue 19 §1). Now p_x4.png is kept and not re-read
    (it bears p.png's output name), p.png is refused with the reason, and what was skipped is said."""
    d = tmp_path / "in"
    d.mkdir()
    natural().save(d / "p.png")
    natural("coffee").save(d / "p_x4.png")
    mine = (d / "p_x4.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        r = affsr(d, "-w", ckpt / "rgb.safetensors", *extra)
        assert r.returncode == 1 and (d / "p_x4.png").read_bytes() == mine and not (d / "p_x4_x4.png").exists()
        assert (
            "is an input of this batch and is kept" in r.stderr
            and "not upscaled, its name is the output of" in r.stderr
        )
    (d / "p_x4.png").unlink()
    natural().save(d / "x.tif")  # x.png and x.tif: different outputs, both done
    natural().save(d / "x.png")
    r = affsr(d, "-w", ckpt / "rgb.safetensors")
    assert r.returncode == 0, r.stderr
    assert {p.name for p in d.iterdir()} == {"p.png", "p_x4.png", "x.png", "x.tif", "x_x4.png", "x_x4.tif"}
    r = affsr(d, "-w", ckpt / "rgb.safetensors")  # twice: the first run's outputs are not inputs now
    assert "not upscaled" in r.stderr and not any("_x4_x4" in p.name for p in d.iterdir())


def test_a_folder_upscaled_in_place_runs_again(ckpt, tmp_path):
    """`affsr upscale photos/` twice (issue 34 §5): the second run failed on every input ('its output is an
    input of this batch'), even with --overwrite or --skip-existing. Our own outputs (another input's output
    name and size) are no inputs now: without a flag each input says its output exists, --skip-existing
    skips, --overwrite replaces them; no input is touched, nothing is upscaled twice."""
    d = tmp_path / "photos"
    d.mkdir()
    natural().save(d / "a.png")
    natural("coffee").save(d / "b.png")
    natural().convert("L").save(d / "c.jpg")  # its output is c_x4.png
    w = ckpt / "rgb.safetensors"
    r = affsr(d, "-w", w)
    assert r.returncode == 0, r.stderr
    inputs = {name: (d / name).read_bytes() for name in ("a.png", "b.png", "c.jpg")}
    first = {p.name: p.stat().st_ino for p in d.glob("*_x4.png")}  # a replaced file is a new one (written, renamed)
    assert set(first) == {"a_x4.png", "b_x4.png", "c_x4.png"}
    r = affsr(d, "-w", w)
    assert (
        r.returncode == 1 and "3 file(s) not upscaled: outputs of this batch's inputs from an earlier run" in r.stderr
    )
    assert r.stderr.count("exists; pass --overwrite to replace it or --skip-existing to keep it") == 3, r.stderr
    assert "is an input of this batch" not in r.stderr
    r = affsr(d, "-w", w, "--skip-existing", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr
    assert r.stderr.count("skipped") == 3 and {p.name: p.stat().st_ino for p in d.glob("*_x4.png")} == first
    r = affsr(d, "-w", w, "--overwrite", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(Path(row["input"]).name for row in json.loads(r.stdout)) == ["a.png", "b.png", "c.jpg"]
    assert all(p.stat().st_ino != first[p.name] for p in d.glob("*_x4.png"))
    assert {p.name for p in d.iterdir()} == {"a.png", "b.png", "c.jpg", "a_x4.png", "b_x4.png", "c_x4.png"}
    assert all((d / name).read_bytes() == data for name, data in inputs.items())
    r = affsr(d / "a.png", d / "a_x4.png", "-w", w, "--skip-existing")  # named one by one (a shell's *.png): the same
    assert r.returncode == 0 and "1 file(s) not upscaled" in r.stderr and not (d / "a_x4_x4.png").exists()


def test_a_run_folder_stands_for_its_generator(ckpt, tmp_path):
    """-w RUN (what `affsr train --out` made) upscales with RUN/generator.safetensors; a folder without one is one line."""
    natural().save(tmp_path / "a.png")
    run = tmp_path / "run"
    run.mkdir()
    (run / "generator.safetensors").write_bytes((ckpt / "rgb.safetensors").read_bytes())
    for w, out in ((run, "folder.png"), (ckpt / "rgb.safetensors", "file.png")):
        r = affsr(tmp_path / "a.png", "-w", w, "-o", tmp_path / out)
        assert r.returncode == 0, r.stderr
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "folder.png")), np.asarray(Image.open(tmp_path / "file.png"))
    )
    (tmp_path / "empty").mkdir()
    r = affsr(tmp_path / "a.png", "-w", tmp_path / "empty", "-o", tmp_path / "no.png")
    assert r.returncode == 2 and "without generator.safetensors" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no.png").exists()


def test_ensemble_output_differs_and_stays_consistent(ckpt, tmp_path):
    """--ensemble changes the picture (a random network is not flip-equivariant), not the contract."""
    natural().save(tmp_path / "x.png")
    outs = {}
    for flag in ((), ("--ensemble",)):
        out = tmp_path / f"y{len(flag)}.png"
        r = affsr(tmp_path / "x.png", "-o", out, "-w", ckpt / "rgb.safetensors", *flag)
        assert r.returncode == 0, r.stderr
        assert lr_psnr(out, tmp_path / "x.png") >= 60
        outs[flag] = np.asarray(Image.open(out), dtype=np.float64)
    assert "×8 self-ensemble" in " ".join(r.stdout.split()) and np.abs(outs[()] - outs[("--ensemble",)]).max() >= 2
