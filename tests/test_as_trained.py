"""`affsr eval --as-trained` (the paper's Table 2 comparison): a checkpoint trained without the
projection is measured on its own f(x); one trained with it, through Π as always."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, methods, upscalers
from affsr_cli.downsample import Downsample
from affsr_cli.projection import OperatorSpec
from helpers import VAL


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    spec = OperatorSpec(4, family="bicubic")
    for constraint in ("none", "soft", "aff"):
        torch.manual_seed(0)
        checkpoint.save_generator(
            d / f"{constraint}.safetensors", methods.build_generator("small", spec, constraint).eval()
        )
    return d


def lr_psnr(y_hat: torch.Tensor, x: torch.Tensor, A) -> float:
    mse = float((A(y_hat.double()) - x.double()).square().mean())
    return 10 * math.log10(1 / mse) if mse else math.inf


def test_as_trained_skips_the_projection_only_where_training_did(ckpts):
    im = Image.open(VAL / "chelsea.png").convert("RGB").crop((100, 60, 132, 84))
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float()[None] / 255
    A = Downsample(OperatorSpec(4, family="bicubic"))
    for constraint in ("none", "soft", "aff"):
        path = str(ckpts / f"{constraint}.safetensors")
        contract, _ = upscalers.checkpoint_upscaler(path)
        trained, _ = upscalers.checkpoint_upscaler(path, as_trained=True)
        a, b = contract(x, 8), trained(x, 8)
        assert a.shape == b.shape == (1, 3, 96, 128)
        assert lr_psnr(a, x, A) > 60  # the contract: Π, box fit, rounding
        if constraint == "aff":
            assert torch.equal(a, b)
        else:  # a random network's own output does not downsample to x; levels of an 8-bit file
            assert lr_psnr(b, x, A) < 40
            assert torch.equal((b * 255).round() / 255, b) and float(b.min()) >= 0 and float(b.max()) <= 1
            f = trained(x, 32)  # a float HR: f(x) itself, off the 8-bit grid, and within a level of the file's
            assert (
                not torch.equal((f * 255).round() / 255, f)
                and float((f.clamp(0, 1) - b).abs().max()) <= 0.5 / 255 + 1e-9
            )
