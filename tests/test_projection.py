"""A, the exact A⁺ and Π: linearity, exactness at every pixel, alignment, gradients."""

import pytest
import torch

from affsr_cli import gram
from affsr_cli.downsample import BOUNDARIES, CACHE_SIZE, Downsample, boundary_index
from affsr_cli.projection import AffineProjected, ExactPinv, OperatorSpec, Projection, project

SIZES = [(37, 53), (5, 3), (1, 1), (2, 7)]


def rand(*shape, dtype=torch.float64, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("taps", ["default", "fewest", "most"])
def test_adjoint_and_matrix(boundary, scale, taps):
    """Aᵀ is A's exact transpose for every boundary and kernel length (k = s … 4s + 1: the reach beyond
    the borders that Aᵀ folds back goes from 0 to 2s pixels)."""
    k = {"default": None, "fewest": scale, "most": 4 * scale + 1}[taps]
    A = Downsample(OperatorSpec.for_scale(scale, k, boundary=boundary))
    for h, w in [(6, 5), (1, 2)]:
        y, r = rand(2, 3, scale * h, scale * w, seed=1), rand(2, 3, h, w, seed=2)
        assert torch.allclose((A(y) * r).sum(), (y * A.adjoint(r)).sum(), rtol=1e-12, atol=1e-12)
        # the separable dense form A_h Y A_wᵀ is the same operator
        assert torch.allclose(A.matrix(h) @ y @ A.matrix(w).T, A(y), atol=1e-14)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("hw", SIZES)
def test_exact_consistency_every_pixel(boundary, scale, hw):
    A = Downsample(OperatorSpec.for_scale(scale, boundary=boundary))
    P = Projection(A)
    h, w = hw
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        x, f = rand(2, 3, h, w, dtype=dtype, seed=3), rand(2, 3, scale * h, scale * w, dtype=dtype, seed=4)
        yhat = P(f, x)
        assert yhat.dtype == dtype and yhat.shape == f.shape
        assert (A(yhat) - x).abs().max() <= tol


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_penrose_conditions_and_idempotence(boundary):
    A = Downsample(OperatorSpec(boundary=boundary))
    Ap = ExactPinv(A)
    y, x, z = rand(1, 2, 44, 36, seed=5), rand(1, 2, 11, 9, seed=6), rand(1, 2, 44, 36, seed=7)
    assert torch.allclose(A(Ap(A(y))), A(y), atol=1e-13)  # A A⁺ A = A
    assert torch.allclose(Ap(A(Ap(x))), Ap(x), atol=1e-13)  # A⁺ A A⁺ = A⁺
    # A⁺A is symmetric (Moore-Penrose, not just any generalised inverse)
    assert torch.allclose((Ap(A(y)) * z).sum(), (y * Ap(A(z))).sum(), rtol=1e-12)
    P = Projection(A)
    f = rand(1, 2, 44, 36, seed=8)
    assert torch.allclose(P(P(f, x), x), P(f, x), atol=1e-13)
    # Π leaves consistent images alone
    consistent = P(f, x)
    assert torch.allclose(P(consistent, A(consistent)), consistent, atol=1e-13)


def test_constant_image_and_alignment():
    """Weights sum to 1 (borders too), and LR pixel i sits on HR coordinate s·i + (s−1)/2."""
    for scale in (2, 3, 4, 8):
        spec = OperatorSpec.for_scale(scale)
        A = Downsample(spec)
        const = torch.full((1, 1, 8 * scale, 8 * scale), 0.3, dtype=torch.float64)
        assert torch.allclose(A(const), torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64), atol=1e-15)
        ramp = torch.arange(16 * scale, dtype=torch.float64).expand(1, 1, 16 * scale, 16 * scale)
        centres = A(ramp)[0, 0, 0, 4:12]  # interior LR pixels along a row
        expected = scale * torch.arange(4, 12, dtype=torch.float64) + (scale - 1) / 2
        assert (centres - expected).abs().max() < 0.025  # a k-tap window of the other parity than s shifts it slightly
    taps = OperatorSpec().taps()
    assert taps.shape == (9,) and abs(float(taps.sum()) - 1) < 1e-15


def test_boundary_index_conventions():
    i = torch.arange(-3, 7)
    assert boundary_index(i, 4, "symmetric").tolist() == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    assert boundary_index(i, 4, "reflect").tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert boundary_index(i, 4, "replicate").tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]
    assert boundary_index(i, 4, "circular").tolist() == [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]


def test_gradient_is_null_space_projection():
    """App. B.2: ∂L/∂f through Π is (I − A⁺A) ∂L/∂ŷ, and it downsamples to zero."""
    A = Downsample(OperatorSpec())
    P, Ap = Projection(A), ExactPinv(A)
    x, f = rand(1, 3, 9, 7, seed=9), rand(1, 3, 36, 28, seed=10).requires_grad_()
    target = rand(1, 3, 36, 28, seed=11)
    loss = ((P(f, x) - target) ** 3).sum()
    (grad,) = torch.autograd.grad(loss, f)
    g = 3 * (P(f, x) - target).detach() ** 2  # unconstrained gradient ∂L/∂ŷ
    assert torch.allclose(grad, g - Ap(A(g)), atol=1e-12)
    assert A(grad).abs().max() < 1e-12


def test_hand_written_backward_matches_autograd():
    """Π's custom backward (exact A⁺) equals autograd through the plain formula, for f and x."""
    A = Downsample(OperatorSpec())
    Ap = ExactPinv(A)
    f, x = rand(2, 3, 20, 28, seed=12).requires_grad_(), rand(2, 3, 5, 7, seed=13).requires_grad_()
    g = rand(2, 3, 20, 28, seed=14)
    fast = torch.autograd.grad((Projection(A)(f, x) * g).sum(), (f, x))
    plain = torch.autograd.grad(((f - Ap(A(f) - x)) * g).sum(), (f, x))
    for a, b in zip(fast, plain):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda f, x: Projection(A)(f, x),
        (f[:1, :1, :8, :8].detach().requires_grad_(), x[:1, :1, :2, :2].detach().requires_grad_()),
    )


def test_affine_projected_wraps_a_network_and_trains_it():
    A = Downsample(OperatorSpec())
    net = torch.nn.Sequential(
        torch.nn.Upsample(scale_factor=4), torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Sigmoid()
    )
    model = AffineProjected(net, Projection(A))
    x = rand(2, 3, 6, 5, dtype=torch.float32)
    yhat = model(x)
    assert yhat.shape == (2, 3, 24, 20) and (A(yhat) - x).abs().max() < 1e-5
    yhat.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_half_precision_is_projected_in_float32_and_stays_float32():
    """Under bf16 autocast (CUDA training) f arrives in bfloat16: ŷ must come back in float32, since
    cast back to bfloat16 it would miss A ŷ = x by ~1e-3 (it did, before)."""
    A = Downsample(OperatorSpec())
    x = rand(1, 3, 8, 8, dtype=torch.float32)
    f = rand(1, 3, 32, 32, dtype=torch.float32).bfloat16()
    for xin in (x, x.bfloat16()):
        yhat = Projection(A)(f, xin)
        assert yhat.dtype == torch.float32
        assert (A(yhat) - xin.float()).abs().max() <= 1e-5
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    with torch.autocast("cpu", torch.bfloat16):
        out = net(f.float())
        assert out.dtype == torch.bfloat16
        yhat = Projection(A)(out, x)
    assert yhat.dtype == torch.float32 and (A(yhat) - x).abs().max() <= 1e-5
    assert Projection(A)(f.double(), x).dtype == torch.float64  # the caller's higher precision is kept


def test_caches_keep_a_bounded_number_of_sizes():
    A = Downsample(OperatorSpec())
    P = Projection(A)
    for n in range(1, 3 * CACHE_SIZE):
        x = rand(1, 1, n, 2, seed=n)
        assert (A(P(rand(1, 1, 4 * n, 8, seed=n), x)) - x).abs().max() <= 1e-12
    assert len(A._index_cache) <= CACHE_SIZE and len(P.pinv._gram_inv) <= CACHE_SIZE
    assert (3 * CACHE_SIZE - 1, "cpu") in A._index_cache  # the newest are kept


def test_project_in_place_equals_out_of_place():
    A = Downsample(OperatorSpec.for_scale(3))
    Ap = ExactPinv(A)
    x, f = rand(2, 3, 7, 5, seed=1), rand(2, 3, 21, 15, seed=2)
    out = project(f, x, A, Ap)
    g = f.clone()
    assert project(g, x, A, Ap, inplace=True) is g and torch.equal(g, out)
    assert torch.equal(out, Projection(A)(f, x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    A = Downsample(OperatorSpec())
    P = Projection(A)
    x, f = rand(1, 3, 37, 53, dtype=torch.float32), rand(1, 3, 148, 212, dtype=torch.float32)
    on_gpu = Projection(Downsample(OperatorSpec()).cuda())(f.cuda(), x.cuda()).cpu()
    assert torch.allclose(on_gpu, P(f, x), atol=1e-5)


def test_bad_operator_arguments():
    for kwargs, words in [
        ({"scale": 0}, "scale"),
        ({"scale": 4, "sigma": 0.0}, "sigma"),
        ({"scale": 4, "sigma": -1.0}, "sigma"),
        ({"scale": 4, "kernel_size": 3}, "kernel size"),
        ({"scale": 4, "boundary": "wrap"}, "boundary"),
    ]:
        with pytest.raises(ValueError, match=words):
            OperatorSpec.for_scale(**kwargs)
    with pytest.raises(ValueError, match="multiple of the scale"):
        Downsample(OperatorSpec())(torch.zeros(1, 1, 10, 12))


@pytest.mark.parametrize("family", ["gaussian", "bicubic", "lanczos3", "area"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("scale", [2, 3, 8])
def test_banded_and_circulant_solvers_equal_the_dense_inverse(monkeypatch, family, boundary, scale):
    """The long-side solvers (block Cholesky of the banded Gram, FFT of the circulant one) give (A₁A₁ᵀ)⁻¹r as
    the dense inverse does, borders (folded, truncated, wrapped) included; forced here onto short sides."""
    import affsr_cli.projection as P

    monkeypatch.setattr(P, "DENSE_MAX", 4)
    monkeypatch.setattr(gram, "BLOCK", 8)
    A = Downsample(OperatorSpec(scale, boundary=boundary, family=family))
    Ap = ExactPinv(A)
    for n in (9, 17, 40, 61):
        M = A.matrix(n)
        exact = torch.linalg.inv(M @ M.T)
        solver = Ap.gram_solver(n, torch.float64, "cpu")
        assert not isinstance(solver, gram.DenseGram) or 2 * A.gram_band(n)[1] + 1 >= n
        r = rand(n, 3, seed=n)
        assert (solver.solve(r, -2) - exact @ r).abs().max() <= 1e-11
        assert (solver.solve(r.T.contiguous(), -1) - r.T @ exact).abs().max() <= 1e-11
        x, f = rand(2, n, 5, seed=n + 1), rand(2, scale * n, 5 * scale, seed=n + 2)
        assert (A(Projection(A)(f, x)) - x).abs().max() <= 1e-12


@pytest.mark.parametrize("boundary", ["pil", "symmetric", "circular"])
def test_a_long_thin_image_costs_what_its_pixels_cost(boundary):
    """A 1 × n image is projected exactly with O(n) numbers kept for its long side (a dense (A₁A₁ᵀ)⁻¹ held n²:
    a 1 × 20000 PNG asked for 12.8 GB). Here n = 3000: n² would be 9 M numbers, the bound is 100·n."""
    A = Downsample(OperatorSpec(4, family="bicubic", boundary=boundary))
    P = Projection(A)
    n = 3000
    x, f = rand(3, 1, n, dtype=torch.float32, seed=1), rand(3, 4, 4 * n, dtype=torch.float32, seed=2)
    assert (A(P(f, x)) - x).abs().max() <= 1e-5
    solver = P.pinv.gram_solver(n, torch.float32, "cpu")
    held = sum(v.numel() for v in vars(solver).values() if isinstance(v, torch.Tensor))
    assert held <= 100 * n
    x64, f64 = x.double(), f.double()
    assert (A(P(f64, x64)) - x64).abs().max() <= 1e-12
