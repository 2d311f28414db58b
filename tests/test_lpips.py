"""LPIPS from a local safetensors file, checked against the reference model's structure: the
`lpips` package's LPIPS(net='alex', version='0.1') transcribed with torch.nn modules named as there
(torchvision's AlexNet layers in slices, NetLinLayer with dropout), its state dict saved and loaded."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from affsr_cli.lpips import LPIPS


class ReferenceLPIPS(nn.Module):
    """lpips.LPIPS(net='alex', version='0.1', pretrained=False) with random weights."""

    def __init__(self):
        super().__init__()
        f = [
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(True),
        ]
        self.net = nn.Module()
        for i, (lo, hi) in enumerate([(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]):
            s = nn.Sequential()
            for x in range(lo, hi):
                s.add_module(str(x), f[x])
            setattr(self.net, f"slice{i + 1}", s)
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        for i, c in enumerate([64, 192, 384, 256, 256]):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            nn.init.uniform_(lin.model[1].weight, 0, 0.1)  # the trained weights are non-negative
            setattr(self, f"lin{i}", lin)
        self.eval()

    @torch.no_grad()
    def forward(self, in0, in1):  # normalize=True: inputs in [0, 1]
        s = self.scaling_layer
        h0, h1 = ((2 * v - 1 - s.shift) / s.scale for v in (in0, in1))
        val = 0
        for i in range(5):
            sl = getattr(self.net, f"slice{i + 1}")
            h0, h1 = sl(h0), sl(h1)
            n0, n1 = (h / (torch.sqrt(torch.sum(h**2, dim=1, keepdim=True)) + 1e-10) for h in (h0, h1))
            val = val + getattr(self, f"lin{i}").model((n0 - n1) ** 2).mean([2, 3], keepdim=True)
        return val.flatten()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    ref = ReferenceLPIPS()
    path = tmp_path_factory.mktemp("lpips") / "alex.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    return ref, LPIPS.from_file(path), path


def test_same_distance_as_the_reference(models):
    ref, ours, _ = models
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 64, 80, generator=g)
    y_hat = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    want = ref(y, y_hat)
    assert torch.allclose(ours(y, y_hat), want, rtol=1e-5, atol=1e-7) and (want > 0).all()
    assert float(ours(y[0], y_hat[0])) == pytest.approx(float(want[0]), rel=1e-5)
    assert float(ours(y[0], y[0])) == 0
    assert float(ours(y_hat[0], y[0])) == pytest.approx(float(want[0]), rel=1e-5)  # symmetric
    gray = y[:1, :1]
    assert float(ours(gray, gray * 0.5)) == pytest.approx(
        float(ref(gray.expand(-1, 3, -1, -1), gray.expand(-1, 3, -1, -1) * 0.5)[0]), rel=1e-5
    )


def test_bad_weights_and_inputs(models, tmp_path):
    _, ours, path = models
    from safetensors.torch import load_file

    tensors = load_file(path)
    del tensors["lin3.model.1.weight"]
    with pytest.raises(ValueError, match="lin3"):
        LPIPS(tensors)
    tensors = load_file(path)
    tensors["net.slice2.3.weight"] = tensors["net.slice2.3.weight"][:10]
    with pytest.raises(ValueError, match="net.slice2.3.weight has shape"):
        LPIPS(tensors)
    (tmp_path / "alex.pth").write_bytes(b"\x80\x04 a pickle")
    with pytest.raises(ValueError, match="pickle"):
        LPIPS.from_file(tmp_path / "alex.pth")
    with pytest.raises(ValueError, match="at least 32"):
        ours(torch.rand(3, 20, 40), torch.rand(3, 20, 40))
