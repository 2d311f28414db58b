"""Other tools' super-resolution networks: a .safetensors file of any architecture spandrel (the
loader of chaiNNer and ComfyUI) recognises, run on our tiles, then made consistent by Π with the
operator the user names — their files do not say how the LR images they were trained on were made.

Only safetensors files are read (infer.Upscaler.load reads them with weights.load, which refuses
pickles unopened); spandrel gets the tensors, never the file. spandrel is an optional extra (`pip install 'affsr[foreign]'`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import weights
from .descriptor import Descriptor
from .errors import AffsrError
from .projection import OperatorSpec

# LR pixels of context per side that tiles must overlap for: the convolutional radius, at least
# RADIUS_MIN (attention windows have none) and at most RADIUS_CAP (a deep RRDB sums to ~350, far more
# than what its output depends on in practice; the cross-fade hides the rest)
RADIUS_MIN, RADIUS_CAP = 16, 32


def is_foreign(metadata: dict[str, str]) -> bool:
    """A safetensors file that is not an affsr checkpoint (those name their format)."""
    return not str(metadata.get("format", "")).startswith("affsr.")


class ForeignNet(nn.Module):
    """f(x) of a spandrel descriptor with our network's signature (x, z) -> f; the descriptor pads x to
    the architecture's size requirements, runs it and clamps to [0, 1]."""

    def __init__(self, descriptor):
        super().__init__()
        # registered, so .to() moves the weights the descriptor runs (in place) and copy.deepcopy() copies
        # the descriptor with the same copy of the network (one memo)
        self.model = descriptor.model
        self.descriptor = descriptor

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([self.descriptor(x[i : i + 1]) for i in range(x.shape[0])])  # descriptors take one image


def load(path, tensors: dict[str, torch.Tensor], family: str | None, boundary: str | None = None) -> Descriptor:
    """The Descriptor infer.Upscaler reads for the foreign network
    whose weights `tensors` were read from `path`, with A = the operator `family` at its own scale."""
    if not family:
        raise AffsrError(
            f"{path}: not an affsr checkpoint; another tool's network does not say how its LR images "
            "were made: pass --operator (bicubic for most: Real-ESRGAN, SwinIR and SPAN were trained on "
            "MATLAB/Pillow bicubic)"
        )
    try:
        import spandrel
    except ImportError as e:
        raise AffsrError(
            f"{path} is another tool's network: running it needs spandrel ({e}); pip install "
            "'affsr[foreign]' (with a CPU-only torch, torchvision from the PyTorch CPU index)"
        ) from None
    bad = weights.first_non_finite(tensors)
    if bad is not None:
        raise AffsrError(f"{path}: tensor {bad!r} holds NaN or infinite values; the weights are damaged")
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(tensors)
    except spandrel.UnsupportedModelError:
        raise AffsrError(
            f"{path}: neither an affsr checkpoint nor an architecture spandrel {spandrel.__version__} recognises"
        ) from None
    except (KeyError, RuntimeError, ValueError, AssertionError) as e:
        raise AffsrError(
            f"{path}: spandrel could not build its network ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''})"
        ) from None
    name = descriptor.architecture.name
    if (
        not isinstance(descriptor, spandrel.ImageModelDescriptor)
        or descriptor.purpose not in ("SR", "FaceSR")
        or descriptor.scale < 2
    ):
        raise AffsrError(
            f"{path}: a {name} network for {descriptor.purpose} at {descriptor.scale}×, not an upscaler of 2× or more"
        )
    if descriptor.input_channels != descriptor.output_channels or descriptor.input_channels not in (1, 3):
        raise AffsrError(
            f"{path}: a {name} network from {descriptor.input_channels} to {descriptor.output_channels} "
            "channels; only gray → gray and RGB → RGB can be made consistent"
        )
    spec = OperatorSpec(descriptor.scale, boundary=boundary, family=family.lower())
    # tiles start on the grid of its attention windows (SwinIR, HAT, Swin2SR pad internally, so spandrel's
    # size requirement does not show them) and of its size requirement
    window = getattr(descriptor.model, "window_size", 1)  # an attribute of some architectures only
    multiple = math.lcm(
        descriptor.size_requirements.multiple_of, window if isinstance(window, int) and window > 0 else 1
    )
    return Descriptor(
        net=ForeignNet(descriptor.eval()),
        spec=spec,
        channels=descriptor.input_channels,
        architecture=name,
        tile_multiple=multiple,
        radius_bounds=(RADIUS_MIN, RADIUS_CAP),
        supports_half=bool(descriptor.supports_half),
    )
