"""The training tasks that `affsr train --preset` names, in one explicit registry (spandrel's main_registry,
torchvision's register_model): what a task's data are (image crops or the Swiss roll's 2-D points), how
they are taken, and the network and the A a run of it gets unless told otherwise. recipe.resolve, the data
loader and the training loop read a task's fields instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    doc: str  # one line for --help and docs/training.md
    size: int = 0  # HR side of a crop (images); 0 for points
    crop: str = "random"  # random | centre: where the crop is taken
    generator: str = "small"  # the network a run gets with --generator auto
    paper: bool = False  # the paper's setup (§5): its Gaussian A unless --operator says otherwise
    points: bool = False  # 2-D points (the Swiss roll: MLPs, A the coordinates' mean) instead of images
    dae_sigma_min: float = 0.01  # dg: the denoiser's last noise level (App. D: 0.25 on the roll)
    per_image: int = 1  # crops a pass over the data takes of each image (a texture: many)
    vertical_flips: bool = False  # crops flipped upside down too (textures have no up)
    min_file_bytes: int = 0  # smaller image files are left out (ImageNet's thumbnails and icons)

    @property
    def operator(self) -> str:
        """The A family of --operator auto: the paper's Gaussian for its setups; resizing (bicubic) for photos."""
        return "gaussian" if self.paper else "bicubic"


TASKS = {
    t.name: t
    for t in (
        Task("photos", "random 128² crops of a folder of photos, with the shipped weights' recipe", 128),
        Task("patch", "the same crops, nothing else filled in", 128),
        Task(
            "texture",
            "the paper's grass textures (§5.3): random 64² patches",
            64,
            generator="texture",
            paper=True,
            per_image=256,
            vertical_flips=True,
        ),
        Task("celeba", "the paper's CelebA: centre crops resized to 64² (A down to 16²)", 64, "centre", "celeba", True),
        Task(
            "imagenet",
            "the paper's natural images: 128² centre crops",
            128,
            "centre",
            "imagenet",
            True,
            min_file_bytes=20_000,
        ),
        Task(
            "swissroll",
            "the paper's 2-D Swiss roll (§5.1, Table 1)",
            generator="mlp",
            paper=True,
            points=True,
            dae_sigma_min=0.25,
        ),
    )
}
PAPER_TASKS = tuple(name for name, t in TASKS.items() if t.paper)


def task(name: str) -> Task:
    if name not in TASKS:
        from .errors import AffsrError

        raise AffsrError(f"unknown data preset {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]
