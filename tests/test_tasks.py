"""Every task of `affsr train --preset` (tasks.TASKS): resolved with its own network, A and crop, and its data
loader gives items of its shape; an unknown name is one clear error."""

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import data, recipe, tasks
from affsr_cli.config import TrainConfig, TrainingError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three noisy 200×160 photos (each over ImageNet's 20 kB floor)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((160, 200, 3)) * 255).astype(np.uint8)).save(root / f"p{i}.png")
    return root


@pytest.mark.parametrize("name", tasks.TASKS)
def test_each_task_resolves_to_its_own_defaults_and_data(name, folder, tmp_path):
    task = tasks.TASKS[name]
    where = "swissroll" if task.points else str(folder)
    cfg = recipe.resolve(TrainConfig(data=where, preset=name, out=str(tmp_path / "run"), method="mse"))
    assert cfg.preset == name
    assert cfg.operator == task.operator and (task.operator == "gaussian") == (name in tasks.PAPER_TASKS)
    if name != "photos":  # photos fills in the shipped weights' recipe (span52): tests/test_train_defaults.py
        assert cfg.generator == task.generator
    source = data.dataset(cfg)
    item = source[0]
    if task.points:
        assert item.shape == (2,) and cfg.dae_sigma_min == 0.25
    else:
        assert item.shape == (3, task.size, task.size) and cfg.patch == task.size
        assert len(source) == 3 * task.per_image


def test_an_unknown_task_is_one_clear_error(folder, tmp_path):
    with pytest.raises(TrainingError, match="unknown data preset 'grass' \\(known: photos, patch, texture"):
        recipe.resolve(TrainConfig(data=str(folder), preset="grass", out=str(tmp_path / "run")))


def test_imagenet_leaves_small_files_out(folder, tmp_path):
    Image.new("RGB", (200, 160), "white").save(folder / "icon.png")  # a few hundred bytes
    try:
        source = data.ImageFolder(folder, "imagenet")
        assert len(source.files) == 3 and all(f.name != "icon.png" for f in source.files)
        assert len(data.ImageFolder(folder, "patch").files) == 4
    finally:
        (folder / "icon.png").unlink()
    assert torch.is_tensor(data.ImageFolder(folder, "celeba")[0])
