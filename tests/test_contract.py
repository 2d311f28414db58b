"""One inference contract: `affsr upscale`, `affsr eval` and infer.Upscaler give the same pixels."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from affsr_cli import checkpoint, infer, methods
from affsr_cli.downsample import Downsample
from affsr_cli.images import quantize, read_image, write_image
from affsr_cli.projection import OperatorSpec
from helpers import VAL, affsr


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "net.safetensors"
    checkpoint.save_generator(path, methods.build_generator("texture", OperatorSpec(), "aff").eval())
    return path


def test_eval_measures_exactly_what_upscale_writes(net, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    y = read_image(VAL / "coffee.png").pixels[:, 40:88, 100:164].double()  # 48×64 RGB
    write_image(hr / "c.png", y.float())
    y = read_image(hr / "c.png", torch.float64).pixels
    x = quantize(Downsample(OperatorSpec())(y), 8)  # eval's LR input, as a saved 8-bit file holds it
    write_image(tmp_path / "lr.png", x.float())
    assert torch.equal(read_image(tmp_path / "lr.png", torch.float64).pixels, x)
    r = affsr("upscale", tmp_path / "lr.png", "-o", tmp_path / "out.png", "-w", net)
    assert r.returncode == 0, r.stderr
    saved = np.asarray(Image.open(tmp_path / "out.png"))
    r = affsr("eval", "--hr", hr, "-w", net, "-m", "psnr,lr-mse", "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "e.json").read_text())
    want = peak_signal_noise_ratio(np.asarray(Image.open(hr / "c.png")), saved, data_range=255)
    assert doc["images"][0]["psnr"] == pytest.approx(want, abs=1e-9)
    assert "as affsr upscale saves it" in doc["conventions"]["ŷ"]
    # and in memory: the contract's levels are the file's samples, its saved() their values
    up = infer.Upscaler.load(str(net), "cpu")
    out = up(x.float(), bits=8)
    assert np.array_equal(out.levels, saved)
    assert torch.equal(out.saved(), torch.from_numpy(saved.astype(np.float64)).permute(2, 0, 1) / 255)
    mse = float(((Downsample(OperatorSpec())(out.saved()) - x) ** 2).mean())
    assert doc["images"][0]["lr-mse-x"] == pytest.approx(mse, rel=1e-9)


def test_contract_steps(net):
    up = infer.Upscaler.load(str(net), "cpu", tile=16)  # several tiles
    x = Downsample(OperatorSpec())(read_image(VAL / "coffee.png").pixels[:, 100:184, 200:348])  # (3, 21, 30)
    exact = up(x, bits=None)
    assert exact.levels is None and exact.bits is None
    assert (up.A(exact.y_hat.double()) - x.double()).abs().max() < 1e-5  # Π over the whole image, unclipped
    for bits in (8, 16):
        out = up(x, bits=bits)
        L = 2**bits - 1
        assert out.levels.dtype == (np.uint8 if bits == 8 else np.uint16) and out.levels.shape == (
            4 * x.shape[1],
            4 * x.shape[2],
            3,
        )
        assert 0 <= out.y_hat.min() and out.y_hat.max() <= 1  # the box fit
        assert np.abs(out.levels.astype(float) - out.y_hat.permute(1, 2, 0).numpy() * L).max() <= 1 + 1e-6
        lr_mse = float(((up.A(out.saved()) - x.double()) ** 2).mean())
        assert 10 * np.log10(1 / lr_mse) > 20 * np.log10(L) + 16 - 0.5  # the box fit's bound, then rounding
    with pytest.raises(ValueError, match="bits must be 8, 16 or None"):
        up(x, bits=12)
