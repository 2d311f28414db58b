"""Losses: pixel objectives, the GAN losses of eq. 10 from logits, and instance noise (App. C)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .errors import AffsrError


def mse(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (yhat - y).pow(2).mean()


def mae(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (yhat - y).abs().mean()


def phase_pattern(img: torch.Tensor, scale: int, block: int) -> torch.Tensor:
    """The period-s pattern of each block×block block of img (B, C, H, W): the mean over the block's
    cells of each of the s×s pixel phases, less their mean, (B, C, H/block, s, W/block, s). An s-pixel
    lattice is exactly what this keeps; content averages out over the (block/s)² cells. H and W are
    cut to multiples of `block` (a multiple of s)."""
    B, C, H, W = img.shape
    n = block // scale
    img = img[..., : H // block * block, : W // block * block]
    p = img.reshape(B, C, H // block, n, scale, W // block, n, scale).mean((3, 6))
    return p - p.mean((3, 5), keepdim=True)


def pattern_difference(yhat: torch.Tensor, y: torch.Tensor, scale: int, block: int = 0) -> torch.Tensor:
    """phase_pattern(ŷ) − phase_pattern(y) with blocks of 8·s by default: (B, C, H/block, s, W/block, s)."""
    block = block or 8 * scale
    return phase_pattern(yhat, scale, block) - phase_pattern(y, scale, block)


def lattice(yhat: torch.Tensor, y: torch.Tensor, scale: int, block: int = 0) -> torch.Tensor:
    """Mean squared difference of the blockwise period-s patterns of ŷ and y (block 8·s by default):
    zero unless ŷ has more (or another) s-pixel grid than the real image in some block."""
    return pattern_difference(yhat, y, scale, block).pow(2).mean()


def coherent_grid(yhat: torch.Tensor, y: torch.Tensor, scale: int, block: int = 0) -> torch.Tensor:
    """Squared difference of the period-s patterns of ŷ and y averaged over every block of the batch
    (block 8·s by default): the grid that stays at the same phase of the LR pixels everywhere, which
    the `lattice` metric counts and the eye sees on flat areas. Texture's own period-s content has a
    random phase from block to block and averages out, so this term leaves it alone (`lattice`, held
    block by block, fights it)."""
    return pattern_difference(yhat, y, scale, block).mean((0, 2, 4)).pow(2).mean()


def halo(yhat: torch.Tensor, y: torch.Tensor, size: int = 5) -> torch.Tensor:
    """Mean squared excursion of ŷ outside the range of y over the size×size neighbourhood of each pixel:
    (min y − ŷ)₊² + (ŷ − max y)₊². Zero for any detail drawn within the photo's local range; it counts
    the dark rings and bright halos that over-sharpening draws beside edges and points and the photo
    does not have."""
    pad = size // 2
    hi = F.max_pool2d(y, size, 1, pad)
    lo = -F.max_pool2d(-y, size, 1, pad)
    return (F.relu(lo - yhat).pow(2) + F.relu(yhat - hi).pow(2)).mean()


TEXTURE_FILTERS, TEXTURE_TAPS = 32, 5  # the fixed random filter bank of `texture`: filters per scale, their side


@functools.lru_cache(maxsize=4)
def texture_bank(channels: int) -> torch.Tensor:
    """(TEXTURE_FILTERS, channels, k, k) fixed random filters (seed 0), each of zero mean (blind to flat
    colour) and unit norm: the same bank in every run, so the term is reproducible and resumable."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(TEXTURE_FILTERS, channels, TEXTURE_TAPS, TEXTURE_TAPS, generator=g, dtype=torch.float64)
    w = w - w.mean((1, 2, 3), keepdim=True)
    return (w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).float()


def block_gram(feat: torch.Tensor, block: int) -> torch.Tensor:
    """(B, C, H, W) features -> (B, blocks, C, C): the Gram matrix F Fᵀ / block² of every block×block
    block (H and W cut to multiples of block): which filters respond together, not where."""
    B, C, H, W = feat.shape
    f = feat[..., : H // block * block, : W // block * block].reshape(B, C, H // block, block, W // block, block)
    f = f.permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C, block * block)
    return f @ f.transpose(-1, -2) / (block * block)


def texture(yhat: torch.Tensor, y: torch.Tensor, block: int = 16) -> torch.Tensor:
    """Mean squared difference of the blockwise Gram matrices of ŷ's and y's responses (ReLU) to a fixed
    bank of random filters, at the image's scale and at half of it (block×block blocks of each): the
    local texture statistics of EnhanceNet's texture loss (Sajjadi et al., ICCV 2017), with random
    filters in place of VGG's, which carry texture too (Ustyuzhaninov et al., ICLR 2017). It does not
    care where in a block the texture sits, so detail whose phase x does not fix is not averaged away
    as under MSE; it asks for fur where y has fur and for flat where y is flat."""
    w = texture_bank(y.shape[1]).to(y)
    loss = yhat.new_zeros(())
    for a, b in ((yhat, y), (F.avg_pool2d(yhat, 2), F.avg_pool2d(y, 2))):
        ga, gb = (block_gram(F.relu(F.conv2d(t, w)), block) for t in (a, b))
        loss = loss + (ga - gb).pow(2).mean()
    return loss


def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """Logistic regression of real (label 1) against generated (label 0): −log D(y) − log(1 − D(ŷ))."""
    return F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()


def generator_loss(logit_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 10: −log(D/(1 − D)) = −logit, an estimate of KL[q‖p] (App. A); exact from logits."""
    return -logit_fake.mean()


def relativistic_loss(logit_a: torch.Tensor, logit_b: torch.Tensor) -> torch.Tensor:
    """The relativistic average GAN loss (Jolicoeur-Martineau, 2018; ESRGAN, Wang et al., 2018) for the
    side that wants `a` judged more real than the average `b` and `b` less real than the average `a`:
    −log σ(C(a) − E C(b)) − log(1 − σ(C(b) − E C(a))). D takes (real, fake), G takes (fake, real) with
    the real logits detached. Means over the batch and, for a per-pixel D, over the pixels."""
    return F.softplus(-(logit_a - logit_b.mean())).mean() + F.softplus(logit_b - logit_a.mean()).mean()


class InstanceNoise:
    """σ of the Gaussian instance noise added to real and generated samples (App. C).

    "linear": σ0 → 0 over `steps` generator steps. "adaptive": σ is raised while the
    discriminator's loss is below `target` (it wins too easily) and lowered while above, so that
    the loss is held near the target (the paper's heuristic schedule).
    """

    def __init__(
        self, sigma0: float, schedule: str = "linear", steps: int = 1, target: float = 0.6, rate: float = 0.01
    ):
        if schedule not in ("linear", "adaptive"):
            raise AffsrError(f"noise schedule must be 'linear' or 'adaptive', got {schedule!r}")
        if not (sigma0 >= 0 and math.isfinite(sigma0)):
            raise AffsrError(f"instance noise must be ≥ 0, got {sigma0!r}")
        self.sigma0, self.schedule, self.steps, self.target, self.rate = sigma0, schedule, max(steps, 1), target, rate
        self.sigma = sigma0

    def update(self, step: int, d_loss: float):
        if self.schedule == "linear":
            self.sigma = self.sigma0 * max(0.0, 1 - step / self.steps)
        elif math.isfinite(d_loss):
            # d_loss sums the real and fake terms: per-sample loss is d_loss / 2
            self.sigma = min(
                1.0, max(1e-4, self.sigma * math.exp(self.rate * (self.target - d_loss / 2) / self.target))
            )

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.sigma * torch.randn_like(y) if self.sigma > 0 else y

    def state_dict(self) -> dict:
        return {"sigma": self.sigma}

    def load_state_dict(self, state: dict):
        self.sigma = float(state["sigma"])
