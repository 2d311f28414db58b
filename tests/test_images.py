"""affsr_cli.images: exact 8/16-bit round trips, every PNG row filter, EXIF orientation, modes, bad files."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from affsr_cli import images as I


def as_levels(pic: I.Picture) -> np.ndarray:
    t = pic.pixels if pic.alpha is None else torch.cat([pic.pixels, pic.alpha])
    return (t.double() * pic.levels).round().long().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_is_exact(tmp_path, channels, bits):
    a = np.random.default_rng(channels).integers(0, 2**bits, (13, 21, channels))
    t = torch.from_numpy(a).permute(2, 0, 1).double() / (2**bits - 1)
    colour, alpha = (t[:-1], t[-1:]) if channels in (2, 4) else (t, None)
    path = I.write_image(tmp_path / "a.png", colour, alpha=alpha, bits=bits)
    pic = I.read_image(path, torch.float64)
    assert pic.bits == bits and (pic.alpha is None) == (alpha is None)
    assert pic.pixels.shape == (channels - (channels in (2, 4)), 13, 21)
    assert (as_levels(pic) == a).all()
    if bits == 8 or channels == 1:  # Pillow reads these at full precision: an independent decoder
        assert (np.asarray(Image.open(path)).reshape(13, 21, channels) == a).all()


def png(width, height, depth, ctype, lines: bytes) -> bytes:
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))  # noqa: E731
    return (
        I.PNG_SIGNATURE
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(lines))
        + chunk(b"IEND", b"")
    )


def filter_rows(raw: np.ndarray, bpp: int, kinds) -> bytes:
    """Reference PNG encoder for all five filters (spec section 9), byte by byte."""
    out, prev = b"", [0] * raw.shape[1]
    for row, kind in zip(raw.tolist(), kinds):
        enc = []
        for x, v in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            enc.append((v - [0, a, b, (a + b) // 2, paeth][kind]) % 256)
        out += bytes([kind] + enc)
        prev = row
    return out


def test_16_bit_colour_png_with_every_row_filter(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, (10, 7, 3)).astype(np.uint16)
    raw = a.astype(">u2").view(np.uint8).reshape(10, -1)
    (tmp_path / "f.png").write_bytes(png(7, 10, 16, 2, filter_rows(raw, 6, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])))
    pic = I.read_image(tmp_path / "f.png", torch.float64)
    assert pic.bits == 16 and (as_levels(pic) == a).all()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillow(tmp_path, orientation):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8))
    exif = im.getexif()
    exif[I.ORIENTATION] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert (as_levels(I.read_image(tmp_path / "o.png")) == want).all()


def test_modes_become_gray_or_rgb_with_alpha_apart(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.tif")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).convert("1").save(tmp_path / "b.png")
    cmyk, pal, la, bw = (I.read_image(tmp_path / n) for n in ("c.tif", "p.png", "la.png", "b.png"))
    assert cmyk.pixels.shape == (3, 6, 5) and cmyk.alpha is None
    assert np.abs(as_levels(cmyk) - np.asarray(Image.open(tmp_path / "c.tif").convert("RGB"))).max() == 0
    assert pal.pixels.shape == (3, 6, 5) and pal.alpha is None
    assert la.pixels.shape == (1, 6, 5) and la.alpha is not None and la.alpha.min() == 1
    assert bw.pixels.shape == (1, 6, 5) and set(bw.pixels.unique().tolist()) <= {0.0, 1.0}


def test_bad_files_name_the_file(tmp_path):
    good = tmp_path / "good.png"
    I.write_image(good, torch.rand(3, 40, 40))
    data = good.read_bytes()
    cases = {"empty.png": b"", "text.png": b"hello, not an image", "cut.png": data[: len(data) // 2]}
    a16 = tmp_path / "a16.png"
    I.write_image(a16, torch.rand(3, 40, 40), bits=16)
    cases["cut16.png"] = a16.read_bytes()[:200]
    bad_crc = bytearray(a16.read_bytes())
    bad_crc[40] ^= 0xFF
    cases["crc16.png"] = bytes(bad_crc)
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match=name):
            I.read_image(tmp_path / name)
    for path, words in ((tmp_path, "folder"), (tmp_path / "none.png", "no such file")):
        with pytest.raises(ValueError, match=words):
            I.read_image(path)
    with pytest.raises(ValueError, match="decompression bomb"):
        I.read_image(good, max_pixels=1000)
    with pytest.raises(ValueError, match="decompression bomb"):
        I.read_image(a16, max_pixels=1000)


def test_writes_are_atomic_and_never_overwrite(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        I.write_image(target, torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="alpha"):
        I.write_image(tmp_path / "x.jpg", torch.rand(3, 8, 8), alpha=torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="16-bit"):
        I.write_image(tmp_path / "x.jpg", torch.rand(3, 8, 8), bits=16)
    with pytest.raises(ValueError, match="NaN"):
        I.write_image(tmp_path / "n.png", torch.full((3, 8, 8), float("nan")))

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        I.atomic_write(tmp_path / "half.png", boom)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    I.write_image(target, torch.rand(3, 8, 8), overwrite=True)
    assert I.read_image(target).pixels.shape == (3, 8, 8)
