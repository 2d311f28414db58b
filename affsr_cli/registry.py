"""What ships with affsr: the bundled folders (`bundled`: the weights and the validation photos) and the
shipped weights, one entry each as torchvision's `Weights` (the file, what it was trained for, its
model-card figures, one line of documentation), with the default of `affsr upscale`, `affsr eval` and
the Python API. `--help`, the default, `affsr train`'s starting points, tests/test_shipped.py and the
check of the model card (weights/README.md) read this table: a retrain edits it and the card."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path


def bundled(folder: str) -> Path:
    """A folder that ships with the project (`weights`, `examples/val`): the source tree's for a
    checkout or an editable install, else the copy a wheel puts under <data>/share/affsr, <data>
    being the data path of the scheme it was installed with: the venv or prefix, the user base for
    `pip install --user` (~/.local), the target itself for `pip install --target`. <data> is the
    folder holding affsr_cli/ (--target) or one of the three above it (<data>/lib/pythonX.Y/site-packages,
    <data>/Lib/site-packages, <data>/lib/python), so the copy beside the running code is looked for
    first, then under the interpreter's data path, sys.prefix and the user base."""
    package = Path(__file__).resolve().parent
    source = package.parent / folder
    if source.is_dir():
        return source
    prefixes = list(package.parents)[:4]  # site-packages (or the --target folder) and the 3 above it
    prefixes += [Path(sysconfig.get_path("data")), Path(sys.prefix)]
    try:
        prefixes.append(Path(sysconfig.get_path("data", f"{os.name}_user")))
    except KeyError:  # no user scheme on this platform
        pass
    for prefix in prefixes:
        installed = prefix / "share" / "affsr" / folder
        if installed.is_dir():
            return installed
    return source


WEIGHTS_DIR = bundled("weights")  # the shipped files, named by stem
VALIDATION_SET = bundled("examples/val")  # the small bundled validation set (SOURCES.md there)


@dataclass(frozen=True)
class ShippedWeights:
    name: str  # the file's stem: `affsr upscale -w NAME`
    method: str  # affmse | affgan (objective × constraint)
    operator: str  # the family of the A it was trained for (OperatorSpec.family)
    taps: int  # that A's taps per axis at 4× (OperatorSpec.kernel_size)
    network: str  # the network's class in the file (nets.NETS)
    start: str  # what it was fine-tuned from (or converted from, unchanged)
    doc: str  # one line: --help and the model card
    # the card's figures: 12 val photos, each under its own A, Y, crop 4, as `affsr upscale` saves them
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"


SHIPPED = {
    w.name: w
    for w in (
        ShippedWeights(
            "affmse-x4",
            "affmse",
            "bicubic",
            16,
            "SPAN",
            "SPAN x4 ch52 (official, Apache-2.0)",
            "SPAN x4 fine-tuned with AffMSE for Pillow's bicubic: the most faithful fast file (+0.9 dB, softer)",
            {"psnr": 33.92, "ssim": 0.8837, "hf_ratio": 0.367, "lattice": 0.01, "niqe": 6.61},
        ),
        ShippedWeights(
            "affgan-x4",
            "affgan",
            "bicubic",
            16,
            "SPAN",
            "affmse-x4",
            "the AffGAN from affmse-x4: crisp edges, more invented detail (--texture: hair and pores, ~40× the time)",
            {"psnr": 33.04, "ssim": 0.8728, "hf_ratio": 0.783, "lattice": 0.11, "niqe": 5.40},
        ),
        ShippedWeights(
            "affmse-x4-dat",
            "affmse",
            "bicubic",
            16,
            "DAT",
            "DAT-light x4 (official, Apache-2.0), not fine-tuned",
            "DAT-light x4 with Π for Pillow's bicubic: +0.2 dB over affmse-x4, 28× slower",
            {"psnr": 34.12, "ssim": 0.8876, "hf_ratio": 0.347, "lattice": 0.01, "niqe": 6.57},
        ),
        ShippedWeights(
            "affmse-x4-gaussian",
            "affmse",
            "gaussian",
            9,
            "SPAN",
            "SPAN x4 ch52 (official, Apache-2.0)",
            "AffMSE for the paper's Gaussian A (σ 1.5)",
            {"psnr": 33.70, "ssim": 0.8813, "hf_ratio": 0.356, "lattice": 0.01, "niqe": 6.43},
        ),
        ShippedWeights(
            "affmse-x4-gaussian-dat",
            "affmse",
            "gaussian",
            9,
            "DAT",
            "affmse-x4-dat",
            "DAT-light fine-tuned with AffMSE for the Gaussian A: +0.09 dB over affmse-x4-gaussian, 28× slower",
            {"psnr": 33.76, "ssim": 0.8834, "hf_ratio": 0.303, "lattice": 0.01, "niqe": 6.26},
        ),
        ShippedWeights(
            "affgan-x4-gaussian",
            "affgan",
            "gaussian",
            9,
            "SPAN",
            "affmse-x4-gaussian",
            "the AffGAN for the paper's Gaussian A",
            {"psnr": 32.81, "ssim": 0.8699, "hf_ratio": 0.783, "lattice": 0.28, "niqe": 5.51},
        ),
    )
}
DEFAULT = SHIPPED["affgan-x4"]  # of upscale, eval and the API (weights/README.md, "The image-wide grid")
# `affsr upscale --texture`: the AffGAN's ×8 self-ensemble with Real-ESRGAN's detail where it draws more,
# within ±12 levels (weights/README.md, "Bounded detail"); the weights by the family of A
TEXTURE = {"ensemble": True, "detail": "realesrgan-x4plus", "detail_mode": "more", "detail_limit": 12.0}
TEXTURE_WEIGHTS = {"bicubic": "affgan-x4", "gaussian": "affgan-x4-gaussian"}


def photos_init(family: str) -> str:
    """The shipped AffMSE a photos run of `affsr train` starts from: the one of its operator family, else
    the bicubic one."""
    return next((w.name for w in SHIPPED.values() if w.method == "affmse" and w.operator == family), "affmse-x4")


def weights_help() -> str:
    """The shipped names for `--weights`' help, the default first."""
    others = [w for w in SHIPPED.values() if w is not DEFAULT]
    return f"default {DEFAULT.name}, {DEFAULT.doc}; " + "; ".join(f"{w.name}: {w.doc}" for w in others)
