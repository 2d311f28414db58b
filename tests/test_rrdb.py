"""RRDBNet (nets/rrdb.py) and the Real-ESRGAN importer (examples/photos/import_realesrgan.py): shapes,
ESRGAN's arithmetic against spandrel's implementation when it is installed, and a round trip through an
ncnn .param/.bin pair laid out as the official export, written by the test (cost figures: test_nets)."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, methods
from affsr_cli import train as engine
from affsr_cli.errors import AffsrError
from affsr_cli.nets import rrdb as R
from affsr_cli.projection import OperatorSpec
from helpers import stub_torchvision, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "photos"))
import import_realesrgan  # noqa: E402
import import_span  # noqa: E402

TINY = dict(width=8, growth=4, blocks=2)


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("noise", [0, 3])
def test_rrdb_shapes(scale, noise):
    net = R.RRDBNet(scale=scale, noise_channels=noise, **TINY).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, 9, 7))
    assert y.shape == (2, 3, 9 * scale, 7 * scale) and torch.isfinite(y).all()


def test_rrdb_refuses_what_it_cannot_build():
    with pytest.raises(AffsrError, match="LR grid only"):
        R.RRDBNet(grid="hr", **TINY)
    with pytest.raises(AffsrError, match="2, 4, 8 or 16"):
        R.RRDBNet(scale=3, **TINY)
    with pytest.raises(AffsrError, match="blocks must be"):
        R.RRDBNet(width=8, growth=4, blocks=0)


def test_the_preset_is_real_esrgan_x4plus():
    model = methods.build_generator("rrdb", OperatorSpec(4, family="bicubic"), "aff")
    assert model.net_config["class"] == "RRDBNet"
    assert sum(p.numel() for p in model.net.parameters()) == 16_697_987  # the official x4plus's count


def test_rrdb_computes_what_spandrels_esrgan_computes():
    """An independent implementation of ESRGAN's RRDBNet (spandrel's old-arch RRDBNet, growth 32), given our
    weights convolution by convolution (both hold them in the same order)."""
    stub_torchvision()
    pytest.importorskip("spandrel", reason="pip install --no-deps spandrel (README test command)")
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = R.RRDBNet(width=16, growth=32, blocks=2).eval()
    theirs = ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4).eval()
    convs = lambda m: [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    with torch.no_grad():
        for a, b in zip(convs(net), convs(theirs), strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        x = torch.rand(1, 3, 11, 9)
        assert (net(x) - theirs(x)).abs().max() < 1e-5


def ncnn_files(net: R.RRDBNet, fp16: bool) -> tuple[str, bytes]:
    """An ncnn .param/.bin pair of `net` laid out as the official export (layer kinds, order, activations)."""
    lines, data = ["Input input.1 0 1 data"], bytearray()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    activated = {id(c) for b in net.blocks for rdb in b.rdbs for c in rdb.convs} | {id(c) for c in [*net.ups, net.hr]}
    for i, m in enumerate(convs):
        w = m.weight.detach().numpy()
        act = " 9=2 -23310=1,2.000000e-01" if id(m) in activated else ""
        lines.append(f"Convolution Conv_{i} 1 1 a b 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}{act}")
        if fp16:
            raw = w.astype("<f2").tobytes()
            data.extend(struct.pack("<I", import_span.FP16_TAG) + raw + b"\0" * (-len(raw) % 4))
        else:
            data.extend(struct.pack("<I", 0) + w.astype("<f4").tobytes())
        data.extend(m.bias.detach().numpy().astype("<f4").tobytes())
        if m is net.trunk:
            lines.append("BinaryOp Add_skip 2 1 a b c")
    lines += [f"Eltwise Add_{i} 2 1 a b c 0=1 -23301=2,2.000000e-01,1.000000e+00" for i in range(4 * len(net.blocks))]
    lines += [f"Interp Resize_{i} 1 1 a b 0=1 1=2.000000e+00 2=2.000000e+00" for i in range(2)]
    lines += ["Split splitncnn_0 1 2 a b c", "Concat Concat_0 2 1 a b c"]
    return "\n".join(["7767517", f"{len(lines)} {2 * len(lines)}", *lines]) + "\n", bytes(data)


@pytest.mark.parametrize("fp16", [True, False])
def test_ncnn_round_trip_gives_the_same_network(tmp_path, fp16):
    torch.manual_seed(0)
    net = R.RRDBNet(width=8, growth=5, blocks=2).eval()  # growth 5: odd fp16 sizes pad to 4 bytes
    state, kwargs = import_realesrgan.convert(*ncnn_files(net, fp16))
    assert kwargs == dict(channels=3, scale=4, width=8, growth=5, blocks=2, noise_channels=0, grid="lr")
    ref = net.state_dict()
    assert state.keys() == ref.keys()
    for k, v in ref.items():
        expected = v.half().float() if fp16 and k.endswith("weight") else v
        assert torch.equal(state[k], expected), k
    import_realesrgan.save(tmp_path / "r.safetensors", state, kwargs, "bicubic")
    model = checkpoint.load_generator(tmp_path / "r.safetensors")
    assert model.net_config["class"] == "RRDBNet" and model.spec.family == "bicubic"
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        out = model(x)  # with Π: A ŷ = x
    assert out.shape == (1, 3, 24, 20) and (model.A(out) - x).abs().max() < 1e-4


def test_ncnn_reader_refuses_another_graph():
    torch.manual_seed(0)
    param, data = ncnn_files(R.RRDBNet(**TINY), False)
    with pytest.raises(import_span.NcnnError, match="activations"):
        import_realesrgan.convert(param.replace(" 9=2 -23310=1,2.000000e-01", "", 1), data)
    with pytest.raises(import_span.NcnnError, match="residual sums"):
        import_realesrgan.convert(param.replace("-23301=2,2.000000e-01", "-23301=2,1.000000e+00", 1), data)
    with pytest.raises(import_span.NcnnError, match="nearest"):
        import_realesrgan.convert(param.replace("Interp Resize_0 1 1 a b 0=1", "Interp Resize_0 1 1 a b 0=2"), data)
    lines = param.splitlines()
    n_layers, n_blobs = map(int, lines[1].split())
    fewer = [
        lines[0],
        f"{n_layers - 1} {n_blobs}",
        *(ln for ln in lines[2:] if not ln.startswith("Convolution Conv_1 ")),
    ]
    with pytest.raises(import_span.NcnnError, match="convolutions: not an RRDBNet"):
        import_realesrgan.convert("\n".join(fewer), data)
    with pytest.raises(import_span.NcnnError, match="left unread"):
        import_realesrgan.convert(param, data + b"\0" * 4)
    with pytest.raises(import_span.NcnnError, match="not one this network has"):
        import_realesrgan.convert(param.replace("Split splitncnn_0", "Swish swish_0"), data)


def test_an_imported_file_starts_an_affgan_fine_tune_of_the_rrdb_preset(tmp_path):
    """`affsr train --generator rrdb --init realesrgan-x4plus.safetensors`: the run starts from the file's weights
    exactly, trains them, and its checkpoint is an RRDBNet whose output downsamples to its input."""
    torch.manual_seed(0)
    start = methods.build_generator("rrdb", OperatorSpec(4, family="bicubic"), "aff")
    checkpoint.save_generator(tmp_path / "start.safetensors", start)
    (tmp_path / "data").mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            tmp_path / "data" / f"{i}.png"
        )
    cfg = tiny_config(
        tmp_path / "data", tmp_path / "run", method="affgan", generator="rrdb", operator="bicubic",
        init=str(tmp_path / "start.safetensors"), discriminator="texture", critic_warmup=1, steps=2,
    )  # fmt: skip
    out = engine.train(cfg)
    model = checkpoint.load_generator(out / "generator.safetensors")
    state, _ = checkpoint.load_state(out / "state.safetensors")
    before = start.net.state_dict()
    assert model.net_config["class"] == "RRDBNet" and state["modules"]["net"].keys() == before.keys()
    assert not torch.equal(state["modules"]["net"]["last.weight"], before["last.weight"])  # step 2 trained G
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert (model.A(model(x)) - x).abs().max() < 1e-5
