"""The generators of App. D: shapes for every preset and grid, and the ICNR start of the
sub-pixel output (no period-s checkerboard at initialisation)."""

import pytest
import torch

from affsr_cli.nets import discriminator as D
from affsr_cli.nets import efficient as E
from affsr_cli.nets import generator as G
from affsr_cli.nets import rrdb as R
from affsr_cli.nets import span as S


@pytest.mark.parametrize("preset", G.PRESETS)
@pytest.mark.parametrize("grid", ["lr", "hr"])
def test_shapes(preset, grid):
    net = G.Generator(scale=4, grid=grid, noise_channels=2, **G.PRESETS[preset]).eval()
    x = torch.rand(2, 3, 5, 7) if grid == "lr" else torch.rand(2, 3, 20, 28)
    y = net(x)
    assert y.shape == (2, 3, 20, 28) and (y > 0).all() and (y < 1).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sub_pixel_output_starts_without_checkerboard(scale):
    torch.manual_seed(0)
    net = G.Generator(scale=scale, **G.PRESETS["texture"]).eval()
    y = net(torch.rand(1, 3, 6, 5))  # (1, 3, 6s, 5s)
    blocks = y.reshape(1, 3, 6, scale, 5, scale)
    assert (blocks - blocks[:, :, :, :1, :, :1]).abs().max() < 1e-6  # every s×s block constant
    assert y.std() > 1e-3  # and the image itself not constant


def period2_share(g: torch.Tensor) -> float:
    """Share of the energy of g (B, C, H, W) at the period-2 frequencies (Nyquist rows/columns)."""
    p = torch.fft.fft2(g).abs() ** 2
    h, w = g.shape[-2:]
    nyq = p[..., h // 2, :].sum() + p[..., :, w // 2].sum() - p[..., h // 2, w // 2].sum()
    return float(nyq / p.sum())


def test_antialiased_discriminator_has_a_smooth_input_gradient():
    """A strided D's gradient w.r.t. its input is periodic (the checkerboard a generator then
    learns); blur pooling removes it. Measured on the same random smooth images, 4 seeds."""
    torch.manual_seed(0)
    y = torch.nn.functional.interpolate(torch.rand(8, 3, 12, 12), size=48, mode="bilinear", align_corners=False)
    shares = {}
    for preset in ("texture", "texture-aa", "small-aa"):
        s = []
        for seed in range(4):
            torch.manual_seed(seed)
            d = D.Discriminator(**D.PRESETS[preset])
            yy = y.clone().requires_grad_(True)
            d(yy).sum().backward()
            s.append(period2_share(yy.grad))
        shares[preset] = sum(s) / len(s)
    assert d(y).shape == (8,)
    assert shares["texture-aa"] < 0.2 * shares["texture"], shares
    assert shares["small-aa"] < 0.2 * shares["texture"], shares


def test_blur_before_the_stride_is_blur_after_the_convolution():
    """small-aa's blur -> stride-2 convolution equals texture-aa's convolution -> blur -> subsample
    (the per-channel blur commutes with the convolution; away from the reflect-padded border)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, 1, 1, bias=False)
    y = torch.rand(2, 4, 32, 32)
    before = torch.nn.functional.conv2d(D.BlurPool(4, stride=1)(y), conv.weight, stride=2, padding=1)
    after = D.BlurPool(6)(conv(y))
    assert before.shape == after.shape == (2, 6, 16, 16)
    assert (before - after)[..., 2:-2, 2:-2].abs().max() < 1e-5


@pytest.mark.parametrize("preset", E.PRESETS)
@pytest.mark.parametrize("noise", [0, 2])
def test_efficient_shapes_and_bilinear_start(preset, noise):
    """Every efficient preset maps (B, C, h, w) to (B, C, s·h, s·w) and starts close to the bilinear
    image (its residual branch begins near zero), free of a period-s pattern (ICNR)."""
    torch.manual_seed(0)
    net = E.EfficientGenerator(scale=4, noise_channels=noise, **E.PRESETS[preset]).eval()
    x = torch.rand(2, 3, 9, 7)
    y = net(x)
    base = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert y.shape == (2, 3, 36, 28)
    residual = (y - base).reshape(2, 3, 9, 4, 7, 4)
    assert residual.abs().max() < 0.25 and (residual - residual[:, :, :, :1, :, :1]).abs().max() < 1e-6
    with pytest.raises(ValueError, match="LR grid only"):
        E.EfficientGenerator(grid="hr")


@pytest.mark.parametrize("family", [E, S, R], ids=["efficient", "span", "rrdb"])
def test_cost_counts_every_convolution(family):
    """cost() (the figures in --help and the README) against the convolutions a forward pass runs."""
    net_class = {E: E.EfficientGenerator, S: S.SPAN, R: R.RRDBNet}[family]
    for preset, kwargs in family.PRESETS.items():
        net = net_class(scale=4, **kwargs)
        flops = []
        hooks = [
            m.register_forward_hook(lambda m, i, o: flops.append(2 * o.numel() * m.in_channels * m.kernel_size[0] ** 2))
            for m in net.modules()
            if isinstance(m, torch.nn.Conv2d)
        ]
        with torch.no_grad():
            net(torch.rand(1, 3, 16, 16))
        for h in hooks:
            h.remove()
        params, gflop_per_mp = family.cost(**kwargs)
        assert params == sum(p.numel() for p in net.parameters())
        assert gflop_per_mp == pytest.approx(sum(flops) / (64 * 64) / 1e3)
    assert (
        E.cost(**E.PRESETS["tiny"])[1] <= 10
        and E.cost(**E.PRESETS["small"])[1] <= 40
        and E.cost(**E.PRESETS["base"])[1] <= 150
    )
    assert S.cost(**S.PRESETS["span52"])[0] == 498_208  # the official ch52 x4 model's parameter count
    assert R.cost(**R.PRESETS["rrdb"])[0] == 16_697_987  # Real-ESRGAN x4plus's


def test_patch_discriminator_judges_each_neighbourhood():
    """texture-patch: one logit per location of the last (H/16) feature map, each the global preset's
    linear layer on that location's features (their mean is the global D's logit); a change in one
    corner of the input moves only the logits within its reach."""
    torch.manual_seed(0)
    d = D.Discriminator(**D.PRESETS["texture-patch"]).eval()
    glob = D.Discriminator(**D.PRESETS["texture"]).eval()
    glob.load_state_dict(d.state_dict())
    y = torch.rand(2, 3, 128, 96)
    logits = d(y)
    assert logits.shape == (2, 1, 8, 6)
    assert torch.allclose(logits.mean((-2, -1)).squeeze(1), glob(y), atol=1e-5)
    assert torch.equal(d.forward_with_features(y)[0], logits)
    y2 = y.clone()
    y2[..., :8, :8] += 0.5
    moved = (d(y2) - logits).abs()[0, 0] > 1e-6
    assert moved[0, 0] and not moved[4:, :].any() and not moved[:, 4:].any()
