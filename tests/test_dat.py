"""DAT (nets/dat.py) and the conversion of examples/photos/import_dat.py: shapes and cost figures, the
shifted windows' mask, padding, a checkpoint round trip, and the folding of the official batch norms and
position MLPs (the comparison with the official network itself needs the wheel: import_dat.py --check)."""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from affsr_cli import checkpoint, nets
from affsr_cli.model import SRModel
from affsr_cli.nets import dat as D
from affsr_cli.projection import OperatorSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "photos"))
import import_dat  # noqa: E402

SMALL = dict(width=16, blocks=4, groups=2, heads=2, window=[4, 8], hidden=16)


def test_dat_shapes_and_refusals():
    torch.manual_seed(0)
    net = D.DAT(scale=4, **SMALL).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, 13, 10))  # neither side a multiple of the window: padded inside
    assert y.shape == (2, 3, 52, 40) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="LR grid only"):
        D.DAT(grid="hr")
    with pytest.raises(ValueError, match="multiple of heads"):
        D.DAT(width=20, heads=6)


def test_dat_cost_is_what_a_forward_pass_computes():
    """cost(): parameters exactly, FLOPs within 1 % of torch's own count (its matmuls, linears and convs)
    on an input of whole windows (padding would add work that depends on the size)."""
    for kwargs in (D.PRESETS["dat-light"], SMALL):
        net = D.DAT(scale=4, **kwargs).eval()
        params, gflop = D.cost(**kwargs)
        assert params == sum(p.numel() for p in net.parameters())
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.rand(1, 3, 32, 32))
        assert gflop == pytest.approx(counter.get_total_flops() / (128 * 128) / 1e3, rel=0.01)


def test_shifted_windows_never_join_opposite_borders(monkeypatch):
    """After the half-window roll, the last window holds pixels from both borders: the mask keeps them
    apart. attend()'s output at the top-left pixel does not move when q, k, v change at the bottom-right
    one (in the same rolled window); without the mask it would."""
    torch.manual_seed(0)
    att = D.SpatialAttention(16, 2, (4, 8), shifted=True).eval()
    h, w = 16, 16
    qkv = torch.randn(3, 1, h, w, 16)
    moved = qkv.clone()
    moved[:, :, -1, -1] += 5.0
    with torch.no_grad():
        a, b = att.attend(qkv, h, w), att.attend(moved, h, w)
        assert torch.allclose(a[:, 0, 0], b[:, 0, 0], atol=1e-6)
        assert not torch.allclose(a[:, -2, -2], b[:, -2, -2], atol=1e-3)  # a neighbour in its own region does
        mask = D.shift_mask(h, w, 4, 8)
        assert mask.shape == (8, 32, 32) and (mask[0] == 0).all()  # an inner window is one region
        assert set(mask[-1].unique().tolist()) == {0.0, D.MASKED}
        monkeypatch.setattr(D, "shift_mask", lambda *a: torch.zeros(8, 32, 32))  # the same, unmasked
        c, d = att.attend(qkv, h, w), att.attend(moved, h, w)
        assert not torch.allclose(c[:, 0, 0], d[:, 0, 0], atol=1e-3)


def test_padding_is_zero_qkv_outside_the_image():
    """Inside spatial attention the map is padded to whole windows with q = k = v = 0, as the official
    network does; the pixels of the image see the padding only through those zero keys (no NaN, no
    dependence on what lies beyond the image)."""
    torch.manual_seed(0)
    att = D.SpatialAttention(16, 2, (4, 8), shifted=False).eval()
    qkv = torch.randn(3, 1, 8, 6, 16)  # 8×6: padded inside to 8×8 (the longer window side is 8)
    padded = torch.nn.functional.pad(qkv, (0, 0, 0, 2))  # 8×8 with zeros: the same thing, done by hand
    with torch.no_grad():
        inside = att.attend(qkv, 8, 6)
        assert torch.isfinite(inside).all()
        assert torch.allclose(inside, att.attend(padded, 8, 8)[:, :, :6], atol=1e-6)
        replicated = torch.cat([qkv, qkv[:, :, :, -2:]], 3)  # 8×8, the last two columns repeated
        other = att.attend(replicated, 8, 8)
        assert not torch.allclose(inside, other[:, :, :6], atol=1e-3)  # what lies in the padding matters


def test_dat_checkpoint_round_trip_and_tiling_fields(tmp_path):
    torch.manual_seed(0)
    kwargs = dict(SMALL, channels=3, scale=4)
    model = SRModel({"class": "DAT", "kwargs": kwargs}, OperatorSpec(4, family="bicubic"), "aff")
    nets.check_config({"class": "DAT", "kwargs": kwargs})
    path = tmp_path / "dat.safetensors"
    checkpoint.save_generator(path, model)
    back = checkpoint.load_generator(path)
    x = torch.rand(1, 3, 12, 9)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
        assert (back.A(back(x)) - x).abs().max() < 1e-5  # Π: consistent
    d = back.describe()
    assert d.tile_multiple == D.TILE_MULTIPLE and d.radius_bounds == D.RADIUS_BOUNDS


def test_batch_norm_folds_into_the_convolution():
    """import_dat.fold: conv then eval-mode batch norm == the one folded conv."""
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8), torch.nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    seq = torch.nn.Sequential(conv, bn).eval()
    src = {f"c.{k}": v for k, v in conv.state_dict().items()} | {f"b.{k}": v for k, v in bn.state_dict().items()}
    folded = torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8)
    folded.load_state_dict(import_dat.fold(src, "c", "b"))
    assert not src  # every tensor of the pair used
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), seq(x), atol=1e-5)


def test_position_table_is_the_mlp_on_each_relative_position():
    """import_dat.position_table: row (dy + wh − 1)·(2ww − 1) + (dx + ww − 1) is the MLP of (dy, dx), the
    order WindowAttention.index reads."""
    torch.manual_seed(0)
    dim, heads = 4, 3
    mlp = {"pos_proj": torch.nn.Linear(2, dim)} | {
        f"pos{k}": torch.nn.Sequential(
            torch.nn.LayerNorm(dim), torch.nn.ReLU(), torch.nn.Linear(dim, heads if k == 3 else dim)
        )
        for k in (1, 2, 3)
    }
    src = {f"p.{n}.{k}": v for n, m in mlp.items() for k, v in m.state_dict().items()}
    table = import_dat.position_table(src, "p", 2, 4)
    assert table.shape == (3 * 7, heads) and not src
    with torch.no_grad():
        want = mlp["pos3"](mlp["pos2"](mlp["pos1"](mlp["pos_proj"](torch.tensor([[1.0, -2.0]])))))
    assert torch.allclose(table[(1 + 1) * 7 + (-2 + 3)], want[0], atol=1e-6)
    att = D.WindowAttention(heads, 2, 4)
    assert int(att.index[4 + 0, 0 + 2]) == (1 + 1) * 7 + (-2 + 3)  # token (1, 0) to token (0, 2): dy 1, dx −2


def test_conversion_refuses_tensors_it_does_not_know():
    with pytest.raises(import_dat.Failure, match="conv_first"):
        import_dat.convert({"something.weight": torch.zeros(1)})


def test_dat_trains_as_a_generator_preset():
    """`--generator dat-light` builds DAT; every parameter (bias tables and temperatures included) gets a
    gradient through Π, and a few Adam steps lower the loss on a fixed batch."""
    from affsr_cli import methods

    torch.manual_seed(0)
    model = methods.build_generator("dat-light", OperatorSpec(4, family="bicubic"), "aff")
    assert type(model.net) is D.DAT
    model.net = D.DAT(scale=4, **SMALL)  # the same class, small enough for a test
    y = torch.rand(2, 3, 32, 32)
    x = model.A(y)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = (model(x) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
