"""examples/photos/make_corpus.py: it stops with one line when a source cannot be fetched (and leaves
an existing corpus as it was), finds copies of one photo across packages, and reads the mirror from
apt's configuration. No network: apt-get is replaced by a script that fails."""

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "photos"))
import make_corpus  # noqa: E402


def photo(seed: int, size=(96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)  # smooth structure a resize keeps
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def test_copies_are_dropped_and_validation_photos_kept(tmp_path):
    a, b = photo(0), photo(1)
    rows = [
        dict(name="pkg1-a", split="train"),
        dict(name="pkg2-a-bigger", split="val"),
        dict(name="pkg1-b", split="train"),
    ]
    thumbs = {
        "pkg1-a": make_corpus.thumbnail(a),
        "pkg2-a-bigger": make_corpus.thumbnail(a.resize((192, 128), Image.LANCZOS)),  # the same photo, larger
        "pkg1-b": make_corpus.thumbnail(b),
    }
    dropped = make_corpus.drop_duplicates(rows, thumbs)
    assert [d[:2] for d in dropped] == [("pkg1-a", "pkg2-a-bigger")]  # the validation copy is the one kept
    assert dropped[0][2] < make_corpus.DUPLICATE_LEVELS
    assert sorted(r["name"] for r in rows) == ["pkg1-b", "pkg2-a-bigger"]
    assert "pkg2-a-bigger" in rows[[r["name"] for r in rows].index("pkg1-b")]["nearest"]


def test_distinct_photos_are_far_apart():
    d = np.abs(make_corpus.thumbnail(photo(0)) - make_corpus.thumbnail(photo(1))).mean()
    assert d > 4 * make_corpus.DUPLICATE_LEVELS


@pytest.fixture
def failing_apt(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text("#!/bin/sh\necho 'E: Unable to locate package' >&2\nexit 100\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # no package counts as installed on this machine: every one is fetched (and fails)
    monkeypatch.setattr(
        make_corpus, "DEBIAN", {("lomiri-wallpapers-16.04", None): {"usr/share/nowhere/x.jpg": ("a", "CC0")}}
    )


def test_unfetchable_source_stops_with_one_line_and_keeps_the_old_corpus(tmp_path, failing_apt, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    rc = make_corpus.main(["--out", str(out), "--cache", str(tmp_path / "cache"), "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("error: apt-get download lomiri-wallpapers-16.04 failed")
    assert "Unable to locate package" in err and "--allow-missing" in err
    assert (out / "mine.txt").read_text() == "the user's"  # nothing replaced


def test_existing_corpus_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    assert make_corpus.main(["--out", str(out), "--cache", str(tmp_path / "cache")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_mirror_read_from_deb822_and_one_line_lists(tmp_path, monkeypatch):
    d822 = (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    one = "# comment\ndeb [arch=amd64 signed-by=/o.gpg] http://other.example/debian trixie main\n"
    real = Path

    def fake(p, *a):
        mapping = {"/etc/apt/sources.list.d": tmp_path / "d", "/etc/apt/sources.list": tmp_path / "sources.list"}
        return real(mapping.get(str(p), p), *a)

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "debian.sources").write_text(d822)
    monkeypatch.setattr(make_corpus, "Path", fake)
    assert make_corpus.apt_mirror() == ("http://mirror.example/debian", "/k.gpg")
    (tmp_path / "d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(one)
    assert make_corpus.apt_mirror() == ("http://other.example/debian", "/o.gpg")
    (tmp_path / "sources.list").write_text("")
    with pytest.raises(make_corpus.SourceError, match="no Debian mirror"):
        make_corpus.apt_mirror()


@pytest.mark.parametrize("length", [256, 257, 300, 480, 481, 512, 600, 900, 1600])
def test_tiles_cover_the_side_edge_to_edge(length):
    starts = make_corpus.tile_starts(length, 256, 224)
    assert starts[0] == 0 and starts[-1] == length - 256  # flush with both edges: no pixel lost
    gaps = np.diff(starts)
    assert (gaps > 0).all() and (gaps <= 224).all()  # neighbours overlap by at least 32 px
    n = len(starts)
    assert n == 1 or (n - 2) * 224 < length - 256  # as few tiles as the spacing allows
    assert make_corpus.tile_starts(255, 256, 224) == []  # shorter than one tile: no tile at all


def test_corpus_of_small_photos_no_upscaling_every_pixel_tiled(tmp_path, monkeypatch, capsys):
    """An offline build from a package already unpacked in the cache: photos under 1 MP are used at
    their own size, their tiles cover them, one shorter than a tile is left out, EXIF orientation applied."""
    root = tmp_path / "cache" / "fakepkg" / "usr" / "share"
    root.mkdir(parents=True)
    photo(2, (600, 520)).save(root / "wide.png")
    photo(3, (300, 200)).save(root / "tiny.png")  # 200 px < one 256 tile
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90° clockwise to view
    photo(4, (400, 280)).save(root / "turned.jpg", exif=exif, quality=95)
    photo(5, (320, 288)).save(root / "held.png")
    files = {f"usr/share/{n}": ("someone", "CC0-1.0") for n in ["wide.png", "tiny.png", "turned.jpg", "held.png"]}
    monkeypatch.setattr(make_corpus, "DEBIAN", {("fakepkg", None): files})
    monkeypatch.setattr(make_corpus, "SAMPLE_DATA", [])
    monkeypatch.setattr(make_corpus, "VAL", {"fakepkg-held"})
    out = tmp_path / "photos"
    assert make_corpus.main(["--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    err = capsys.readouterr().err
    assert "fakepkg-tiny (300x200) is smaller than one 256x256 tile: left out" in err
    tiles = sorted((out / "train").glob("*.png"))
    assert not any(t.name.startswith("fakepkg-tiny") for t in tiles)
    assert all(Image.open(t).size == (256, 256) for t in tiles)
    canvas = np.zeros((520, 600, 3), np.uint8)
    covered = np.zeros((520, 600), bool)
    for t in tiles:
        name, top, left = t.stem.rsplit("_", 2)
        if name == "fakepkg-wide":
            canvas[int(top) : int(top) + 256, int(left) : int(left) + 256] = np.asarray(Image.open(t))
            covered[int(top) : int(top) + 256, int(left) : int(left) + 256] = True
    assert covered.all()  # every pixel of the photo is in a tile, at its own size (not resized)
    assert np.array_equal(canvas, np.asarray(Image.open(root / "wide.png").convert("RGB")))
    turned = [t for t in tiles if t.name.startswith("fakepkg-turned")]
    assert {tuple(t.stem.rsplit("_", 2)[1:]) for t in turned} == {  # upright: 280 wide, 400 high
        ("0000", "0000"),
        ("0000", "0024"),
        ("0144", "0000"),
        ("0144", "0024"),
    }
    assert [p.name for p in (out / "val").iterdir()] == ["fakepkg-held.png"]
    assert Image.open(out / "val" / "fakepkg-held.png").size == (320, 288)


def test_jpeg_xl_without_decoder_stops_before_fetching(tmp_path, failing_apt, monkeypatch, capsys):
    monkeypatch.setattr(make_corpus, "DEBIAN", {("budgie-backgrounds", "sid"): {"usr/share/x.jxl": ("a", "CC0")}})
    monkeypatch.setattr(make_corpus, "jxl_decoder", lambda: False)
    rc = make_corpus.main(["--out", str(tmp_path / "photos"), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "JPEG XL" in err and "pip install pillow-jxl-plugin" in err and "apt-get" not in err


def test_jpeg_xl_photo_is_read(tmp_path):
    pytest.importorskip("pillow_jxl")
    make_corpus.jxl_decoder()
    im = photo(6, (200, 120))
    im.save(tmp_path / "a.jxl", lossless=True)
    assert np.array_equal(np.asarray(make_corpus.prepare(tmp_path / "a.jxl", 1600)), np.asarray(im))


def test_two_photos_with_one_name_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        make_corpus,
        "DEBIAN",
        {("lxqt-themes", "sid"): {"a/fog.jpg": ("a", "CC0")}, ("lxqt-other", None): {"b/fog.png": ("b", "CC0")}},
    )
    assert make_corpus.main(["--out", str(tmp_path / "photos"), "--cache", str(tmp_path / "cache")]) == 1
    assert "two photos named lxqt-fog" in capsys.readouterr().err
