"""Other tools' networks through spandrel (`affsr upscale -w their.safetensors --operator ...`):
small random-weight ESRGAN (RRDB), SPAN and SwinIR models saved as safetensors load, tile, report
their scale and come out consistent with the operator named; pickles and unknown files are refused.

spandrel is installed without its dependencies by the README's test command: PyPI's torchvision
wheels are CUDA builds that do not load beside the CPU torch used here. spandrel imports two names
from torchvision at module level for architectures tested nowhere here (LaMa, RestoreFormer), so
tests/helpers.py's `stub_torchvision` stands in for them when torchvision is missing; the stub raises if ever called."""

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from affsr_cli import foreign, infer
from affsr_cli.downsample import Downsample
from affsr_cli.projection import OperatorSpec
from helpers import stub_torchvision

stub_torchvision()
spandrel = pytest.importorskip("spandrel", reason="pip install --no-deps spandrel (README test command)")
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402

ARCHS = {
    "ESRGAN": lambda s: ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=1, scale=s),
    "SPAN": lambda s: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=s),
    "SwinIR": lambda s: SwinIR(
        img_size=16,
        in_chans=3,
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        window_size=4,
        upscale=s,
        upsampler="pixelshuffledirect",
        resi_connection="1conv",
        mlp_ratio=2,
    ),
}


def smooth_image(h: int, w: int) -> torch.Tensor:
    """(3, h, w) on the 8-bit grid, smooth like a photo (uniform noise has no consistent HR image in [0, 1])."""
    coarse = torch.rand(1, 3, h // 4 + 2, w // 4 + 2)
    return (
        torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1) * 255
    ).round() / 255


def save(arch: str, scale: int, path, seed: int = 0):
    torch.manual_seed(seed)
    net = ARCHS[arch](scale)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return net


@pytest.mark.parametrize("arch,scale", [("ESRGAN", 4), ("SPAN", 4), ("SwinIR", 2), ("SPAN", 2)])
def test_a_foreign_network_loads_tiles_and_comes_out_consistent(tmp_path, arch, scale):
    path = tmp_path / f"{arch}.safetensors"
    net = save(arch, scale, path).eval()
    notes = []
    up = infer.Upscaler.load(str(path), operator="bicubic", tile=100, on_note=notes.append, keep_grid=True)
    assert up.foreign == arch and up.scale == scale and up.spec == OperatorSpec(scale, family="bicubic")
    assert any(arch in n and "consistent" in n for n in notes)
    torch.manual_seed(1)
    x = smooth_image(160, 150)
    f = up.network(x)  # tiled: 2 × 2 tiles of 100 LR pixels
    with torch.no_grad():
        whole = net(x[None]).clamp(0, 1)[0]  # the architecture itself on the whole image
    assert f.shape == (3, scale * 160, scale * 150)
    # seamless: convolutional nets by the overlap, SwinIR's windows because tiles start on their grid
    assert (f - whole).abs().max() < 1e-4
    out = up(x, bits=None)  # Π over the whole image: exact consistency in floats
    lr = Downsample(up.spec)(out.y_hat.double())
    assert (lr - x.double()).abs().max() < 1e-5
    saved = up(x, bits=8).saved()
    assert 10 * np.log10(1 / float(((Downsample(up.spec)(saved) - x.double()) ** 2).mean())) > 55


def test_the_operator_is_required_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "span.safetensors"
    save("SPAN", 4, path)
    with pytest.raises(ValueError, match="pass --operator"):
        infer.Upscaler.load(str(path))
    junk = tmp_path / "junk.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(junk))
    with pytest.raises(ValueError, match="no architecture spandrel|neither an affsr checkpoint"):
        infer.Upscaler.load(str(junk), operator="bicubic")
    broken = ARCHS["SPAN"](4).state_dict()
    broken[next(iter(broken))] = broken[next(iter(broken))].clone().fill_(float("nan"))
    save_file({k: v.contiguous() for k, v in broken.items()}, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        infer.Upscaler.load(str(tmp_path / "nan.safetensors"), operator="bicubic")
    pickle = tmp_path / "net.pth"
    torch.save(ARCHS["SPAN"](4).state_dict(), pickle)
    with pytest.raises(ValueError, match="pickle"):
        infer.Upscaler.load(str(pickle), operator="bicubic")
    assert foreign.is_foreign({}) and not foreign.is_foreign({"format": "affsr.generator.v1"})


def test_upscale_cli_with_a_foreign_network_and_from_a_local_hub_cache(tmp_path):
    """The CLI end to end: --operator required (one line, exit 2), then a consistent file; the same
    network through hf:// from a Hugging Face cache made here (nothing is downloaded)."""
    path = tmp_path / "span.safetensors"
    save("SPAN", 4, path)
    torch.manual_seed(0)
    Image.fromarray((smooth_image(20, 24) * 255).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "a.png")
    # the subprocess gets the same stub, from its definition in tests/helpers.py
    stub = f"import importlib.util, sys, types\n{inspect.getsource(stub_torchvision)}\nstub_torchvision()\n"

    def affsr(*args, env=None):
        code = f"{stub}from affsr_cli.cli.app import main; sys.argv = ['affsr', *sys.argv[1:]]; main()"
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)

    r = affsr("upscale", tmp_path / "a.png", "-w", path, "-o", tmp_path / "no.png")
    assert r.returncode == 2 and "pass --operator" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "no.png").exists()
    r = affsr("upscale", tmp_path / "a.png", "-w", path, "--operator", "bicubic", "-o", tmp_path / "out.png", "--json")
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)
    assert result["size_out"] == [96, 80] and result["lr_psnr"] > 55
    # eval: the same network beside bicubic on HR images, consistent with the operator named
    (tmp_path / "hr").mkdir()
    Image.open(tmp_path / "out.png").save(tmp_path / "hr" / "b.png")
    r = affsr(
        "eval",
        "--hr",
        tmp_path / "hr",
        "-w",
        path,
        "--operator",
        "bicubic",
        "--baseline",
        "bicubic",
        "-m",
        "psnr",
        "lr-psnr",
        "--json",
        tmp_path / "eval.json",
    )
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "eval.json").read_text()
    assert "span" in report and "bicubic" in report
    # hf://owner/repo/file from a local cache (HF_HUB_OFFLINE: a miss would be an error, never a download)
    import os

    cache = tmp_path / "hub"
    snap = cache / "models--someone--span-x4" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "span.safetensors").write_bytes(path.read_bytes())
    (cache / "models--someone--span-x4" / "refs").mkdir()
    (cache / "models--someone--span-x4" / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    r = affsr(
        "upscale",
        tmp_path / "a.png",
        "-w",
        "hf://someone/span-x4/span.safetensors",
        "--operator",
        "bicubic",
        "-o",
        tmp_path / "hub.png",
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["lr_psnr"] > 55
