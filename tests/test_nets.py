"""The generators of App. D: shapes for every preset and grid, and the ICNR start of the
sub-pixel output (no period-s checkerboard at initialisation)."""
import pytest
import torch

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
