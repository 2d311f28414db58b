"""The engine of `affsr upscale` (affsr_cli/infer.py, consistency.py, batch.py, images.py) on tiny images
with tiny checkpoints of random weights: Π makes even those consistent, so consistency is testable."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import boxfit, consistency, device, infer, methods, tiles
from affsr_cli import images as X
from affsr_cli import outputs as O
from affsr_cli.projection import OperatorSpec, project
from helpers import VAL


def model(channels=3, noise=0, grid="lr", seed=0):
    torch.manual_seed(seed)
    m = methods.build_generator("texture", OperatorSpec(), "aff", channels=channels, noise_channels=noise, grid=grid)
    for bn in (b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2)
    return m.eval()


def photo(name="chelsea", box=(100, 60, 148, 100), halve=False) -> torch.Tensor:
    """A crop of a bundled photo as an LR input x (3, h, w); halve: bicubic 2× reduction first, as
    most LR photos are made."""
    im = Image.open(VAL / f"{name}.png").convert("RGB")
    if halve:
        im = im.resize((im.width // 2, im.height // 2), Image.BICUBIC)
    return torch.from_numpy(np.array(im.crop(box))).permute(2, 0, 1).float() / 255


def lr_psnr_of(levels: np.ndarray, x: torch.Tensor, A, L: int) -> float:
    return consistency.lr_psnr(levels, x, A, L)[0]


@pytest.mark.parametrize(
    "n, tile, overlap, align", [(50, 16, 8, 4), (161, 100, 50, 8), (100, 32, 20, 7), (30, 32, 4, 8)]
)
def test_aligned_tiles(n, tile, overlap, align):
    """tile_spans(align=a): every start a multiple of a, the image covered, overlaps within a − 1 of the asked."""
    spans = tiles.tile_spans(n, tile, overlap, align)
    assert spans[0][0] == 0 and spans[-1][1] == n and all(a % align == 0 for a, _ in spans)
    assert all(b - a <= tile + align - 1 for a, b in spans)
    for (_, b0), (a1, _) in zip(spans, spans[1:]):
        assert b0 - a1 >= min(overlap, tile // 2) - (align - 1) and a1 > 0


def test_tiles_are_the_fewest_and_shortest():
    """Over a grid of sides, tile sizes, overlaps and alignments: the fewest tiles the overlap allows
    (fewer when aligned starts coincide),
    each no longer than needed (total length within k·align of n + (k − 1)·overlap), the side covered
    and every overlap kept (within align − 1 when the tile size leaves no room)."""
    for n in range(9, 140, 7):
        for tile in (8, 13, 32, 64, 100):
            for overlap in (0, 3, 12, 38):
                for align in (1, 4, 8):
                    spans = tiles.tile_spans(n, tile, overlap, align)
                    ov = min(overlap, tile // 2)
                    k = 1 if n <= tile else math.ceil((n - ov) / (tile - ov))
                    assert (
                        (len(spans) == k or align > 1 and len(spans) < k) and spans[0][0] == 0 and spans[-1][1] == n
                    ), (n, tile, overlap, align, spans)
                    assert all(a % align == 0 and b - a <= tile + align - 1 for a, b in spans)
                    if len(spans) > 1:
                        assert all(b - a <= tile for a, b in spans[:-1])
                        assert sum(b - a for a, b in spans) <= n + (k - 1) * ov + k * (align + 1) + align
                    for (_, b0), (a1, _) in zip(spans, spans[1:]):
                        assert b0 - a1 >= ov - (align - 1) and a1 > 0, (n, tile, overlap, align, spans)
                        if b0 - a1 < ov:  # only where the tile size itself is the limit
                            assert spans[0][1] - spans[0][0] == tile


@pytest.fixture(scope="module")
def up():
    return infer.Upscaler(model(), "cpu", keep_grid=True)  # f as drawn: the grid's removal is test_grid.py's


@pytest.mark.parametrize("n, tile, overlap, margin", [(50, 16, 8, 3), (100, 32, 20, 6), (33, 32, 4, 6), (17, 8, 6, 2)])
def test_tiles_cover_and_weights_sum_to_one(n, tile, overlap, margin):
    """(Aligned spans, for window-attention networks, are checked in test_aligned_tiles.)"""
    spans = tiles.tile_spans(n, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n and all(b - a <= tile for a, b in spans)
    for (_, b0), (a1, _) in zip(spans, spans[1:]):
        assert b0 - a1 >= min(overlap, tile // 2)
    s = 4
    total = torch.zeros(s * n)
    for (a, b), w in zip(spans, tiles.blend_weights(spans, s, margin)):
        total[s * a : s * b] += w
        assert w.min() >= 0 and (w[1:] - w[:-1]).abs().max() <= 0.5  # a ramp, no jump
        if margin and len(spans) > 1:  # a tile's last `margin` LR pixels carry no weight when the overlap allows
            inner = [(a1 - a) for (a1, _) in spans if a < a1 < b]
            if inner and b - inner[0] - a >= 2 * margin + 2 and b < n:
                assert w[-s * margin :].max() == 0
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


@pytest.mark.parametrize("grid, noise", [("lr", 0), ("lr", 2), ("hr", 0)])
def test_tiled_equals_untiled(grid, noise):
    m = model(noise=noise, grid=grid)
    x = photo(box=(90, 60, 150, 100))  # LR 60×40
    whole = infer.Upscaler(m, "cpu", tile=64).network(x, seed=3)
    seen = []
    tiled = infer.Upscaler(m, "cpu", tile=32)  # 3×2 tiles overlapping by ≥ 2R + 2 LR pixels
    f = tiled.network(x, seed=3, on_tile=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == 6  # really tiled
    radius = 6 if grid == "lr" else 2  # texture preset: 6 convolutions of 3×3 (HR grid: 6 HR pixels, 2 LR pixels)
    assert tiled.radius == radius and tiled.overlap == 2 * radius + 8
    assert (f - whole).abs().max() <= 1e-5  # tolerance: float rounding only (overlap ≥ 2R + 2)
    if grid == "hr":
        return
    # with a too small overlap the seams are blended, not exact, but stay close
    rough = infer.Upscaler(m, "cpu", tile=32, overlap=4).network(x, seed=3)
    assert 1e-5 < (rough - whole).abs().max() < 0.5


def test_tile_0_is_the_whole_image_at_once():
    """--tile 0 (Real-ESRGAN's 'no tile'): one tile whatever the size; out of memory falls back to halves."""
    m = model()
    x = photo(box=(90, 60, 150, 100))  # LR 60×40
    seen = []
    whole = infer.Upscaler(m, "cpu", tile=0)
    assert whole.tile == 0
    f = whole.network(x, on_tile=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]
    assert (f - infer.Upscaler(m, "cpu", tile=32).network(x)).abs().max() <= 1e-5
    for bad in (4, -1, 7.5, True):
        with pytest.raises(ValueError, match="0 \\(no tiling"):
            infer.Upscaler(m, "cpu", tile=bad)
    notes = []
    up = infer.Upscaler(m, "cpu", tile=0, on_note=notes.append)
    net = up.net

    class Greedy(torch.nn.Module):  # runs out of memory on inputs over 40 pixels a side
        def forward(self, inp, z=None):
            if max(inp.shape[-2:]) > 40:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return net(inp, z)

    up.net = Greedy()
    assert (up.network(x) - f).abs().max() <= 1e-5
    assert up.tile == 30 and "out of memory with the whole image at once; retrying with tiles of 30" in notes


def test_out_of_memory_in_a_tile_retries_with_smaller_tiles():
    m = model()
    x = photo(box=(90, 60, 150, 100))  # LR 60×40
    reference = infer.Upscaler(m, "cpu", tile=64).network(x)
    notes = []
    up = infer.Upscaler(m, "cpu", tile=64, on_note=notes.append)
    net = up.net

    class Greedy(torch.nn.Module):  # runs out of memory on tiles over 40 pixels
        def forward(self, inp, z=None):
            if max(inp.shape[-2:]) > 40:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return net(inp, z)

    up.net = Greedy()
    f = up.network(x)
    assert up.tile == 32 and any("out of memory" in n for n in notes)
    assert (f - reference).abs().max() <= 1e-5  # 32-pixel tiles still hold the 2R + 2 overlap: same result
    up.net = lambda inp, z=None: (_ for _ in ()).throw(RuntimeError("some other failure"))
    with pytest.raises(RuntimeError, match="other failure"):
        up.network(x)


def test_batchnorm_folding_keeps_the_network():
    m = model()
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        assert (tiles.fuse_batchnorm(m.net)(x) - m.net(x)).abs().max() <= 1e-5
    assert not any(isinstance(b, torch.nn.BatchNorm2d) for b in tiles.fuse_batchnorm(m.net).modules())


@pytest.mark.parametrize("bits, target", [(8, 60), (16, 80)])
def test_saved_levels_are_consistent(up, bits, target):
    """A natural LR photo (bicubic 2× reduction): Π alone leaves [0, 1]; clipping and rounding then
    cost ~40 dB, which the box fit and the shaped rounding win back."""
    L = 2**bits - 1
    x = (photo("hubble", box=(60, 10, 108, 50), halve=True) * L).round() / L
    f = up.network(x)
    naive = project(f, x, up.A, up.pinv).clamp(0, 1).mul(L).round().permute(1, 2, 0).numpy()
    y = f.clone()
    iterations = boxfit.fit_box(y, x, up.A, up.pinv, bits)
    levels = boxfit.round_shaped(y, bits)
    assert levels.dtype == (np.uint16 if bits == 16 else np.uint8) and levels.shape == (4 * 40, 4 * 48, 3)
    assert iterations > 0
    assert lr_psnr_of(naive, x, up.A, L) < target - 10
    assert lr_psnr_of(levels, x, up.A, L) >= target
    assert np.abs(levels / L - y.permute(1, 2, 0).numpy()).max() <= 1.0 / L + 1e-6  # within one level of ŷ


def test_shaped_rounding_beats_plain_rounding(up):
    """Rounding alone (y in range, Ay = x exactly): error feedback down the columns gains ≥ 4 dB (~8)."""
    y = 0.1 + 0.8 * torch.nn.functional.interpolate(
        torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(0)),
        size=(192, 160),
        mode="bicubic",
        align_corners=False,
    )[0].clamp(0, 1)
    x = up.A(y)
    plain = (y * 255).round().permute(1, 2, 0).numpy()
    shaped = boxfit.round_shaped(y, 8)
    assert np.abs(shaped / 255 - y.permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    assert lr_psnr_of(shaped, x, up.A, 255) >= lr_psnr_of(plain, x, up.A, 255) + 4


def test_shaped_rounding_is_the_row_by_row_error_feedback():
    """round_shaped (NumPy, in place) against the rule written out in torch: each row rounded half to
    even after adding the clipped error of the row above; 8 and 16 bits, values off the range and at
    half levels included, every level equal."""
    g = torch.Generator().manual_seed(3)
    for bits, shape in ((8, (3, 37, 29)), (16, (1, 20, 33))):
        L = 2**bits - 1
        y = torch.rand(shape, generator=g) * 1.04 - 0.02
        y[0, 0, :4] = torch.tensor([0.5, 1.5, 2.5, L - 0.5]) / L
        want, err = torch.empty(shape[1], shape[2], shape[0]), torch.zeros(shape[0], shape[2])
        for i in range(shape[1]):
            v = y[:, i] * L + err
            level = v.round().clamp(0, L)
            want[i] = level.T
            err = (v - level).clamp(-1, 1)
        got = boxfit.round_shaped(y, bits)
        assert got.dtype == (np.uint8 if bits == 8 else np.uint16)
        assert np.array_equal(got, want.numpy().astype(got.dtype))


def test_busy_elsewhere_counts_other_processes_and_not_this_one():
    """device.busy_elsewhere: this process spinning adds nothing (its own CPU time is taken off); a
    child process spinning on a free core while this one sleeps adds about one core. Linux, where
    /proc/stat covers exactly the cores this process may use; elsewhere the box fit keeps to one thread."""
    import subprocess
    import sys
    import time

    if device.cpu_mark() is None:
        pytest.skip("no /proc/stat for this process's cores here")

    def measure(work) -> float:
        mark = device.cpu_mark()
        work()
        return device.busy_elsewhere(mark)

    def spin():
        end = time.perf_counter() + 0.6
        while time.perf_counter() < end:
            pass

    assert device.busy_elsewhere(device.cpu_mark()) is None  # too short a window to tell
    before = measure(lambda: time.sleep(0.6))
    assert measure(spin) < before + 0.5
    if before > len(os.sched_getaffinity(0)) - 0.9:  # one core busy elsewhere (an xdist worker) still leaves one
        pytest.skip(f"other jobs keep {before:.1f} cores busy: no free core for the child")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.3)  # the child has started
        assert measure(lambda: time.sleep(0.6)) > before + 0.6
    finally:
        child.kill()
        child.wait()


def test_float_output_is_exact(up):
    x = photo()
    y = up.network(x)
    assert boxfit.fit_box(y, x, up.A, up.pinv, None) == 0
    assert (up.A(y) - x).abs().max() <= 1e-5


def test_channels_adapt_and_stay_consistent():
    rgb, gray = photo(box=(100, 60, 124, 80)), photo(box=(100, 60, 124, 80)).mean(0, keepdim=True)
    for m, x in ((model(channels=1), rgb), (model(channels=3), gray)):
        up = infer.Upscaler(m, "cpu")
        y = up.network(x)
        assert y.shape == (x.shape[0], 4 * x.shape[1], 4 * x.shape[2])
        boxfit.fit_box(y, x, up.A, up.pinv, None)
        assert (up.A(y) - x).abs().max() <= 1e-5


def test_same_seed_same_sample():
    up = infer.Upscaler(model(noise=2), "cpu")
    x = photo(box=(100, 60, 124, 80))
    a, b, c = up.network(x, seed=7), up.network(x, seed=7), up.network(x, seed=8)
    assert torch.equal(a, b) and (a - c).abs().max() > 1e-3


def test_devices_and_precisions():
    assert device.pick_device("cpu").type == "cpu"
    assert device.pick_dtype("bf16", torch.device("cpu")) == (
        torch.float32,
        device.pick_dtype("bf16", torch.device("cpu"))[1],
    )
    assert "fp32" in device.pick_dtype("fp16", torch.device("cpu"))[1]
    with pytest.raises(ValueError, match="precision"):
        device.pick_dtype("fp64", torch.device("cpu"))
    with pytest.raises(ValueError, match="device"):
        device.pick_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ValueError, match="CUDA is not available"):
                device.pick_device(name)
    notes = []
    infer.Upscaler(model(), "cpu", "bf16", on_note=notes.append)
    assert any("fp32" in n for n in notes)
    auto = infer.Upscaler(model(), "cpu")
    assert 32 <= auto.tile <= infer.MAX_TILE


def test_auto_tile_is_measured_only_for_an_image_that_may_not_fit(monkeypatch):
    """A small image runs whole without the peak measurement; one over the cheap bound gets measured tiles,
    and the result equals the untiled one."""
    x = photo(box=(90, 60, 150, 100))  # LR 60×40
    whole = infer.Upscaler(model(), "cpu", tile=0).network(x)
    up = infer.Upscaler(model(), "cpu")
    measured = []
    monkeypatch.setattr(up, "_auto_tile", lambda: measured.append(1) or 32)
    assert (up.network(x) - whole).abs().max() <= 1e-5
    assert up._tile is None and not measured and "none needed" in up.describe_tiling()
    monkeypatch.setattr(up, "_budget", lambda: int(up._upper_bound * 40 * 40))  # 60×40 no longer fits
    assert (up.network(x) - whole).abs().max() <= 1e-5  # 32-pixel tiles hold the 2R + 2 overlap
    assert measured == [1] and up.tile == 32 and up.describe_tiling() == "tiles of 32 LR px (sized to the memory)"
    monkeypatch.undo()  # the memory free again: after the measured one, an image that fits runs whole
    assert up._tile_for(40, 60) == 60 and up._tile_for(20, 1000) == 1000 and up._tile_for(40, 60_000) == 32
    assert infer.Upscaler(model(), "cpu", tile=64).describe_tiling() == "tiles of 64 LR px"  # the user's, as given


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_float_tiff_and_npy_round_trip(tmp_path, channels):
    tifffile = pytest.importorskip("tifffile")
    a = np.random.default_rng(channels).random((5, 7, channels), dtype=np.float32) * 1.2 - 0.1
    icc = b"\0" * 16 + b"RGB " + b"\1" * 100
    for suffix in (".tif", ".npy"):
        path = X.write_image(tmp_path / f"a{suffix}", a, icc=icc if channels >= 3 else None)
        back = tifffile.imread(path) if suffix == ".tif" else np.load(path)
        assert np.array_equal(back.reshape(a.shape), a) and np.array_equal(X.read_stored(path), a)
        with pytest.raises(FileExistsError):
            X.write_image(path, a)
    with tifffile.TiffFile(tmp_path / "a.tif") as t:
        assert (34675 in t.pages[0].tags) == (channels >= 3)


def test_png_carries_the_icc_profile(tmp_path):
    icc = b"\0" * 16 + b"RGB " + bytes(range(200))
    a = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    for name in ("a.png", "a.tif", "a.webp"):
        path = X.write_image(tmp_path / name, a, icc=icc)
        with Image.open(path) as im:
            assert im.info.get("icc_profile") == icc
        assert np.array_equal(X.read_stored(path)[..., :3], a)
    assert X.icc_fits(icc, 3) and not X.icc_fits(icc, 1) and not X.icc_fits(b"\0" * 16 + b"CMYK" + b"\0" * 8, 3)


def test_collect_and_plan(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for rel in ("a.png", "sub/b.jpg", "sub/notes.txt", ".hidden/c.png"):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(b"x")
    (tmp_path / "in" / "fake.png").mkdir()  # a folder named like an image is not an input
    (tmp_path / "empty").mkdir()
    found, problems = O.collect(
        [
            str(tmp_path / "in"),
            str(tmp_path / "in" / "sub" / "*.jpg"),
            str(tmp_path / "empty"),
            str(tmp_path / "missing.png"),
        ]
    )
    assert [str(r) for _, r in found] == ["a.png", "sub/b.jpg"]  # sub/b.jpg once, though the glob names it too
    assert [p for _, p in problems] == [
        f"{tmp_path / 'empty'}: a folder with no image files ({', '.join(O.SUFFIXES)})",
        f"{tmp_path / 'missing.png'}: no such file or folder",
    ]
    jobs = O.plan(found[:2], O.Options(output=tmp_path / "out"), 4)
    assert [j.dst for j in jobs] == [
        tmp_path / "out" / "a.png",
        tmp_path / "out" / "sub" / "b.png",
    ]  # names final at planning
    jobs = O.plan(found[:2], O.Options(), 4)
    assert jobs[1].dst == tmp_path / "in" / "sub" / "b_x4.png"
    (tmp_path / "two").mkdir()
    for name in ("x.png", "x.tif"):
        (tmp_path / "two" / name).write_bytes(b"x")
    two, _ = O.collect([str(tmp_path / "two")])
    assert not any(j.problem for j in O.plan(two, O.Options(), 4))  # x_x4.png and x_x4.tif: no collision
    jobs = O.plan(two, O.Options(output=tmp_path / "out", ext=".png"), 4)
    assert jobs[1].problem and "also that of" in jobs[1].problem  # both would be out/x.png
    jobs = O.plan(found[:1], O.Options(suffix=""), 4)
    assert "is an input of this batch" in jobs[0].problem  # in/a.png -> in/a.png
    with pytest.raises(ValueError, match="names one file"):
        O.plan(found, O.Options(output=tmp_path / "one.png"), 4)
    jobs = O.plan(found[:2], O.Options(output=tmp_path / "out.v2"), 4)  # several inputs: a dotted name is a folder
    assert [j.dst for j in jobs] == [tmp_path / "out.v2" / "a.png", tmp_path / "out.v2" / "sub" / "b.png"]
    with pytest.raises(ValueError, match="unknown output type '.pgn'"):  # one input: a file of an unknown type
        O.plan(found[:1], O.Options(output=tmp_path / "a.pgn"), 4)
    (tmp_path / "made.d").mkdir()  # one input into a dotted folder that exists
    assert O.plan(found[:1], O.Options(output=tmp_path / "made.d"), 4)[0].dst == tmp_path / "made.d" / "a.png"
    assert O.default_ext(Path("a.jpg"), 8) == ".png" and O.default_ext(Path("a.webp"), 8) == ".webp"
    assert O.default_ext(Path("a.tif"), 16) == ".png" and O.default_ext(Path("a.tif"), 32) == ".tif"


def test_plan_knows_its_own_outputs_from_an_earlier_run(tmp_path):
    """A file bearing another input's output name is that output from an earlier run when it has that
    output's size (× scale, or × --outscale; EXIF orientation as read_image applies it): no input then.
    Of another size it is the user's own file, kept as an input (its namesake's job is refused)."""
    Image.new("RGB", (6, 5)).save(tmp_path / "a.png")
    Image.new("RGB", (24, 20)).save(tmp_path / "a_x4.png")  # ours
    Image.new("RGB", (6, 5)).save(tmp_path / "b.png")
    Image.new("RGB", (6, 5)).save(tmp_path / "b_x4.png")  # the user's: not 4× b.png
    Image.new("RGB", (6, 5)).save(tmp_path / "c.png")
    Image.new("RGB", (12, 10)).save(tmp_path / "c_x2.png")  # ours under --outscale 2
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 6×5, seen 5×6
    Image.new("RGB", (6, 5)).save(tmp_path / "r.jpg", exif=exif.tobytes())
    Image.new("RGB", (20, 24)).save(tmp_path / "r_x4.png")
    found, _ = O.collect([str(tmp_path)])
    jobs = {j.src.name: j for j in O.plan(found, O.Options(), 4)}
    assert jobs["a_x4.png"].output_of == tmp_path / "a.png" and jobs["a.png"].problem is None
    assert jobs["r_x4.png"].output_of == tmp_path / "r.jpg" and jobs["r.jpg"].problem is None
    assert jobs["b_x4.png"].output_of is None and jobs["b_x4.png"].skip
    assert "is an input of this batch and is kept" in jobs["b.png"].problem
    assert jobs["c_x2.png"].output_of is None  # at 4× it is nobody's output
    jobs = {j.src.name: j for j in O.plan(found, O.Options(outscale=2), 4)}
    assert jobs["c_x2.png"].output_of == tmp_path / "c.png" and jobs["a_x4.png"].output_of is None


def test_lr_psnr_reads_what_was_saved(up, tmp_path):
    x = photo(box=(100, 60, 124, 80))
    y = up.network(x)
    boxfit.fit_box(y, x, up.A, up.pinv, 8)
    levels = boxfit.round_shaped(y, 8)
    path = X.write_image(tmp_path / "y.png", levels)
    psnr, mse = consistency.lr_psnr(X.read_stored(path), x, up.A, 255)
    assert psnr >= 60 and math.isclose(psnr, lr_psnr_of(levels, x, up.A, 255))
    levels[::2, ::2] ^= 0x10  # a damaged file scores far lower
    assert lr_psnr_of(levels, x, up.A, 255) < psnr - 20


def test_ensemble_is_the_mean_over_flips_and_transposes():
    """--ensemble: f(x) averaged over the 8 flips and transposes, each mapped back (a non-square x, so
    a transposed output put back the wrong way would not even fit), tiled as well; Π after it keeps
    the output consistent."""
    m = model()
    x = photo(box=(90, 60, 134, 90))  # LR 44×30
    plain = infer.Upscaler(m, "cpu", keep_grid=True)  # f itself (the grid's removal: test_grid.py)
    by_hand = []
    for k in range(4):  # the rotations of x and of its transpose
        for t in (x, x.transpose(1, 2)):
            f = plain.network(torch.rot90(t, k, (1, 2)).contiguous())
            f = torch.rot90(f, -k, (1, 2))
            by_hand.append(f.transpose(1, 2) if t is not x else f)
    expected = torch.stack(by_hand).mean(0)
    seen = []
    for tile in (64, 32):
        up = infer.Upscaler(m, "cpu", tile=tile, ensemble=True, keep_grid=True)
        f = up.network(x, on_tile=lambda done, total: seen.append((done, total)))
        assert f.shape == (3, 4 * 30, 4 * 44) and (f - expected).abs().max() <= 1e-5
    assert seen[-1][0] == seen[-1][1] == 8 * 2  # 32-pixel tiles: 2 per transform (44×30 or 30×44), counted across the 8
    assert (f - plain.network(x)).abs().max() > 1e-3  # a random network is not equivariant: the mean differs
    y = up(x, bits=None).y_hat
    assert (up.A(y) - x).abs().max() <= 1e-5
