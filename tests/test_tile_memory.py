"""The peak memory of a forward pass that sizes `--tile auto` (tiles.LiveBytes, tiles.bytes_per_pixel): exact
counts of tensors made and freed, views counted once, per-pixel peaks of small networks against the number
worked out by hand, and the tile that DAT-light now gets under the 1 GiB CPU budget."""

import pytest
import torch
from torch import nn

from affsr_cli import infer, tiles

CPU = torch.device("cpu")
C = 32  # feature channels of the test networks: a float32 map of them is 4·C bytes per pixel


def per_pixel(net: nn.Module) -> float:
    @torch.no_grad()
    def run(n):
        return net(torch.zeros(1, 3, n, n))

    return tiles.bytes_per_pixel(run, CPU)


def chain() -> nn.Sequential:
    """Each layer's input is freed once its output exists: at most two feature maps live at once."""
    conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)  # noqa: E731
    return nn.Sequential(conv(3, C), nn.ReLU(), conv(C, C), nn.ReLU(), conv(C, C), nn.ReLU(), conv(C, 3)).eval()


class Dense(nn.Module):
    """Keeps all four of its feature maps for a concatenation at the end: 4 maps + their concatenation."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else C, C, 3, padding=1) for i in range(4))
        self.out = nn.Conv2d(4 * C, 3, 1)

    def forward(self, x):
        features = []
        for conv in self.convs:
            x = conv(x)
            features.append(x)
        return self.out(torch.cat(features, 1))


class Views(nn.Module):
    """One conv, then views and in-place ops of its output only: no new memory after the conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y.relu_().add_(1)
        return y.transpose(2, 3)[:, 1:].unsqueeze(0).squeeze(0).mul_(2)


def test_live_bytes_counts_what_is_made_and_freed_once():
    weight = torch.ones(1000)  # made before: neither it nor its views count
    with tiles.LiveBytes() as live:
        a = torch.empty(1000)  # 4,000 bytes
        b = torch.empty(2000)  # 8,000
        view = b[10:].view(-1, 10).t()  # a view of b: nothing new
        b.add_(1)  # in place: nothing new
        w = weight[:500].mul(1)  # a new 2,000 bytes from a view of the weight
        tail = weight[1:].t()  # a view of the weight: nothing
        assert live.live == 14_000 and tail.numel() == 999
        del a, w
        assert live.live == 8_000  # freed when the last reference goes
        del b  # the view still holds b's storage
        assert live.live == 8_000
        del view
        c = torch.empty(500)
        assert live.live == 2_000 and c.numel() == 500
    assert live.peak == 14_000


def test_a_conv_chain_peaks_at_two_feature_maps():
    """By hand: a layer's input and output, 2 maps of C float32 channels = 8·C bytes per pixel (the
    3-channel input and output add 12 bytes, the weights nothing: the slope leaves them out)."""
    assert per_pixel(chain()) == pytest.approx(8 * C, rel=0.1)


def test_a_network_that_keeps_its_features_gets_a_larger_estimate():
    """By hand: 4 kept maps and their concatenation, 8 maps = 32·C bytes per pixel, 4× the chain's."""
    dense = per_pixel(Dense().eval())
    assert dense == pytest.approx(32 * C, rel=0.1)
    assert dense > 3 * per_pixel(chain())


def test_views_and_in_place_results_are_not_counted_again():
    """Views and in-place results of the conv's output share its storage: the peak is that of the conv alone,
    one map of C channels (+ the 3-channel input: 4·(C + 3) bytes per pixel)."""
    assert per_pixel(Views().eval()) == pytest.approx(4 * (C + 3), rel=0.02)


def test_dat_light_gets_a_tile_that_fits_the_budget_without_cutting_a_photo(monkeypatch):
    """The old estimate (every layer's output summed, ~4× the real peak) cut DAT-light into tiles of 130 LR
    pixels; now the tile is ≥ 200 and ≤ 280, about the largest whose measured peak (14.3 KB per LR pixel
    at 248², benchmarks/tile_memory.py) fits the 1 GiB CPU budget."""
    monkeypatch.setattr(infer, "available_memory", lambda device: 64 << 30)  # budget = CPU_TILE_BUDGET
    up = infer.Upscaler.load("affmse-x4-dat", "cpu")
    assert 200 <= up.tile <= 280
