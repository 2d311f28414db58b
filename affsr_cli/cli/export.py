"""`affsr export`: a generator f as an ONNX file, checked against torch with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import out


def export(
    weights: str = typer.Argument(
        ...,
        show_default=False,
        help="Weights: a shipped name (affgan-x4, affmse-x4), a "
        "generator.safetensors or a run folder, or hf://owner/repo/file.safetensors.",
    ),
    output: Path = typer.Option(..., "-o", "--output", show_default=False, help="The .onnx file to write."),
    opset: int = typer.Option(18, min=18, max=23, help="ONNX opset version."),
    check: bool = typer.Option(
        True,
        help="Compare onnxruntime's output with torch's on a random input (when "
        "onnxruntime is installed); a file that differs by more than 1e-4 is not written.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
):
    """Export the generator f (without Π) to ONNX, dynamic in batch, height and width. Inputs: x (B, C, h, w)
    in [0, 1] (and z (B, nz, h, w) ~ N(0, I) for a stochastic generator); output: f (B, C, s·h, s·w).
    Make a runtime's output consistent afterwards with `affsr project LR F --operator FAMILY` (the operator
    is in the file's metadata)."""
    from .. import checkpoint
    from .. import export as engine

    path = checkpoint.resolve_weights(weights)
    model = checkpoint.load_generator(path)
    written, diff = engine.export(model, output, opset, overwrite, check)
    params = sum(p.numel() for p in model.net.parameters())
    checked = (
        f"onnxruntime agrees with torch to {diff:.1e}"
        if diff is not None
        else "not checked (onnxruntime is not installed)"
        if check
        else "not checked (--no-check)"
    )
    out.print(
        f"wrote {written}: f of {model.net_config['class']} ({params:,} parameters), A = {model.spec.describe()}; "
        f"{checked}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
