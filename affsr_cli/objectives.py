"""Objectives: what the generator minimises, and the auxiliary network ("critic") some need.

    mse, mae   empirical risk against y
    gan        eq. 10, KL[q‖p] through a discriminator, instance noise (§3.2, App. C)
    dg         denoiser guidance (§3.3, eqs. 12, 28–30): a DAE ladder pre-trained at decreasing σ
    ll         density guidance (§3.4, eq. 32): −log p(ŷ) under a PixelCNN pre-trained by ML

The loop asks `trains_critic(step)` / `trains_generator(step)`: gan trains both every step;
dg and ll first train their prior alone for `prior_steps` steps, then the generator alone.
Objective state beyond parameters (instance-noise σ, the DAE ladder) travels through
`get_extra_state`, so `state_dict()` covers everything --resume needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import losses
from .errors import AffsrError


class Objective(nn.Module):
    critic_uses_output = False  # does critic_loss need the generator's output?
    options: tuple[str, ...] = ()  # TrainConfig fields only this objective uses (others are refused)

    def __init__(self):
        super().__init__()
        self.critic: nn.Module | None = None

    @property
    def trained_critic(self) -> nn.Module:
        """The critic as the loop trains it (wrapped for DDP by `wrap_critic`)."""
        return self.__dict__.get("_wrapped") or self.critic

    def wrap_critic(self, wrap):
        self.__dict__["_wrapped"] = wrap(self.critic)  # not registered: state_dict keeps plain names

    def trains_critic(self, step: int) -> bool:
        return self.critic is not None

    def trains_generator(self, step: int) -> bool:
        return True

    def first_generator_step(self) -> int:
        """The first step at which the generator trains (the steps before it train the critic alone)."""
        return 0

    def generator_loss(self, yhat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def critic_loss(self, yhat: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_step(self, step: int, logs: dict):
        pass

    def get_extra_state(self):
        return {}

    def set_extra_state(self, state):
        pass


class PixelObjective(Objective):
    """mse or mae against the HR image y (empirical risk minimisation)."""

    options = ()

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.fn = kind, {"mse": losses.mse, "mae": losses.mae}[kind]

    def generator_loss(self, yhat, y):
        loss = self.fn(yhat, y)
        return loss, {self.kind: float(loss.detach())}


class GANObjective(Objective):
    """Amortised MAP via KL[q‖p] (paper §3.2, eq. 10), with instance noise (App. C)."""

    critic_uses_output = True
    options = (
        "pixel_weight",
        "lr_critic",
        "instance_noise",
        "noise_schedule",
        "noise_steps",
        "noise_target",
        "discriminator",
        "critic_steps",
        "critic_warmup",
        "gan_loss",
        "feature_weight",
    )

    def __init__(
        self,
        discriminator: nn.Module,
        noise: losses.InstanceNoise,
        warmup: int = 0,
        loss: str = "kl",
        feature_weight: float = 0.0,
    ):
        """loss: "kl" (eq. 10, the paper's) or "relativistic" (ESRGAN's relativistic average).
        feature_weight: w · Σ_layers mean |φ(ŷ) − φ(y)| over D's activations (feature matching, Salimans
        et al. 2016 / pix2pixHD), a content term in D's texture-sensitive features; needs a D with
        `forward_with_features`."""
        super().__init__()
        if loss not in ("kl", "relativistic"):
            raise AffsrError(f"gan loss must be 'kl' or 'relativistic', got {loss!r}")
        if feature_weight and not hasattr(discriminator, "forward_with_features"):
            raise AffsrError(
                f"--feature-weight needs a strided discriminator preset, not {type(discriminator).__name__}"
            )
        self.critic, self.noise, self.warmup, self.loss = discriminator, noise, warmup, loss
        self.feature_weight = feature_weight

    def trains_generator(self, step):
        return step >= self.warmup  # steps 0 … warmup − 1 train D alone

    def first_generator_step(self):
        return self.warmup

    def critic_loss(self, yhat, y):
        logits = self.trained_critic(self.noise(torch.cat([y, yhat.detach()])))  # real and fake in one batch
        real, fake = logits.chunk(2)
        loss = (
            losses.relativistic_loss(real, fake)
            if self.loss == "relativistic"
            else losses.discriminator_loss(real, fake)
        )
        return loss, {
            "d_loss": float(loss.detach()),
            "d_real": float(torch.sigmoid(real.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake.detach()).mean()),
        }

    def generator_loss(self, yhat, y):
        # D sees the same mixed batch as when it was trained, so batch norm normalises alike
        both = self.noise(torch.cat([y, yhat]))
        if self.feature_weight:  # the plain D (not a DDP wrapper): its activations for the matching term
            logits, feats = self.critic.forward_with_features(both)
        else:
            logits, feats = self.trained_critic(both), []
        real, fake = logits.split(len(y))
        loss = (
            losses.relativistic_loss(fake, real.detach())
            if self.loss == "relativistic"
            else losses.generator_loss(fake)
        )
        logs = {"g_loss": float(loss.detach()), "noise": self.noise.sigma}
        if feats:
            match = sum((a.detach() - b).abs().mean() for a, b in (f.split(len(y)) for f in feats))
            loss = loss + self.feature_weight * match
            logs["feature_l1"] = float(match.detach())
        return loss, logs

    def after_step(self, step, logs):
        self.noise.update(step, logs.get("d_loss", float("nan")))

    def get_extra_state(self):
        return {"noise": self.noise.state_dict()}

    def set_extra_state(self, state):
        self.noise.load_state_dict(state["noise"])


class PriorObjective(Objective):
    """dg and ll: pre-train a prior for `prior_steps`, keeping a ladder of `rungs` snapshots,
    then guide the generator with it."""

    options = ("pixel_weight", "lr_critic", "prior_steps", "ladder", "prior_width", "prior_layers")

    def __init__(self, prior: nn.Module, prior_steps: int, total_steps: int, rungs: int):
        super().__init__()
        self.critic, self.prior_steps, self.total_steps, self.rungs = prior, prior_steps, total_steps, rungs
        self.ladder: list[dict] = []  # snapshots (state dicts) taken during pre-training, in order
        self.rung = -1  # the ladder rung loaded for generator training (-1: none yet)

    def trains_critic(self, step):
        self.step = step  # the σ schedule of dg reads it
        return step < self.prior_steps

    def trains_generator(self, step):
        if step < self.prior_steps:
            return False
        if self.rung < 0:
            self.critic.requires_grad_(False)
        self.use_rung(self.rung_for(step))
        return True

    def first_generator_step(self):
        return self.prior_steps

    def rung_for(self, step: int) -> int:
        """Generator phase is split evenly over the ladder, each rung in turn (dg); ll: the last."""
        return len(self.ladder) - 1

    def use_rung(self, k: int):
        if k != self.rung:
            self.critic.load_state_dict(self.ladder[k])
            self.critic.eval()
            self.rung = k

    def after_step(self, step, logs):
        """Snapshot the prior at the end of each of `rungs` equal stretches of pre-training."""
        every = max(1, self.prior_steps // self.rungs)
        if step <= self.prior_steps and (step % every == 0 or step == self.prior_steps):
            if len(self.ladder) < self.rungs or step == self.prior_steps:
                snapshot = {k: v.detach().clone() for k, v in self.critic.state_dict().items()}
                if len(self.ladder) == self.rungs:
                    self.ladder[-1] = snapshot
                else:
                    self.ladder.append(snapshot)

    def get_extra_state(self):
        return {"ladder": self.ladder, "rung": self.rung}

    def set_extra_state(self, state):
        self.ladder, self.rung = list(state["ladder"]), -1


class DenoiserObjective(PriorObjective):
    """Denoiser-guided SR. Pre-training: ‖f_σ(y + σε) − y‖² with σ annealed geometrically from
    σ_max to σ_min. Generator: follow ∂log p/∂y ≈ (f_σ(ŷ) − ŷ)/σ² (eq. 12) through Π; the loss
    whose gradient that is, −⟨sg[f_σ(ŷ) − ŷ], ŷ⟩ (scaled by σ², constant per rung), uses the
    ladder's rungs in order of decreasing σ (App. E, Fig. 7: the steps in the curves)."""

    options = (*PriorObjective.options, "dae_sigma_max", "dae_sigma_min")

    def __init__(
        self,
        dae: nn.Module,
        prior_steps: int,
        total_steps: int,
        rungs: int,
        sigma_max: float,
        sigma_min: float,
        clip: float = 3.0,
        noisy: bool = True,
    ):
        super().__init__(dae, prior_steps, total_steps, rungs)
        self.noisy = noisy  # evaluate the DAE at ŷ + σε (as trained) rather than at ŷ
        self.clip = clip  # cap on each sample's residual norm, in units of σ√d
        if not 0 < sigma_min <= sigma_max:
            raise AffsrError(f"denoiser σ must satisfy 0 < σ_min ≤ σ_max, got {sigma_min}, {sigma_max}")
        self.sigma_max, self.sigma_min = sigma_max, sigma_min
        self.sigmas: list[float] = []  # σ of each ladder rung

    def sigma_at(self, step: int) -> float:
        t = min(step / max(self.prior_steps - 1, 1), 1.0)
        return self.sigma_max * (self.sigma_min / self.sigma_max) ** t

    def critic_loss(self, yhat, y):
        sigma = self.sigma_at(self.step)
        loss = losses.mse(self.trained_critic(y + sigma * torch.randn_like(y)), y)
        return loss, {"dae_loss": float(loss.detach()), "dae_sigma": sigma}

    def rung_for(self, step):
        left = max(self.total_steps - self.prior_steps, 1)
        return min(len(self.ladder) - 1, (step - self.prior_steps) * len(self.ladder) // left)

    def generator_loss(self, yhat, y):
        sigma = self.sigmas[self.rung]
        with torch.no_grad():
            # the DAE at the inputs it was trained on, ŷ + σε: σ² ∂log p_σ/∂y, a stochastic estimate whose
            # noise keeps Adam from amplifying the small pull of a few outliers once the rest settle
            noisy = yhat.detach() + sigma * torch.randn_like(yhat) if self.noisy else yhat.detach()
            residual = self.critic(noisy) - noisy
            norm = residual.flatten(1).norm(dim=1)
            # A denoiser's residual is ~σ√d on the data; far larger only where ŷ lies outside what the DAE
            # saw, where it extrapolates and may point away from the data: cap each sample's pull there,
            # so that a few such samples cannot take over the (Adam-normalised) step and run away.
            cap = self.clip * sigma * math.sqrt(residual[0].numel())
            residual = residual * (cap / norm.clamp(min=cap)).view(-1, *[1] * (residual.dim() - 1))
        loss = -(residual * yhat).sum() / yhat.shape[0]
        return loss, {
            "score_norm": float(norm.mean()) / sigma**2,
            "dae_sigma": sigma,
            "score_clipped": float((norm > cap).float().mean()),
        }

    def after_step(self, step, logs):
        before = len(self.ladder)
        super().after_step(step, logs)
        if len(self.ladder) > before:
            self.sigmas.append(self.sigma_at(step - 1))
        elif step == self.prior_steps and self.sigmas:
            self.sigmas[-1] = self.sigma_at(step - 1)

    def get_extra_state(self):
        return {**super().get_extra_state(), "sigmas": self.sigmas}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self.sigmas = [float(s) for s in state["sigmas"]]


class DensityObjective(PriorObjective):
    """Density-guided SR: pre-train the PixelCNN by maximum likelihood, then minimise −log p(ŷ)
    per dimension (eq. 32) under the last snapshot."""

    options = (*PriorObjective.options, "mixture")

    def critic_loss(self, yhat, y):
        nll = self.trained_critic(y)
        return nll, {"prior_nll": float(nll.detach()), "prior_bits_per_dim": float(nll.detach()) / math.log(2)}

    def generator_loss(self, yhat, y):
        nll = self.critic(yhat)
        return nll, {"nll": float(nll.detach())}
