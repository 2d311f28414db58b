"""affsr export: the ONNX graph of f agrees with torch (onnxruntime, ≤ 1e-4) at sizes and batch sizes it
was not traced at, carries the operator in its metadata, and refuses what it cannot export."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from affsr_cli import checkpoint, export, methods, swissroll
from affsr_cli.projection import OperatorSpec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = methods.build_generator("tiny", OperatorSpec(4, family="bicubic"), "aff")
    path, diff = export.export(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return model, path, diff


def _agrees_with_torch(path, net, shapes):
    """onnxruntime's f of the file at each input shape (B, 3, h, w): (B, 3, 4h, 4w), within 1e-4 of torch's."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = net(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        assert got.shape == ref.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        assert np.abs(got - ref).max() <= 1e-4


def test_onnxruntime_matches_torch_at_other_sizes_and_batches(exported):
    model, path, diff = exported
    assert diff is not None and diff <= export.CHECK_TOLERANCE
    _agrees_with_torch(path, model.net, [(1, 3, 8, 8), (3, 3, 31, 17), (1, 3, 64, 48)])


def test_the_operator_is_in_the_metadata(exported):
    model, path, _ = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert OperatorSpec.from_metadata(meta) == model.spec
    assert meta["affsr.inputs"] == "x" and "affsr project" in meta["affsr.model"]


def test_a_stochastic_generator_takes_z_as_an_input(tmp_path):
    model = methods.build_generator("tiny", OperatorSpec(4), "aff", noise_channels=2)
    path, diff = export.export(model, tmp_path / "noise.onnx")
    assert diff <= export.CHECK_TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "z"]
    x, z = torch.rand(1, 3, 9, 11), torch.randn(1, 2, 9, 11)
    with torch.no_grad():
        ref = model.net(x, z).numpy()
    assert np.abs(session.run(None, {"x": x.numpy(), "z": z.numpy()})[0] - ref).max() <= 1e-4


def test_what_cannot_be_exported_is_refused(tmp_path):
    hr = methods.build_generator("texture", OperatorSpec(4), "aff", grid="hr")
    with pytest.raises(ValueError, match="HR grid"):
        export.export(hr, tmp_path / "hr.onnx")
    mlp = methods.build_generator("mlp", swissroll.AverageSpec(), "aff")
    with pytest.raises(ValueError, match="Swiss roll"):
        export.export(mlp, tmp_path / "mlp.onnx")
    assert not list(tmp_path.iterdir())


def test_a_file_that_disagrees_is_not_written(tmp_path, monkeypatch):
    model = methods.build_generator("tiny", OperatorSpec(4), "aff")
    monkeypatch.setattr(export, "check", lambda m, p: 0.5)
    with pytest.raises(ValueError, match="differs from torch by 0.5"):
        export.export(model, tmp_path / "bad.onnx")
    assert not list(tmp_path.iterdir())  # no file, no temporary


def test_cli_export_and_its_refusals(tmp_path):
    model = methods.build_generator("tiny", OperatorSpec(4, family="area"), "aff")
    w = checkpoint.save_generator(tmp_path / "g.safetensors", model)
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "affsr_cli", "export", *map(str, a)],
        capture_output=True,  # noqa: E731
        text=True,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )
    r = run(w, "-o", tmp_path / "g.onnx")
    assert r.returncode == 0 and "agrees with torch" in r.stdout and "area" in r.stdout, r.stderr
    before = (tmp_path / "g.onnx").read_bytes()
    r = run(w, "-o", tmp_path / "g.onnx")
    assert r.returncode == 2 and "--overwrite" in r.stderr and (tmp_path / "g.onnx").read_bytes() == before
    (tmp_path / "x.pt").write_bytes(b"\x80\x04K\x01.")
    r = run(tmp_path / "x.pt", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "pickle" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_window_attention_generator_exports_at_any_size(tmp_path):
    """DAT pads to its windows and masks its shifted windows from the traced sizes: the graph must stay
    dynamic (no size baked in, no cached mask keyed by a traced size) and agree at sizes that pad
    differently, one smaller than a window among them."""
    from affsr_cli.model import SRModel

    torch.manual_seed(0)
    kwargs = dict(width=16, blocks=2, groups=1, heads=2, window=[8, 32], hidden=16, channels=3, scale=4)
    model = SRModel({"class": "DAT", "kwargs": kwargs}, OperatorSpec(4, family="bicubic"), "aff")
    path, diff = export.export(model, tmp_path / "dat.onnx")
    assert diff is not None and diff <= export.CHECK_TOLERANCE
    _agrees_with_torch(path, model.net, [(1, 3, 3, 5), (2, 3, 16, 40), (1, 3, 37, 10)])
