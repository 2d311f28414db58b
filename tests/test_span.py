"""SPAN (nets/span.py) and the ncnn reader of examples/photos/import_span.py: shapes (cost figures:
test_nets), and a round trip through an ncnn .param/.bin pair that the test writes itself (float16 and float32
storage, the mean in a MemoryData layer), with every byte accounted for."""

import struct
import sys
from pathlib import Path

import pytest
import torch

from affsr_cli import checkpoint
from affsr_cli.nets import span as S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "photos"))
import import_span  # noqa: E402


@pytest.mark.parametrize("preset", S.PRESETS)
@pytest.mark.parametrize("noise", [0, 2])
def test_span_shapes(preset, noise):
    net = S.SPAN(scale=4, noise_channels=noise, **S.PRESETS[preset]).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, 9, 7))
    assert y.shape == (2, 3, 36, 28) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="LR grid only"):
        S.SPAN(grid="hr")


def test_span_inference_in_place_equals_the_training_graph():
    """Without autograd the blocks compute in place; the output is the same to the last bit, and a
    training step still gets gradients (the in-place path is never taken there)."""
    torch.manual_seed(0)
    net = S.SPAN(scale=4, **S.PRESETS["span48"])
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        fast = net(x)
    slow = net(x)
    assert torch.equal(fast, slow.detach())
    slow.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def ncnn_files(net: S.SPAN, fp16: set[str]) -> tuple[str, bytes]:
    """An ncnn .param/.bin pair of `net` laid out as the official export (names, order, tags)."""
    C = net.channels
    lines, data = [], bytearray()

    def conv(name, module, src, dst):
        w = module.weight.detach().numpy()
        k = module.kernel_size[0]
        pad = " 4=1" if k == 3 else ""
        lines.append(f"Convolution {name} 1 1 {src} {dst} 0={w.shape[0]} 1={k}{pad} 5=1 6={w.size}")
        if name in fp16:
            data.extend(struct.pack("<I", import_span.FP16_TAG))
            raw = w.astype("<f2").tobytes()
            data.extend(raw + b"\0" * (-len(raw) % 4))
        else:
            data.extend(struct.pack("<I", 0) + w.astype("<f4").tobytes())
        data.extend(module.bias.detach().numpy().astype("<f4").tobytes())

    lines.append("Input input.1 0 1 data")
    lines.append(f"MemoryData /Constant_output_0 0 1 mean 0=1 1=1 2={C}")
    data.extend(net.mean.numpy().astype("<f4").tobytes())
    lines.append("BinaryOp /Sub 2 1 data mean sub 0=1")
    lines.append("BinaryOp /Mul 1 1 sub mul 0=2 1=1 2=2.550000e+02")
    conv("/conv_1/eval_conv/Conv", net.head, "mul", "f0")
    for i, block in enumerate(net.blocks, 1):
        for j, c in enumerate((block.c1, block.c2, block.c3), 1):
            conv(f"/block_{i}/c{j}_r/eval_conv/Conv", c, "u", "v")
    conv("/conv_2/eval_conv/Conv", net.tail, "u", "t")
    lines.append("Concat /Concat 4 1 f0 t f1 a cat")
    conv("/conv_cat/Conv", net.fuse, "cat", "h")
    conv("/upsampler/upsampler.0/Conv", net.up, "h", "o")
    lines.append(f"PixelShuffle /upsampler/upsampler.1/DepthToSpace 1 1 o output 0={net.scale}")
    return "\n".join(["7767517", f"{len(lines)} {len(lines) + 8}", *lines]) + "\n", bytes(data)


def test_ncnn_round_trip_gives_the_same_network(tmp_path):
    torch.manual_seed(0)
    net = S.SPAN(width=8, blocks=2).eval()
    with torch.no_grad():
        net.mean.copy_(torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1))
    fp16 = {"/conv_1/eval_conv/Conv", "/block_2/c3_r/eval_conv/Conv", "/conv_cat/Conv"}  # odd sizes pad to 4 bytes
    param, data = ncnn_files(net, fp16)
    state, kwargs = import_span.convert(param, data)
    assert kwargs == dict(channels=3, scale=4, width=8, blocks=2, noise_channels=0, grid="lr")
    ref = net.state_dict()
    assert state.keys() == ref.keys()
    for k, v in ref.items():
        half = any(k.startswith(prefix) and k.endswith("weight") for prefix in ("head", "blocks.1.c3", "fuse"))
        expected = v.half().float() if half else v
        assert torch.equal(state[k].reshape(v.shape), expected), k
    import_span.save(tmp_path / "s.safetensors", state, kwargs, "bicubic", "test")
    model = checkpoint.load_generator(tmp_path / "s.safetensors")
    assert model.spec.family == "bicubic"
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        out = model(x)  # with Π: A ŷ = x
        assert model.net(x).shape == (1, 3, 24, 20)
    assert (model.A(out) - x).abs().max() < 1e-4


def test_ncnn_reader_refuses_what_it_cannot_account_for():
    torch.manual_seed(0)
    param, data = ncnn_files(S.SPAN(width=4, blocks=2), set())
    with pytest.raises(import_span.NcnnError, match="4 bytes of the .bin file left unread"):
        import_span.convert(param, data + b"\0" * 4)
    with pytest.raises(import_span.NcnnError, match="ends at byte"):
        import_span.convert(param, data[:-8])
    with pytest.raises(import_span.NcnnError, match="storage tag"):
        import_span.convert(param, data[:12] + struct.pack("<I", 0x000D4B38) + data[16:])  # after the 3 mean floats
    with pytest.raises(import_span.NcnnError, match="magic"):
        import_span.convert("7767516\n", data)
