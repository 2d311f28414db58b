"""Denoiser and density priors (paper §3.3, §3.4): score estimates, causality, normalisation,
the ladder, and the Swiss roll's vector methods."""

import math

import pytest
import torch

from affsr_cli import checkpoint, objectives, swissroll
from affsr_cli import train as engine
from affsr_cli.config import TrainConfig
from affsr_cli.nets import MLPDenoiser, PixelCNN


def test_denoiser_score_matches_the_analytic_score_of_a_gaussian():
    """For y ~ N(0, Σ) the optimal DAE at noise σ has (f(ỹ) − ỹ)/σ² = −(Σ + σ²I)⁻¹ ỹ exactly."""
    torch.manual_seed(0)
    sigma = 0.5
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    chol = torch.linalg.cholesky(cov)
    obj = objectives.DenoiserObjective(
        MLPDenoiser(width=64), prior_steps=2000, total_steps=2000, rungs=1, sigma_max=sigma, sigma_min=sigma
    )
    opt = torch.optim.Adam(obj.critic.parameters(), 3e-3)
    for step in range(1500):
        assert obj.trains_critic(step)
        loss, _ = obj.critic_loss(None, torch.randn(512, 2) @ chol.T)
        opt.zero_grad()
        loss.backward()
        opt.step()
    y_noisy = torch.randn(2000, 2) @ torch.linalg.cholesky(cov + sigma**2 * torch.eye(2)).T
    with torch.no_grad():
        score = (obj.critic(y_noisy) - y_noisy) / sigma**2
    exact = -y_noisy @ torch.linalg.inv(cov + sigma**2 * torch.eye(2)).T
    rel = (score - exact).norm(dim=1).mean() / exact.norm(dim=1).mean()
    assert rel < 0.1, f"relative error of the score estimate {rel:.3f}"


def test_pixelcnn_is_causal():
    """The parameters for pixel j have zero gradient w.r.t. pixels j, j+1, … (raster order)."""
    torch.manual_seed(0)
    net = PixelCNN(channels=2, width=16, layers=3, mixture=3)
    H, W = 6, 7
    for r, c in [(0, 0), (2, 3), (5, 6), (3, 0)]:
        y = torch.rand(1, 2, H, W, requires_grad=True)
        logits, mu, log_s = net.params(y)
        (logits[..., r, c].sum() + mu[..., r, c].sum() + log_s[..., r, c].sum()).backward()
        g = y.grad[0].abs().sum(0)  # (H, W)
        order = torch.arange(H * W).view(H, W)
        j = r * W + c
        assert g[order >= j].max() == 0
        if j > 0:
            assert g[order < j].max() > 0  # it does see the past


def test_one_pixel_likelihood_integrates_to_one():
    torch.manual_seed(0)
    net = PixelCNN(channels=1, width=8, layers=2, mixture=5).double()
    with torch.no_grad():
        net.body[-1].bias.normal_(0, 1.0)  # a non-trivial mixture (scales up to e² or so: wide tails)
        v = torch.linspace(-400, 400, 800_001, dtype=torch.float64)
        y = v.view(-1, 1, 1, 1)
        density = net.log_prob_pixels(y).exp().flatten()
    integral = torch.trapezoid(density, v)
    assert abs(float(integral) - 1) < 1e-6


def test_dg_ladder_walks_decreasing_sigma():
    obj = objectives.DenoiserObjective(
        MLPDenoiser(width=8), prior_steps=8, total_steps=16, rungs=4, sigma_max=0.5, sigma_min=0.01
    )
    for step in range(8):
        assert obj.trains_critic(step) and not obj.trains_generator(step)
        obj.after_step(step + 1, {})
    assert len(obj.ladder) == 4 and len(obj.sigmas) == 4
    assert all(a > b for a, b in zip(obj.sigmas, obj.sigmas[1:])) and math.isclose(obj.sigmas[-1], 0.01)
    rungs = []
    for step in range(8, 16):
        assert not obj.trains_critic(step) and obj.trains_generator(step)
        rungs.append(obj.rung)
    assert rungs == [0, 0, 1, 1, 2, 2, 3, 3]
    assert not any(p.requires_grad for p in obj.critic.parameters())


class _Linear(torch.nn.Module):
    """A 'denoiser' f(ỹ) = a·ỹ, with a residual (a − 1)·ỹ that grows without bound, like a ReLU DAE
    extrapolating outside the data it saw."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a

    def forward(self, y):
        return self.a * y


def _dg_generator_phase(sigma: float, **kw) -> objectives.DenoiserObjective:
    obj = objectives.DenoiserObjective(
        MLPDenoiser(width=8), prior_steps=2, total_steps=4, rungs=1, sigma_max=sigma, sigma_min=sigma, **kw
    )
    for step in range(2):
        obj.trains_critic(step)
        obj.after_step(step + 1, {})
    assert obj.trains_generator(2) and obj.sigmas == [sigma]
    return obj


def test_dg_caps_the_pull_of_samples_far_outside_the_denoisers_data():
    """Samples whose residual exceeds clip·σ·√d are scaled down to that norm, the rest are untouched:
    the generator's gradient ∂ℓ/∂ŷ per sample is −residual/B."""
    sigma, B = 0.5, 4
    obj = _dg_generator_phase(sigma, clip=3.0, noisy=False)
    obj.critic = _Linear(2.0)  # residual = ŷ
    yhat = torch.tensor([[0.1, 0.2], [-0.3, 0.4], [100.0, 0.0], [0.0, -1e6]], requires_grad=True)
    loss, logs = obj.generator_loss(yhat, None)
    loss.backward()
    pull = -yhat.grad * B
    cap = 3.0 * sigma * math.sqrt(2)
    assert torch.allclose(pull[:2], yhat[:2].detach())
    assert torch.allclose(pull[2:].norm(dim=1), torch.full((2,), cap))
    assert torch.allclose(pull[2:] / cap, yhat[2:].detach() / yhat[2:].detach().norm(dim=1, keepdim=True))
    assert logs["score_clipped"] == 0.5


def test_dg_noisy_residual_is_unbiased_for_a_linear_denoiser():
    """Evaluated at ŷ + σε, the residual of f(ỹ) = a·ỹ is (a − 1)(ŷ + σε): its mean over ε is
    (a − 1)ŷ, the residual at ŷ itself, with spread (1 − a)·σ per coordinate."""
    torch.manual_seed(0)
    sigma, n = 0.3, 200_000
    obj = _dg_generator_phase(sigma, clip=1e9, noisy=True)
    obj.critic = _Linear(0.5)
    yhat = torch.tensor([[1.0, -2.0]]).repeat(n, 1).requires_grad_()
    obj.generator_loss(yhat, None)[0].backward()
    pull = -yhat.grad * n
    assert torch.allclose(pull.mean(0), -0.5 * yhat[0].detach(), atol=0.01)
    assert torch.allclose(pull.std(0), torch.full((2,), 0.5 * sigma), rtol=0.02)


def test_swissroll_kde_cross_entropy_and_map():
    """The KDE's H[q, p] is low on the noiseless roll and high off it; the brute-force MAP lies on
    the line Aŷ = x and on the roll (H within the paper's neighbourhood: 3.15)."""
    centres = swissroll.kde_centres(0, n=20_000)
    on = swissroll.sample(500, torch.Generator().manual_seed(1), sigma2=0.0, dtype=torch.float64)
    assert swissroll.cross_entropy(on, centres) < 3.5
    assert swissroll.cross_entropy(on + torch.tensor([0.6, 0.0], dtype=torch.float64), centres) > 5
    r = swissroll.evaluate(lambda x: swissroll.map_estimate(x, centres), 300, 0, centres)
    assert r["lr_mse"] < 1e-20 and 2.0 < r["cross_entropy"] < 3.5


def test_swissroll_log_kde_equals_the_sum_over_every_centre():
    """log_kde skips far cells of centres: its values are those of the plain sum over all of them, on the
    roll, between arms, at the rim and far off it (where the nearest centre is many cells away)."""
    centres = swissroll.kde_centres(3, n=5_000)
    g = torch.Generator().manual_seed(2)
    points = torch.cat(
        [
            swissroll.sample(300, g, dtype=torch.float64),  # on the roll, noisy
            torch.rand(300, 2, generator=g, dtype=torch.float64) * 24 - 12,  # between arms and beyond
            torch.randn(20, 2, generator=g, dtype=torch.float64) * 200,
        ]
    )  # far off: 10⁴–10⁶ nats
    h = swissroll.KDE_BANDWIDTH
    full = (
        torch.logsumexp(-torch.cdist(points, centres).square() / (2 * h * h), 1)
        - math.log(len(centres))
        - math.log(2 * math.pi * h * h)
    )
    fast = swissroll.log_kde(points, centres)
    assert torch.allclose(fast, full, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("method", ["affgan", "softgan", "affdg", "mse"])
def test_swissroll_methods(tmp_path, method):
    rec_steps = []

    class Rec(engine.Callbacks):
        def on_step(self, step, logs):
            rec_steps.append(logs)

    cfg = TrainConfig(
        data="swissroll", method=method, out=str(tmp_path / method), steps=4, batch_size=64, workers=0, log_every=1
    )
    out = engine.train(cfg, Rec())
    model = checkpoint.load_generator(out / "generator.safetensors")
    assert isinstance(model.spec, swissroll.AverageSpec)
    x = torch.linspace(-8, 8, 17).unsqueeze(1)
    yhat = model(x)
    assert yhat.shape == (17, 2)
    if method.startswith("aff"):
        assert (yhat.mean(1, keepdim=True) - x).abs().max() < 1e-5
    assert not list((tmp_path / method / "samples").iterdir())  # no image grids for vectors


def test_ll_needs_images(tmp_path):
    with pytest.raises(ValueError, match="needs images"):
        engine.train(TrainConfig(data="swissroll", method="affll", out=str(tmp_path / "r"), steps=2, workers=0))
