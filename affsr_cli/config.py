"""The training configuration: one flat dataclass, a comment per field (saved as config.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import AffsrError

# fields whose default means "work it out" (resolved at the start of a run, kept on --resume)
AUTO = {
    "preset": "auto",
    "generator": "auto",
    "patch": 0,
    "operator": "auto",
    "kernel_size": 0,
    "sigma": 0.0,
    "boundary": "auto",
    "noise_steps": 0,
    "prior_steps": 0,
    "dae_sigma_min": 0.0,
}
# fields that may differ between a run and its --resume (everything else must match)
RESUMABLE = {
    "steps",
    "out",
    "resume",
    "workers",
    "device",
    "sample_every",
    "checkpoint_every",
    "log_every",
    "bf16",
    "overwrite",
    "time_limit",
}


# the allowed values of each numeric field, inclusive (0 where 0 means automatic); `affsr train`
# checks them while parsing (the ranges show in --help), check_ranges() for a config from Python
RANGES = {
    "patch": (0, 4096),
    "steps": (1, 10**9),
    "batch_size": (1, 4096),
    "lr": (1e-8, 1.0),
    "lr_critic": (1e-8, 1.0),
    "beta1": (0.0, 0.999),
    "grad_clip": (0.0, 1e6),
    "lr_bits": (0, 16),
    "scale": (2, 16),
    "kernel_size": (0, 129),
    "sigma": (0.0, 64.0),
    "channels": (1, 3),
    "smooth": (0.0, 1.0),
    "points": (0.0, 1.0),
    "noise_channels": (0, 64),
    "soft_weight": (0.0, 1e6),
    "pixel_weight": (0.0, 1e6),
    "range_weight": (0.0, 1e6),
    "lattice_weight": (0.0, 1e9),
    "grid_weight": (0.0, 1e12),
    "luma_weight": (0.0, 1e6),
    "feature_weight": (0.0, 1e6),
    "texture_weight": (0.0, 1e12),
    "halo_weight": (0.0, 1e12),
    "equivariance_weight": (0.0, 1e12),
    "teacher_weight": (0.0, 1e6),
    "instance_noise": (0.0, 10.0),
    "noise_steps": (0, 10**9),
    "noise_target": (0.01, 10.0),
    "critic_steps": (1, 100),
    "critic_warmup": (0, 10**9),
    "prior_steps": (0, 10**9),
    "ladder": (1, 100),
    "dae_sigma_max": (1e-4, 10.0),
    "dae_sigma_min": (0.0, 10.0),
    "prior_width": (0, 2048),
    "prior_layers": (0, 64),
    "mixture": (1, 100),
    "ema": (0.0, 0.99999),
    "seed": (0, 2**63 - 1),
    "workers": (0, 256),
    "log_every": (1, 10**9),
    "sample_every": (1, 10**9),
    "checkpoint_every": (1, 10**9),
    "time_limit": (0.0, 1e7),
}


# `--preset photos`, what a folder of images gets unless --preset names another: the recipe of the shipped weights
# (examples/photos/train_v3.sh, weights/README.md), written into the fields the user left unset; an option given
# always wins. Keys: "all" every image method, then a constraint's or an objective's name (only what it reads).
PHOTOS = {
    "all": dict(
        generator="span52", operator="bicubic", lr_bits=8
    ),  # the shipped network and A; x rounded as an 8-bit file holds it
    "aff": dict(range_weight=0.1),  # f held near an image consistent with x (docs/training.md, --range-weight)
    "gan": dict(
        instance_noise=0.0, discriminator="texture", gan_loss="relativistic", pixel_weight=1000.0, lattice_weight=1e6
    ),  # the content and lattice terms: without them an AffGAN paints a 4-pixel grid
}
# ... and for a run that starts from trained weights (--init: given, or registry.photos_init filled in), the schedule of the
# shipped fine-tunes: affmse-x4 (mse, mae) and affgan-x4 (gan); dg and ll were never tuned on photos: their lr only
PHOTOS_FROM_WEIGHTS = {
    "mse": dict(
        steps=1400, lr=1e-5, beta1=0.9, grad_clip=0.02, lr_schedule="cosine", checkpoint_every=100, sample_every=350
    ),
    "gan": dict(steps=700, critic_warmup=100, lr=2e-5, grad_clip=0.1, ema=0.99, checkpoint_every=50, sample_every=175),
    "dg": dict(lr=1e-5, grad_clip=0.02),
}
PHOTOS_FROM_WEIGHTS.update(mae=PHOTOS_FROM_WEIGHTS["mse"], ll=PHOTOS_FROM_WEIGHTS["dg"])
# the shipped AffMSE a photos run of that network (span52, 4×, RGB, no z, LR grid) starts from, by operator family


class TrainingError(AffsrError):
    """A run that cannot start or had to stop (one line for the user)."""


@dataclass
class TrainConfig:
    method: str = "affgan"  # objective × constraint: (aff|soft|)(mse|mae|gan|dg|ll), e.g. affgan, softmse, dg
    data: str = ""  # folder of images (read recursively), or swissroll (the paper's 2-D toy)
    val: str = ""  # folder of validation images: PSNR/SSIM of centre crops logged every sample_every steps
    preset: str = "auto"  # photos (random 128² crops and the shipped weights' recipe: span52, bicubic A, --init affmse-x4, content/lattice terms) | patch (the same crops, nothing else filled in) | texture | celeba | imagenet (the paper's) | auto (photos; docs/training.md)
    patch: int = 0  # HR patch side for texture/patch/photos presets (0: the preset's: texture 64, patch and photos 128)
    out: str = "runs/affsr"  # run folder: config.json, checkpoints, metrics.jsonl, samples/
    steps: int = (
        100_000  # generator steps in total (a resumed run continues up to this; photos from weights: 1400, affgan 700)
    )
    batch_size: int = 16  # HR images per step (per process under torchrun)
    lr: float = 2e-4  # Adam learning rate of the generator (photos from weights: 1e-5, affgan 2e-5)
    lr_critic: float = 2e-4  # Adam learning rate of the discriminator (gan)
    beta1: float = 0.5  # Adam β1 for both
    grad_clip: float = 0.0  # clip the generator's gradient to this global L2 norm before each step (0: no clipping)
    lr_bits: int = 0  # round each training LR x = A y to this many bits after clipping to [0, 1], as a saved image holds it (8, 16; 0: keep it float)
    lr_schedule: str = "constant"  # constant | cosine (each optimiser's lr decays to 0 over the steps it trains in)
    scale: int = 4  # A: downsampling factor
    operator: str = "auto"  # A: gaussian | bicubic | area | bilinear | lanczos3 | auto (gaussian for swissroll and the paper's texture/celeba/imagenet presets, else bicubic)
    kernel_size: int = (
        0  # A: Gaussian taps (0: 2·scale+1, the paper's 9 at 4×; the other operators' follow from their support)
    )
    sigma: float = 0.0  # A: Gaussian σ in HR pixels (0: 0.375·scale; gaussian only)
    boundary: str = "auto"  # A: border convention symmetric | reflect | replicate | circular | pil | matlab | auto (gaussian: symmetric, else pil)
    channels: int = 3  # image channels the networks see (1: gray, 3: RGB)
    smooth: float = 0.0  # fraction of HR patches blurred (Gaussian σ 4 px) so that flat regions are learnt too
    points: float = 0.0  # fraction of HR patches dimmed, with 3-30 point sources added (stars, lamps, glints)
    teacher: str = ""  # folder of targets named as the files of --data (a teacher's projected outputs: examples/photos/make_teacher_corpus.py); each crop of a photo comes with the same crop of its namesake, for --teacher-weight
    generator: str = "auto"  # generator preset: tiny | small | base (efficient, no BN: 58 k / 292 k / 953 k params, 7 / 36 / 119 GFLOP per output MP at 4×) | span48 | span52 (SPAN, Wan et al. 2024: 426 k / 498 k params, 53 / 62 GFLOP per output MP; the shipped weights' network) | dat-light (DAT, Chen et al. 2023: 621 k params, 103 GFLOP per output MP, 28× SPAN's CPU time per file; affmse-x4-dat's network) | rrdb (RRDBNet, ESRGAN / Real-ESRGAN x4plus: 16.7 M params, 2,241 GFLOP per output MP) | texture | celeba | imagenet (the paper's) | auto (the paper presets' own, photos span52, else small)
    grid: str = "lr"  # where the generator computes: lr (sub-pixel output) | hr (input A⁺x)
    train_only: str = (
        ""  # generator modules to train, comma-separated (e.g. body,up: DAT's or SPAN's head on a frozen trunk); '' all
    )
    init: str = ""  # generator weights to start from, same network: a shipped name (affmse-x4, affgan-x4, ...), a file or a run folder; photos with span52 at 4×: the shipped AffMSE of the run's A unless given ('' to start from random weights)
    noise_channels: int = 0  # > 0: stochastic generator (App. F), z ~ N(0, I) with this many LR channels
    soft_weight: float = 1.0  # weight of MAE(x, Aŷ) for the soft constraint
    pixel_weight: float = (
        0.0  # weight of an added MSE(ŷ, y) term for gan/dg/ll (0: the paper's objective alone; photos gan: 1000)
    )
    lattice_weight: float = 0.0  # weight of MSE between the period-s patterns of ŷ and y in each 8s×8s block (removes the s-pixel grid a gan paints; any method; photos gan: 1e6)
    grid_weight: float = 0.0  # weight of the squared period-s pattern of ŷ − y averaged over the batch: the grid locked to the LR pixels, not texture (any method)
    luma_weight: float = 0.0  # weight of an added MSE between the BT.601 luma Y of ŷ and y (RGB only; any method): the error the eye and Y-PSNR see most
    texture_weight: float = 0.0  # weight of the blockwise Gram-matrix difference of ŷ's and y's responses to fixed random filters (EnhanceNet's texture loss; any method, patches of 40 px or more)
    halo_weight: float = 0.0  # weight of the squared excursion of ŷ outside y's 5×5 local range (min/max): the dark rings and bright halos the photo does not have (any method)
    teacher_weight: float = 0.0  # weight of MAE(ŷ, t) between ŷ and the --teacher target t of the same crop: distillation beside the photo's own terms (any method)
    equivariance_weight: float = 0.0  # weight of the MSE between ŷ and the ŷ of a flipped or transposed x mapped back (an f that paints at fixed phases of its output cells, the LR-locked grid, does not commute with flips; any method; one more generator pass a step)
    range_weight: float = 0.0  # aff: weight of MSE(A f, x) on the network's output f before Π (pins what Π discards)
    instance_noise: float = 0.1  # gan: initial σ of Gaussian instance noise (App. C)
    noise_schedule: str = "linear"  # gan: linear (anneal to 0 over noise_steps) | adaptive (hold D loss at target)
    noise_steps: int = 0  # gan: linear anneal length in steps (0: all steps; longer than --steps: σ ends above 0)
    noise_target: float = 0.6  # gan: adaptive schedule's target discriminator loss (per sample, nats)
    discriminator: str = "auto"  # gan: discriminator preset texture | texture-aa | small-aa | texture-patch (a logit per location) | celeba | imagenet | unet (Real-ESRGAN's U-Net with spectral norm, a logit per pixel) | auto (the generator's; texture for tiny/small/base/span*)
    gan_loss: str = "kl"  # gan: kl (eq. 10, the paper's: −logit, an estimate of KL[q‖p]) | relativistic (ESRGAN's relativistic average)
    feature_weight: float = 0.0  # gan: weight of feature matching, Σ over D's layers of mean |φ(ŷ) − φ(y)| (a content term in D's texture features; strided D presets)
    critic_steps: int = 1  # gan: discriminator steps per generator step
    critic_warmup: int = 0  # gan: the first steps train the discriminator alone (from --init weights: D learns what to look for before G follows it)
    prior_steps: int = 0  # dg/ll: first steps train the denoiser / density model alone (0: half of steps)
    ladder: int = 8  # dg/ll: prior snapshots kept during pre-training (dg walks them by decreasing σ)
    dae_sigma_max: float = 0.5  # dg: denoiser noise σ at the start of pre-training
    dae_sigma_min: float = 0.0  # dg: σ at its end, annealed geometrically (0: 0.01 for images, 0.25 for the Swiss roll)
    prior_width: int = 0  # dg/ll: prior width (0: DAE 128 maps / 256 units, PixelCNN 64 maps)
    prior_layers: int = 0  # dg/ll: prior layers (0: 4 for images, 2 for the Swiss roll)
    mixture: int = 10  # ll: logistic mixture components per pixel and channel
    ema: float = (
        0.999  # decay of the EMA of generator weights (0: off); warms up as min(ema, (1+n)/(10+n)) after n steps
    )
    seed: int = 0  # seeds torch, data order and crops
    workers: int = 2  # DataLoader worker processes
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    bf16: bool = True  # bfloat16 autocast on CUDA (ignored elsewhere)
    log_every: int = 10  # steps between metrics.jsonl lines
    sample_every: int = 500  # steps between sample grids (LR | output | HR) in samples/
    checkpoint_every: int = 1000  # steps between checkpoints
    time_limit: float = 0.0  # minutes this process trains before it checkpoints and stops (0: no limit; --resume continues; the lr schedule still spans --steps)
    resume: bool = False  # continue the run in `out` from its last checkpoint
    overwrite: bool = False  # start afresh in an `out` that already holds a run

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise AffsrError(f"unknown configuration fields: {', '.join(sorted(unknown))}")
        return cls(**{"operator": "gaussian", **d})  # runs from before the operator families were Gaussian

    def check_ranges(self):
        """TrainingError naming the first field outside RANGES (and its allowed range)."""
        for name, (lo, hi) in RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise TrainingError(f"--{name.replace('_', '-')} must be from {lo:g} to {hi:g}, got {v!r}")

    def operator_spec(self):
        """A of a resolved configuration (a projection.OperatorSpec)."""
        from .projection import OperatorSpec

        return OperatorSpec(self.scale, self.kernel_size, self.sigma or None, self.boundary, self.operator)

    def inherit_auto(self, saved: "TrainConfig") -> "TrainConfig":
        """Fields left at their automatic value take the value `saved` resolved them to."""
        return dataclasses.replace(self, **{k: getattr(saved, k) for k, v in AUTO.items() if getattr(self, k) == v})

    def left_unset(self, given=None) -> set[str]:
        """The fields a preset may fill: those not in `given` (the options the user gave; None: every field that
        differs from its default counts as given), and those still at their automatic value."""
        names = [f.name for f in dataclasses.fields(self)]
        if given is None:
            given = {n for n, v in TrainConfig().to_dict().items() if getattr(self, n) != v}
        return {n for n in names if n not in given or (n in AUTO and getattr(self, n) == AUTO[n])}

    def differences(self, other: "TrainConfig") -> list[str]:
        """Fields that differ, other than those a resumed run may change."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} → {b[k]!r}" for k in a if k not in RESUMABLE and a[k] != b[k]]
