"""The generators of App. D: shapes for every preset and grid, and the ICNR start of the
sub-pixel output (no period-s checkerboard at initialisation)."""
import pytest
import torch

from affsr_cli.nets import discriminator as D
from affsr_cli.nets import generator as G


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
    for preset in ("texture", "texture-aa"):
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
