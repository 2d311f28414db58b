"""`import affsr_cli as affsr; affsr.upscale(image)`: the same pixels as `affsr upscale`, the caller's type
back, the promise kept (Pillow's resize of an 8-bit result, A ŷ = x for floats), one clear ValueError
for bad input; hf:// weights from a local cache, and a fast one-line failure without a network."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import affsr_cli as affsr
from affsr_cli import api, checkpoint, methods
from affsr_cli.projection import OperatorSpec
from affsr_cli.registry import DEFAULT

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
pytestmark = pytest.mark.skipif(not DEFAULT.path.is_file(), reason="the shipped weights are not in this tree")


def chelsea(box=(130, 60, 178, 100)) -> Image.Image:
    """A 48×40 crop of the bundled photo (examples/val/chelsea.png is itself 4× smaller than the original)."""
    return Image.open(ROOT / "examples" / "val" / "chelsea.png").convert("RGB").crop(box)


@pytest.fixture(scope="module")
def up():
    """The shipped default, once for the module (api.load caches it for affsr.upscale too), on one thread as
    the CLI runs below (OMP_NUM_THREADS=1): oneDNN's convolutions sum in another order on more threads, which
    can move a value across a rounding boundary, so "the same pixels" holds at the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield affsr.load(device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory):
    """`affsr upscale` on RGB, RGBA, gray and 16-bit gray PNG files of the same crop: one run, its files read back."""
    d = tmp_path_factory.mktemp("cli")
    (d / "in").mkdir()
    rgb = chelsea()
    rgb.save(d / "in" / "rgb.png")
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    rgba.save(d / "in" / "rgba.png")
    rgb.convert("L").save(d / "in" / "gray.png")
    Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257 + 3)).save(d / "in" / "gray16.png")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "upscale",
            str(d / "in"),
            "-o",
            str(d / "out"),
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert r.returncode == 0, r.stderr
    assert all(row["consistent"] for row in json.loads(r.stdout)), r.stdout
    return {p.stem: (Image.open(d / "in" / p.name), Image.open(p)) for p in (d / "out").glob("*.png")}


@pytest.mark.parametrize("name", ["rgb", "rgba", "gray", "gray16"])
def test_the_same_pixels_as_the_cli(up, cli_outputs, name):
    small, cli = cli_outputs[name]
    small.load()
    out = affsr.upscale(small, device="cpu")
    assert out.mode == small.mode == cli.mode and out.size == (4 * small.width, 4 * small.height)
    assert np.array_equal(np.asarray(out), np.asarray(cli))
    # a NumPy array of the same levels: the same numbers
    a = np.asarray(small)
    assert np.array_equal(affsr.upscale(a, device="cpu"), np.asarray(cli))


def test_pillow_resize_gives_the_input_back(up):
    small = chelsea()
    big = affsr.upscale(small, device="cpu")
    back = big.resize(small.size, Image.BICUBIC)
    assert np.array_equal(np.asarray(back), np.asarray(small))
    # the check can fail: a result one level off somewhere is no longer given back exactly
    worse = np.asarray(big).copy()
    worse[20:24, 20:24] ^= 8
    assert not np.array_equal(np.asarray(Image.fromarray(worse).resize(small.size, Image.BICUBIC)), np.asarray(small))


def test_float_input_gets_exact_float_output(up):
    x = np.asarray(chelsea().crop((0, 0, 24, 20)), np.float64) / 255
    y = affsr.upscale(x, device="cpu")
    assert y.dtype == np.float64 and y.shape == (80, 96, 3)
    ay = up.A(torch.from_numpy(y).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(ay - x).max() < 1e-5
    assert np.abs(y - np.kron(x, np.ones((4, 4, 1)))).max() > 0.05  # not the nearest-neighbour copy: it did upscale
    t = torch.from_numpy(x).permute(2, 0, 1).float()  # a tensor: the same values
    assert torch.equal(affsr.upscale(t, device="cpu"), torch.from_numpy(y).permute(2, 0, 1).float())


def gray(h=10, w=12, seed=0) -> np.ndarray:
    """Smooth levels (an image that an in-range result can reach exactly)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.asarray(chelsea().convert("L").crop((0, 0, w, h)), np.float64) + rng.normal(0, 1, (h, w)), 0, 255)


CASES = {
    "numpy uint8 HxW": lambda: gray().astype(np.uint8),
    "numpy uint8 HxWx1": lambda: gray().astype(np.uint8)[..., None],
    "numpy uint8 HxWx3": lambda: np.asarray(chelsea().crop((0, 0, 12, 10))),
    "numpy uint8 HxWx4": lambda: np.asarray(chelsea().crop((0, 0, 12, 10)).convert("RGBA")),
    "numpy uint16 HxWx3": lambda: np.asarray(chelsea().crop((0, 0, 12, 10)), np.uint16) * 257,
    "numpy float32 HxW": lambda: (gray() / 255).astype(np.float32),
    "numpy float16 HxWx3": lambda: (np.asarray(chelsea().crop((0, 0, 12, 10))) / 255).astype(np.float16),
    "torch float32 CxHxW": lambda: (
        torch.from_numpy(np.asarray(chelsea().crop((0, 0, 12, 10))) / 255).permute(2, 0, 1).float()
    ),
    "torch float64 BxCxHxW": lambda: torch.from_numpy(np.stack([gray(seed=0), gray(seed=1)])[:, None] / 255),
    "torch bfloat16 CxHxW": lambda: torch.from_numpy(gray()[None] / 255).to(torch.bfloat16),
    "torch uint8 CxHxW": lambda: (
        torch.from_numpy(np.array(chelsea().crop((0, 0, 12, 10)))).permute(2, 0, 1).contiguous()
    ),
    "PIL L": lambda: Image.fromarray(gray().astype(np.uint8)),
    "PIL LA": lambda: Image.fromarray(np.stack([gray().astype(np.uint8)] * 2, -1)),
    "PIL RGBA": lambda: chelsea().crop((0, 0, 12, 10)).convert("RGBA"),
    "PIL I;16": lambda: Image.fromarray(gray().astype(np.uint16) * 257),
    "PIL I": lambda: Image.fromarray(gray().astype(np.int32) * 257),
    "PIL F": lambda: Image.fromarray((gray() / 255).astype(np.float32)),
}


@pytest.mark.parametrize("case", CASES)
def test_each_type_comes_back_as_it_went_in(up, case):
    image = CASES[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", api.InexactWarning)  # smooth inputs: every result is exact
        out = affsr.upscale(image, device="cpu")
    assert type(out) is type(image)
    if isinstance(image, Image.Image):
        assert out.mode == image.mode and out.size == (4 * image.width, 4 * image.height)
    else:
        assert out.dtype == image.dtype
        h, w = (-2, -1) if isinstance(image, torch.Tensor) else (0, 1)
        want = list(image.shape)
        want[h], want[w] = 4 * want[h], 4 * want[w]
        assert list(out.shape) == want
        if isinstance(image, torch.Tensor):
            assert out.device == image.device
    # every kind downsamples to its input: box means of 4×4 blocks are within a few % of the bicubic A's
    y, x = unit(out), unit(image)
    blocks = y.reshape(y.shape[0] // 4, 4, y.shape[1] // 4, 4, *y.shape[2:]).mean((1, 3))
    assert np.abs(blocks - x).mean() < 0.03, case


def unit(image) -> np.ndarray:
    """Values in [0, 1] as float64, height and width first, of any kind the API takes."""
    if isinstance(image, Image.Image):
        a = np.asarray(image).astype(np.float64)
        return a / (65535 if image.mode.startswith("I") else 1 if image.mode == "F" else 255)
    if isinstance(image, torch.Tensor):
        a = np.moveaxis(image.double().numpy(), (-2, -1), (0, 1))
        return a / 255 if image.dtype == torch.uint8 else a
    return image.astype(np.float64) / {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(image.dtype, 1)


def test_alpha_is_kept_and_consistent(up):
    rgba = chelsea().crop((0, 0, 24, 20)).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    out = affsr.upscale(rgba, device="cpu")
    assert out.mode == "RGBA"
    # each plane on its own (Pillow resizes RGBA premultiplied, which mixes alpha into the colour)
    for planes, want in ((out.convert("RGB"), rgba.convert("RGB")), (out.getchannel("A"), alpha)):
        assert np.array_equal(np.asarray(planes.resize(rgba.size, Image.BICUBIC)), np.asarray(want))


def test_palette_and_cmyk_are_converted_to_rgb(up):
    small = chelsea().crop((0, 0, 12, 10))
    assert affsr.upscale(small.convert("P"), device="cpu").mode == "RGB"
    assert affsr.upscale(small.convert("CMYK"), device="cpu").mode == "RGB"
    transparent = small.convert("P")
    transparent.info["transparency"] = 0
    assert affsr.upscale(transparent, device="cpu").mode == "RGBA"


def test_weights_are_loaded_once(up):
    api._load.cache_clear()
    first = affsr.load(device="cpu")
    x = np.asarray(chelsea().crop((0, 0, 8, 8)))
    affsr.upscale(x, device="cpu")
    affsr.upscale(x, device="cpu", weights=DEFAULT.name)  # the default by name: the same file, the same object
    info = api._load.cache_info()
    assert info.misses == 1 and info.hits == 2 and affsr.load(device="cpu") is first
    assert affsr.Upscaler is type(first)


def test_options_reach_the_upscaler(up):
    x = np.asarray(chelsea().crop((0, 0, 40, 24)))
    with pytest.warns(UserWarning, match="trained for another degradation"):
        area = affsr.load(device="cpu", operator="area")
    assert area.spec == OperatorSpec(4, family="area") and area is not up
    y = affsr.upscale(x, device="cpu", operator="area")
    box = y.astype(np.float64).reshape(24, 4, 40, 4, 3).mean((1, 3))
    assert np.abs(box - x).max() <= 0.5 + 1e-9  # A = 4×4 box means: exact within rounding
    wide = (
        np.asarray(chelsea((100, 60, 200, 100)), np.float32) / 255
    )  # 100 LR px: two tiles of 64 (overlap 2R + 8 = 50)
    tiled = affsr.upscale(wide, device="cpu", tile=64)
    assert affsr.load(device="cpu", tile=64).tile == 64 and affsr.load(device="cpu").tile > 100
    assert np.abs(tiled - affsr.upscale(wide, device="cpu")).max() < 1e-4  # tiles do not change the result


def test_a_stochastic_checkpoint_follows_the_seed(tmp_path):
    torch.manual_seed(0)
    path = checkpoint.save_generator(
        tmp_path / "noisy.safetensors",
        methods.build_generator("texture", OperatorSpec(), "aff", noise_channels=2).eval(),
    )
    x = (gray() / 255).astype(np.float32)
    a, b = (affsr.upscale(x, weights=path, device="cpu", seed=s) for s in (1, 2))
    assert not np.array_equal(a, b) and np.array_equal(a, affsr.upscale(x, weights=path, device="cpu", seed=1))


BAD = [
    ("a path", lambda: "photo.png", "PIL.Image.open"),
    ("a list", lambda: [[0.5]], "got list"),
    ("4-D array", lambda: np.zeros((1, 4, 4, 3), np.uint8), "4 dimensions"),
    ("channels first", lambda: np.zeros((3, 8, 8), np.uint8), "transpose"),
    ("5 channels", lambda: torch.zeros(5, 8, 8), "C = 1"),
    ("channels last tensor", lambda: torch.zeros(8, 8, 3), "permute"),
    ("1-D tensor", lambda: torch.zeros(8), "1 dimensions"),
    ("empty batch", lambda: torch.zeros(0, 3, 8, 8), "no images"),
    ("no pixels", lambda: np.zeros((0, 8, 3), np.uint8), "no pixels"),
    ("float over 1", lambda: np.full((8, 8), 255.0), "floats must lie in"),
    ("negative float", lambda: torch.full((1, 8, 8), -0.5), "from -0.5"),
    ("NaN", lambda: np.full((8, 8), np.nan, np.float32), "NaN"),
    ("int64", lambda: np.zeros((8, 8), np.int64), "dtype int64"),
    ("bool tensor", lambda: torch.zeros(1, 8, 8, dtype=torch.bool), "dtype bool"),
    ("PIL I out of range", lambda: Image.fromarray(np.full((8, 8), 70000, np.int32)), "0…65535"),
    ("PIL I;16 ok, F over 1", lambda: Image.fromarray(np.full((8, 8), 2.0, np.float32)), "floats must lie in"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_value_error(case):
    _, make, words = case
    with pytest.raises(ValueError) as e:
        affsr.upscale(make(), device="cpu")
    message = str(e.value)
    assert words in message and "\n" not in message and len(message) < 300, message


def test_bad_options_are_value_errors():
    x = np.zeros((8, 8), np.uint8)
    for kwargs, words in [
        ({"weights": "no-such-weights"}, "no shipped weights named"),
        ({"operator": "cubic"}, "operator"),
        ({"device": "tpu"}, "device"),
        ({"tile": 4}, "tile"),
        ({"tile": "auto"}, "tile"),
        ({"seed": -1}, "seed"),
        ({"operator": 4}, "OperatorSpec"),
    ]:
        with pytest.raises(ValueError, match=words):
            affsr.upscale(x, **{"device": "cpu", **kwargs})


def test_import_stays_light_and_the_engine_module_stays_usable():
    code = textwrap.dedent("""
        import sys, inspect
        import affsr_cli as affsr
        assert "torch" not in sys.modules, "import affsr_cli imported torch"
        from affsr_cli import batch as engine  # the engine of `affsr upscale`, as the CLI and scripts import it
        assert engine.Options and engine.run and callable(affsr.upscale) and affsr.upscale is affsr.api.upscale
        assert list(inspect.signature(affsr.upscale).parameters)[:2] == ["image", "weights"]
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_hub_weights_from_the_cache_and_a_fast_line_without_a_network(tmp_path):
    """hf:// from a Hugging Face cache made here; a file not in it, behind a proxy that refuses, fails within
    seconds in one line (huggingface_hub retried for ~26 s); nothing is downloaded."""
    torch.manual_seed(0)
    src = checkpoint.save_generator(
        tmp_path / "rgb.safetensors", methods.build_generator("texture", OperatorSpec(), "aff").eval()
    )
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-affsr"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "rgb.safetensors").write_bytes(src.read_bytes())
    code = textwrap.dedent("""
        import time, numpy as np
        import affsr_cli as affsr
        y = affsr.upscale(np.zeros((6, 5, 3), np.uint8), weights="hf://someone/tiny-affsr/rgb.safetensors", device="cpu")
        print(y.shape)
        t = time.monotonic()
        try:
            affsr.load("hf://someone/tiny-affsr/other.safetensors", device="cpu")
        except ValueError as e:
            print(f"{time.monotonic() - t:.1f}")
            print(e)
    """)
    env = {
        **ENV,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "0",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
        "HF_ENDPOINT": "https://huggingface.co",
    }
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "(24, 20, 3)" and len(lines) == 3, r.stdout
    assert float(lines[1]) < 15, f"took {lines[1]} s"  # huggingface_hub's retries alone sleep 23 s
    assert "not in the local Hugging Face cache" in lines[2] and "HF_HUB_OFFLINE=1" in lines[2], lines[2]
    assert "hf download someone/tiny-affsr other.safetensors" in lines[2]
    assert [p.name for p in (repo / "snapshots" / commit).iterdir()] == ["rgb.safetensors"]  # nothing downloaded


def test_make_crops_says_in_one_line_what_is_missing(tmp_path, capsys):
    """examples/photos/make_crops.py without its validation photos (or its weights): one line, exit code 2."""
    spec = importlib.util.spec_from_file_location("make_crops", ROOT / "examples" / "photos" / "make_crops.py")
    make_crops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_crops)
    (tmp_path / "empty").mkdir()
    (tmp_path / "photos").mkdir()
    chelsea().save(tmp_path / "photos" / "chelsea.png")
    for args, words in (
        [["--val", str(tmp_path / "none")], "no validation photos"],
        [["--val", str(tmp_path / "empty")], "no validation photos"],
        [["--val", str(tmp_path / "photos"), "--column", "X=no-such"], "no such weights file"],
    ):
        assert make_crops.main([*args, "-o", str(tmp_path / "sheet.png")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "sheet.png").exists()
