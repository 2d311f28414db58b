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
    rows = [dict(name="pkg1-a", split="train"), dict(name="pkg2-a-bigger", split="val"), dict(name="pkg1-b", split="train")]
    thumbs = {"pkg1-a": make_corpus.thumbnail(a),
              "pkg2-a-bigger": make_corpus.thumbnail(a.resize((192, 128), Image.LANCZOS)),  # the same photo, larger
              "pkg1-b": make_corpus.thumbnail(b)}
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
    monkeypatch.setattr(make_corpus, "DEBIAN", {("lomiri-wallpapers-16.04", None): {"usr/share/nowhere/x.jpg": ("a", "CC0")}})


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
    d822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n" \
           "Signed-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
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
