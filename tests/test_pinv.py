"""The fitted local A⁺ of App. B: convergence, closeness to the exact A⁺, file round trip."""

import os
import pickle
import stat

import pytest
import torch

from affsr_cli import files, weights
from affsr_cli import pinv as P
from affsr_cli.downsample import Downsample
from affsr_cli.projection import ExactPinv, OperatorSpec, Projection


@pytest.fixture(scope="module")
def fitted():
    return P.fit_local_pinv(OperatorSpec())


def test_default_fit_converges(fitted):
    B, rep = fitted
    assert rep.l1 + rep.l2 <= 1e-12  # paper App. B: 1e-12 … 1e-8
    assert rep.max_penrose <= 1e-12
    c = P.consistency_report(B)
    assert c["consistency_fitted_interior"] <= 1e-12
    assert c["consistency_exact"] <= 1e-12 and c["consistency_exact_float32"] <= 1e-5


def test_local_kernels_reproduce_the_exact_impulse_response():
    """The m×m kernel layout: B built from the exact A⁺ equals A⁺ on its support."""
    spec = OperatorSpec(boundary="circular")
    n, s, m = P.FIT_LR_SIZE, spec.scale, 5
    B = P.LocalPinv(spec, m, P.truncated_exact(spec, m))
    delta = torch.zeros(1, 1, n, n, dtype=torch.float64)
    delta[..., 7, 9] = 1
    exact = ExactPinv(Downsample(spec))(delta)[0, 0]
    local = B(delta)[0, 0]
    support = torch.zeros_like(exact, dtype=torch.bool)
    support[s * 5 : s * 10, s * 7 : s * 12] = True  # LR rows 7±2, columns 9±2
    assert torch.allclose(local[support], exact[support], atol=1e-15)
    assert local[~support].abs().max() == 0


@pytest.mark.parametrize("sigma, tol", [(0.8, 1e-5), (1.0, 1e-3), (1.5, 0.1)])
def test_fitted_is_close_to_exact(sigma, tol):
    """Closeness to A⁺ shrinks with σ (README "Choosing σ"); the fit is exact in the interior always."""
    spec = OperatorSpec(sigma=sigma)
    B, rep = P.fit_local_pinv(spec)
    assert rep.distance_to_exact <= tol
    assert rep.l1 + rep.l2 <= 1e-12
    # applied to an image, the fitted and exact projections agree away from the borders
    A = Downsample(spec)
    g = torch.Generator().manual_seed(0)
    x, f = (
        torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64),
        torch.rand(1, 1, 96, 96, generator=g, dtype=torch.float64),
    )
    diff = (Projection(A, B)(f, x) - Projection(A)(f, x))[..., 24:-24, 24:-24]
    assert diff.abs().max() <= 30 * tol


def test_trainable_local_pinv_gets_gradients(fitted):
    B, _ = fitted
    T = P.LocalPinv(B.spec, B.size, B.weight.detach(), trainable=True)
    A = Downsample(B.spec)
    x, f = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 32, 32, dtype=torch.float64)
    Projection(A, T)(f, x).square().sum().backward()
    assert T.weight.grad is not None and T.weight.grad.abs().sum() > 0
    assert not B.weight.requires_grad


def test_file_round_trip(fitted, tmp_path):
    B, rep = fitted
    path = tmp_path / "pinv.safetensors"
    P.save(path, B, rep)
    B2 = P.load(path)
    assert B2.spec == B.spec and B2.size == B.size
    assert torch.equal(B2.weight, B.weight)
    tensors, meta = weights.load(path)
    # another program can rebuild A from the file alone
    assert torch.equal(tensors["A.kernel"], torch.outer(tensors["A.taps"], tensors["A.taps"]))
    assert torch.equal(tensors["A.taps"], OperatorSpec.from_metadata(meta).taps())
    for key in ("scale", "sigma", "kernel_size", "boundary", "alignment", "tap_offset", "size", "layout", "l1", "l2"):
        assert key in meta
    with pytest.raises(FileExistsError):
        P.save(path, B, rep)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


class _Bomb:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Bomb.marker),))


def test_pickles_and_corrupt_files_are_refused(tmp_path):
    _Bomb.marker = str(tmp_path / "unpickled")
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps(_Bomb()))
    zipped = tmp_path / "zipped.safetensors"
    torch.save({"x": _Bomb()}, zipped)
    for path in (raw, zipped):
        with pytest.raises(ValueError, match="pickle"):
            P.load(path)
    assert not (tmp_path / "unpickled").exists()
    empty, junk = tmp_path / "empty.safetensors", tmp_path / "junk.safetensors"
    empty.write_bytes(b"")
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match="empty"):
        P.load(empty)
    with pytest.raises(ValueError, match="not a valid safetensors"):
        P.load(junk)
    other = tmp_path / "other.safetensors"
    weights.save_atomic(other, {"w": torch.zeros(2)}, {"format": "something-else"})
    with pytest.raises(ValueError, match="not an affsr A⁺ file"):
        P.load(other)


@pytest.mark.parametrize("pad", [0, 100])
def test_valid_files_whose_header_length_starts_with_the_pickle_byte_load(tmp_path, pad):
    """A safetensors header length ≡ 128 (mod 256) puts 0x80, a pickle's first byte, first in the
    file; such files are valid and must load (a training state was once refused this way)."""
    found = None
    for n in range(300):  # grow the metadata until the header length's low byte is 0x80
        path = tmp_path / f"s{n}.safetensors"
        weights.save_atomic(path, {"w": torch.arange(3.0)}, {"note": "x" * (pad + n)})
        if path.read_bytes()[0] == 0x80:
            found = path
            break
        path.unlink()
    assert found is not None
    tensors, meta = weights.load(found)
    assert torch.equal(tensors["w"], torch.arange(3.0)) and meta["note"].startswith("x")


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files and safetensors recreates its file with 0600: both end as 0666 & ~umask."""
    umask = os.umask(0o022)
    try:
        st = weights.save_atomic(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {})
        txt = files.atomic_write(tmp_path / "c.json", lambda tmp: tmp.write_text("{}"))
        assert stat.S_IMODE(st.stat().st_mode) == stat.S_IMODE(txt.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


def test_absurd_sizes_are_refused_before_allocating(monkeypatch):
    """`pinv` with a huge A⁺ support allocated ~30 GB and crashed (issue 19 §7): the Jacobian's size is
    estimated first and refused in one line."""
    from affsr_cli import device

    assert P.jacobian_bytes(16, 31) > 1000 * 2**30 > P.jacobian_bytes(4, 5)
    monkeypatch.setattr(device, "available_memory", lambda device: 2**30)
    with pytest.raises(ValueError, match="needs about .* GB for its Gauss–Newton Jacobian and 1.0 GB are free"):
        P.fit_local_pinv(OperatorSpec(scale=8), 15)
