"""affsr_cli.png.read_png: 16-bit PNGs of every colour type, row filter and interlacing, decoded exactly
(against an encoder written here from the PNG spec, section 9); both routes (Pillow's C unfilter, and
numpy where that is unavailable or wrong); bad files; speed."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import images as I
from affsr_cli import png as P

ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
FILTERS = {"none": 0, "sub": 1, "up": 2, "average": 3, "paeth": 4}
CTYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def filter_lines(raw: np.ndarray, bpp: int, kinds: np.ndarray) -> bytes:
    """Scanlines of raw (h, w·bpp) uint8, row i filtered by kinds[i] (0-4), each after its filter byte."""
    x = raw.astype(np.int32)
    a, b, c = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    a[:, bpp:], b[1:], c[1:, bpp:] = x[:, :-bpp], x[:-1], x[:-1, :-bpp]
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    predictor = np.stack([np.zeros_like(x), a, b, (a + b) // 2, paeth])[kinds, np.arange(len(x))]
    return np.concatenate([kinds[:, None], (x - predictor) % 256], axis=1).astype(np.uint8).tobytes()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode(a: np.ndarray, filters="mixed", interlace=False) -> bytes:
    """PNG of a (H, W, C) uint8/uint16; filters: a name of FILTERS (every row) or "mixed" (random per row)."""
    height, width, channels = a.shape
    depth = 16 if a.dtype == np.uint16 else 8
    stream, rng = b"", np.random.default_rng(width * height)
    for y0, x0, dy, dx in ADAM7 if interlace else ((0, 0, 1, 1),):
        sub = a[y0::dy, x0::dx]
        if sub.size:  # an empty pass has no scanlines
            raw = np.ascontiguousarray(sub, ">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(len(sub), -1)
            kinds = rng.integers(0, 5, len(sub)) if filters == "mixed" else np.full(len(sub), FILTERS[filters])
            stream += filter_lines(raw, channels * depth // 8, kinds)
    compressed = zlib.compress(stream)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, CTYPE[channels], 0, 0, int(interlace))
    return (
        P.PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", compressed[:9])  # two IDAT chunks
        + chunk(b"IDAT", compressed[9:])
        + chunk(b"IEND", b"")
    )


def image(kind: str, height: int, width: int, channels: int, seed=0, dtype=np.uint16) -> np.ndarray:
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, top + 1, (height, width, channels)).astype(dtype)
    if kind == "extremes":  # carries and ties: 0, 1, 255, 256, ..., the top
        return rng.choice(
            np.array([0, 1, 255, 256, top - 256, top - 255, top - 1, top]) & top, (height, width, channels)
        ).astype(dtype)
    y, x, ch = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    smooth = 0.5 + 0.3 * np.sin(x / 5 + ch) * np.cos(y / 7) + 0.15 * (x + y) / (width + height)
    return np.clip(smooth * top + rng.normal(0, top / 2000, smooth.shape), 0, top).round().astype(dtype)


def decode(tmp_path, blob: bytes, name="t.png", limit=10**8) -> np.ndarray:
    (tmp_path / name).write_bytes(blob)
    return P.read_png(tmp_path / name, limit)


SIZES = [(1, 1), (1, 7), (7, 1), (33, 17)]  # width × height


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_decodes_exactly(tmp_path, channels, width, height, interlace):
    for data in ("random", "smooth", "extremes"):
        a = image(data, height, width, channels, seed=channels)
        for filters in (*FILTERS, "mixed"):
            got = decode(tmp_path, encode(a, filters, interlace))
            assert got.dtype == np.uint16 and got.shape == a.shape
            assert np.array_equal(got, a), (data, filters)


@pytest.mark.parametrize("interlace", [False, True])
def test_numpy_route_decodes_exactly(tmp_path, monkeypatch, interlace):
    """Where Pillow has no such decoder (here: none at all), numpy unfilters: the same arrays."""

    def no_decoder(*args, **kwargs):
        raise ValueError("no decoder")

    monkeypatch.setattr(I.Image, "frombytes", no_decoder)
    for channels in (1, 2, 3, 4):
        for width, height in SIZES + [(20, 3), (3, 20)]:
            a = image("random", height, width, channels, seed=width)
            for filters in (*FILTERS, "mixed"):
                assert np.array_equal(decode(tmp_path, encode(a, filters, interlace)), a), (channels, filters)
            a8 = image("smooth", height, width, channels, dtype=np.uint8)
            got = decode(tmp_path, encode(a8, "mixed", interlace))
            assert got.dtype == np.uint8 and np.array_equal(got, a8)


def test_wrong_pillow_output_is_caught(tmp_path, monkeypatch):
    """A Pillow whose unpackers kept other bytes (here: high and low swapped) fails the check of sample rows,
    and numpy decodes instead."""
    a = image("smooth", 17, 33, 3)
    (tmp_path / "s.png").write_bytes(encode(a, "paeth"))
    swapped = {6: [("RGB", "RGB;16L", [0, 2, 4]), ("RGB", "RGB;16B", [1, 3, 5])]}
    calls = []
    real = P._unfilter_pil
    monkeypatch.setattr(P, "_PIL_DECODES", swapped)
    monkeypatch.setattr(P, "_unfilter_pil", lambda *args: calls.append(real(*args)) or calls[-1])
    assert np.array_equal(P.read_png(tmp_path / "s.png", 10**8), a)
    assert len(calls) == 1 and calls[0] is None


def test_pillow_route_is_the_one_taken(tmp_path, monkeypatch):
    """With this Pillow, every colour type and interlacing goes through its C decoder (the fast route)."""
    calls = []
    real = P._unfilter_pil
    monkeypatch.setattr(P, "_unfilter_pil", lambda *args: calls.append(real(*args)) or calls[-1])
    for channels in (1, 2, 3, 4):
        for interlace in (False, True):
            for dtype in (np.uint8, np.uint16):
                a = image("random", 17, 33, channels, dtype=dtype)
                assert np.array_equal(decode(tmp_path, encode(a, "mixed", interlace)), a)
    assert len(calls) == 16 and all(c is not None for c in calls)


def test_reference_encoder_agrees_with_pillow(tmp_path):
    """The encoder above, checked where Pillow decodes at full precision: 8 bits, and 16-bit gray."""
    for interlace in (False, True):
        for filters in (*FILTERS, "mixed"):
            for channels in (1, 2, 3, 4):
                a = image("random", 17, 33, channels, dtype=np.uint8)
                (tmp_path / "r.png").write_bytes(encode(a, filters, interlace))
                assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png")).reshape(a.shape), a)
            g = image("random", 17, 33, 1)
            (tmp_path / "g.png").write_bytes(encode(g, filters, interlace))
            assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")).astype(np.uint16), g[..., 0])


def test_read_image_reads_interlaced_16_bit_colour(tmp_path):
    a = image("smooth", 19, 23, 4)
    (tmp_path / "i.png").write_bytes(encode(a, "mixed", interlace=True))
    pic = I.read_image(tmp_path / "i.png", torch.float64)
    assert pic.bits == 16 and pic.alpha is not None
    got = (torch.cat([pic.pixels, pic.alpha]) * 65535).round().long().permute(1, 2, 0).numpy()
    assert np.array_equal(got, a)


def test_bad_16_bit_pngs_are_one_clear_error(tmp_path):
    a = image("random", 17, 33, 3)
    good = encode(a, "paeth")
    crc = bytearray(good)
    crc[45] ^= 0xFF  # inside the first IDAT's data
    cut_idat = good[:33] + chunk(b"IDAT", zlib.compress(b"\4" * 100)) + chunk(b"IEND", b"")
    bad_filter = encode(np.zeros((2, 2, 3), np.uint16))
    body = zlib.compress(bytes([5] + [0] * 12) * 2)
    bad_filter = bad_filter[:33] + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    cases = {
        "crc.png": (bytes(crc), r"corrupt PNG \(bad checksum in chunk b'IDAT'\)"),
        "cut.png": (good[: len(good) // 2], r"truncated PNG \(chunk b'IDAT' is cut short\)"),
        "noend.png": (good[:-12], r"truncated PNG \(the file ends before its IEND chunk\)"),
        "short.png": (cut_idat, r"truncated PNG \(image data ends early\)"),
        "filter.png": (bad_filter, r"corrupt PNG \(unknown row filter 5\)"),
    }
    for name, (blob, message) in cases.items():
        (tmp_path / name).write_bytes(blob)
        for read in (lambda p: P.read_png(p, 10**8), I.read_image):
            with pytest.raises(P.ImageFileError, match=rf"^{tmp_path / name}: {message}$"):
                read(tmp_path / name)


def test_size_is_checked_from_the_header_before_inflating(tmp_path, monkeypatch):
    """A 100 000 × 100 000 header over 100 MB of zeros compressed to ~100 KB: refused before any inflating;
    within the limit, the same stream is inflated only as far as the image needs."""
    z = zlib.compressobj(9)
    bomb = b"".join(z.compress(bytes(2**20)) for _ in range(100)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 16, 2, 0, 0, 0)
    blob = P.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bomb) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(blob)
    inflated = []
    real = P.zlib.decompressobj

    class Counted:  # zlib's decompressor, counting what it hands out
        def __init__(self, *args):
            self.z = real(*args)

        def decompress(self, data, max_length=0):
            out = self.z.decompress(data, max_length)
            inflated.append(len(out))
            return out

    monkeypatch.setattr(P.zlib, "decompressobj", Counted)
    with pytest.raises(
        P.ImageFileError,
        match=r"bomb.png: 100000×100000 pixels is over the limit of 89478485 "
        r"\(refused as a possible decompression bomb\)$",
    ):
        I.read_image(tmp_path / "bomb.png")
    with pytest.raises(P.ImageFileError, match="over the limit of 1000 "):
        P.read_png(tmp_path / "bomb.png", 1000)
    assert inflated == []  # refused from the header alone
    # within the limit, the same stream is inflated only as far as the image needs: 64 × 64 zeros
    ihdr = struct.pack(">IIBBBBB", 64, 64, 16, 2, 0, 0, 1)
    (tmp_path / "long.png").write_bytes(
        P.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bomb) + chunk(b"IEND", b"")
    )
    assert not P.read_png(tmp_path / "long.png", 10**8).any()
    assert 0 < sum(inflated) <= 2 * 64 * 64 * 6  # the image's rows (Adam7: a filter byte per pass row), not 100 MB


@pytest.mark.parametrize("route", ["pillow", "numpy"])
def test_one_megapixel_decodes_exactly(tmp_path, monkeypatch, route):
    """Both routes on a 1 MP image, every filter kind (speed: benchmarks/png16.py)."""
    if route == "numpy":
        monkeypatch.setattr(P, "_unfilter_pil", lambda *args: None)
    a = image("smooth", 1000, 1000, 3)
    for filters in ("paeth", "mixed"):
        (tmp_path / "big.png").write_bytes(encode(a, filters))
        assert np.array_equal(P.read_png(tmp_path / "big.png", 10**8), a)


def test_a_malformed_header_is_one_clear_error(tmp_path):
    """An IHDR of the wrong length (CRC right) is refused by name, not as a raw struct.error."""
    body = struct.pack(">IIBBBB", 4, 4, 8, 2, 0, 0)  # 12 bytes: the interlace byte is missing
    chunk = struct.pack(">I", len(body)) + b"IHDR" + body + struct.pack(">I", zlib.crc32(b"IHDR" + body))
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.raises(P.ImageFileError, match="IHDR chunk is 12 bytes"):
        P.read_png(path, 10**8)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize(
    "channels, dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (2, np.uint16), (3, np.uint16)]
)
def test_banded_encoder_is_one_valid_zlib_stream(tmp_path, monkeypatch, threads, channels, dtype):
    """png_bytes deflates bands of rows on threads and joins them: the stream must inflate with zlib
    alone (header, Adler-32), unfilter to the pixels, and Pillow must read the 8-bit files as written."""
    monkeypatch.setattr(P, "BAND_BYTES", 1000)  # many bands even for a small image
    a = image("random", 67, 45, channels, seed=threads, dtype=dtype)
    a[10:30] = a[10]  # runs of equal rows: Up filter zeros
    png = P.png_bytes(a, 1, threads=threads, icc=b"x" * 40)
    chunks, pos = {}, len(P.PNG_SIGNATURE)
    while pos < len(png):
        (n,), kind = struct.unpack(">I", png[pos : pos + 4]), png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", png[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        chunks.setdefault(kind, []).append(body)
        pos += 12 + n
    assert list(chunks) == [b"IHDR", b"iCCP", b"IDAT", b"IEND"]
    assert zlib.decompress(chunks[b"iCCP"][0].split(b"\0\0", 1)[1]) == b"x" * 40
    raw = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), np.uint8).reshape(67, -1)  # checks the Adler-32
    assert (raw[:, 0] == 2).all()
    rows = np.cumsum(raw[:, 1:].astype(np.int64), axis=0) % 256  # undo Up
    want = np.ascontiguousarray(a, ">u2" if dtype == np.uint16 else np.uint8).view(np.uint8).reshape(67, -1)
    assert (rows == want).all()
    (tmp_path / "b.png").write_bytes(png)
    decoded = P.read_png(tmp_path / "b.png", 10**8) if dtype == np.uint16 else np.asarray(Image.open(io.BytesIO(png)))
    assert (decoded.reshape(a.shape) == a).all()
