"""ONNX export of a generator f (the network alone): any runtime can then upscale, and
`affsr project LR f.png --operator F` makes its output consistent (Π, box fit, rounding).

The graph takes x (B, C, h, w) float32 in [0, 1] — and z (B, nz, h, w) ~ N(0, I) for a stochastic
generator — with dynamic batch, height and width, and returns f (B, C, s·h, s·w). The operator the
weights were trained for is written into the model's metadata (metadata_props, the same keys as
a weights file) so that the consistency step can be told which A to use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from . import files
from .descriptor import Descriptor
from .errors import AffsrError
from .model import SRModel

CHECK_TOLERANCE = 1e-4  # max |onnxruntime − torch| on a random input, float32


class _F(nn.Module):
    """f with the noise as an explicit input: ONNX has no global RNG that would match torch's."""

    def __init__(self, net: nn.Module, noise: bool):
        super().__init__()
        self.net, self.noise = net, noise

    def forward(self, x, z=None):
        return self.net(x, z) if self.noise else self.net(x)


def example_inputs(
    model: Descriptor, h: int = 19, w: int = 23, batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, model.channels, h, w, generator=g)
    if model.noise_channels:
        return x, torch.randn(batch, model.noise_channels, h, w, generator=g)
    return (x,)


def export(
    model: SRModel | Descriptor, path: str | os.PathLike, opset: int = 18, overwrite: bool = False, verify: bool = True
) -> tuple[Path, float | None]:
    """Write f of `model` as an ONNX file, atomically, after checking it with onnxruntime (when
    installed and `verify`): (path, max |onnxruntime − torch|, None when not checked). ValueError for
    what cannot be exported or a file that does not agree with torch (nothing is then written)."""
    if isinstance(model, SRModel):
        if "channels" not in model.net_config["kwargs"]:
            raise AffsrError("only image generators can be exported (this one is the Swiss roll's MLP)")
        model = model.describe()
    if model.grid != "lr":
        raise AffsrError(
            "this generator computes on the HR grid from A⁺x, which depends on the image size; "
            "only LR-grid generators (every preset's default) can be exported"
        )
    try:
        import onnx

        if importlib.util.find_spec("onnxscript") is None:  # torch.onnx's exporter needs it
            raise ImportError
    except ImportError:
        raise AffsrError("ONNX export needs the onnx and onnxscript packages: pip install 'affsr[onnx]'") from None
    f = _F(model.net.float().eval(), bool(model.noise_channels))
    inputs = example_inputs(model)
    names = ["x", "z"][: len(inputs)]
    batch, h, w = torch.export.Dim("batch"), torch.export.Dim.AUTO, torch.export.Dim.AUTO
    shapes = [{0: batch, 2: h, 3: w}] * len(inputs)
    diff = None

    def write(tmp: Path):
        nonlocal diff
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # notes about optional torchvision ops
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    f,
                    inputs,
                    dynamic_shapes=shapes,
                    input_names=names,
                    output_names=["f"],
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
        finally:
            quiet.setLevel(level)
        proto = program.model_proto
        for key, value in {
            **model.spec.metadata(),
            "affsr.model": "generator f without Π; run `affsr project` for consistency",
            "affsr.inputs": ",".join(names),
        }.items():
            proto.metadata_props.add(key=key, value=str(value))
        onnx.save_model(proto, str(tmp))
        if verify:
            diff = check(model, tmp)
            if diff is not None and not diff <= CHECK_TOLERANCE:
                raise AffsrError(
                    f"the exported model differs from torch by {diff:.2g} (allowed {CHECK_TOLERANCE:g}); not written"
                )

    return files.atomic_write(path, write, overwrite), diff


def check(model: Descriptor, path: str | os.PathLike, h: int = 37, w: int = 29) -> float | None:
    """max |onnxruntime − torch| of f on a random input of a size the export never saw, or None
    when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(model, h, w, batch=1, seed=1)
    with torch.no_grad():
        ref = _F(model.net.float().eval(), bool(model.noise_channels))(*inputs).numpy()
    got = session.run(None, {n: t.numpy() for n, t in zip(["x", "z"], inputs)})[0]
    if got.shape != ref.shape:
        raise AffsrError(f"the exported model returned {got.shape}, torch {ref.shape}")
    diff = float(abs(got - ref).max())
    return diff if math.isfinite(diff) else float("inf")
