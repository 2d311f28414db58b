"""Weights someone else made (issue 19 §2), a full disk (§3) and truncated training images (§4):
each is refused with one clear message before it costs memory, time or a file."""

import json
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import save_file

from affsr_cli import checkpoint, data, methods, weights
from affsr_cli.projection import OperatorSpec


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A genuine small checkpoint: (tensors, metadata) to tamper with."""
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    checkpoint.save_generator(path, methods.build_generator("tiny", OperatorSpec(4, family="bicubic"), "aff"))
    return weights.load(path)


def forged(tmp_path, good, net=None, model=None, tensors=None, **meta):
    tensors0, meta0 = good
    config = json.loads(meta0["model"])
    if net is not None:
        config["net"] = net(config["net"])
    path = tmp_path / "forged.safetensors"
    save_file(
        tensors if tensors is not None else dict(tensors0),
        str(path),
        metadata={**meta0, "model": model if model is not None else json.dumps(config), **meta},
    )
    return path


def refused(path, words):
    """Refused before anything is built from the file's description (SRModel.from_config allocates it)."""

    def built(config):
        raise AssertionError(f"{path}: a network was built before the file was refused")

    with mock.patch.object(checkpoint.SRModel, "from_config", built), pytest.raises(ValueError, match=words):
        checkpoint.load_generator(path)


def with_kwargs(**kw):
    return lambda net: {**net, "kwargs": {**net["kwargs"], **kw}}


def test_the_genuine_file_loads(tmp_path, good):
    model = checkpoint.load_generator(forged(tmp_path, good))
    assert model.net.blocks[0].c1.weight.shape == good[0]["net.blocks.0.c1.weight"].shape


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(width=8192), "width = 8192 is outside"),  # a 1 KB file asking for gigabytes
        (dict(width=65536), "outside"),
        (dict(blocks=10**9), "blocks = 1000000000 is outside"),
        (dict(width=True), "outside"),  # a bool is not a width
        (dict(width="48"), "outside"),
        (dict(widths=[64] * 100_000), "entries"),
        (dict(evil=1), "unknown argument 'evil'"),
        (dict(grid="xyz"), "grid must be"),
    ],
)
def test_metadata_outside_the_schema_is_refused_before_building(tmp_path, good, kw, words):
    refused(forged(tmp_path, good, net=with_kwargs(**kw)), words)


def test_a_class_that_is_not_a_generator_is_refused(tmp_path, good):
    refused(forged(tmp_path, good, net=lambda n: {**n, "class": "Discriminator"}), "not one of")
    refused(forged(tmp_path, good, net=lambda n: {**n, "class": "os.system"}), "not one of")
    refused(forged(tmp_path, good, net=lambda n: [1, 2]), "not .class, kwargs.")


def test_deep_or_broken_json_is_refused(tmp_path, good):
    refused(forged(tmp_path, good, model="[" * 100_000 + "]" * 100_000), "missing or damaged")
    refused(forged(tmp_path, good, model="{not json"), "missing or damaged")


def test_shapes_are_compared_before_allocating(tmp_path, good):
    # the file holds tiny's tensors but claims 512 wide: checked on the meta device, no 512-wide net built
    refused(
        forged(tmp_path, good, net=with_kwargs(width=512)),
        r"do not fit.*: \(24, 3, 3, 3\) in the file, \(512, 3, 3, 3\) described",
    )
    refused(forged(tmp_path, good, net=with_kwargs(width=512, blocks=64)), "240 tensors missing")
    tensors = dict(good[0])
    tensors.pop("net.tail.weight")
    refused(forged(tmp_path, good, tensors=tensors), "tensors missing, e.g. tail.weight")
    refused(forged(tmp_path, good, tensors={**good[0], "net.extra": torch.zeros(2)}), "unexpected tensors, e.g. extra")


def test_scale_must_match_the_operator(tmp_path, good):
    refused(forged(tmp_path, good, net=with_kwargs(scale=2)), "upscales 2× but its operator A is for 4×")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(tmp_path, good, bad):
    tensors = dict(good[0])
    w = tensors["net.up.weight"].clone()
    w.view(-1)[3] = bad
    tensors["net.up.weight"] = w
    refused(forged(tmp_path, good, tensors=tensors), r"NaN or infinite values \(up.weight\)")


def test_upscale_with_nan_weights_writes_nothing(tmp_path, good):
    tensors = {k: v.clone() for k, v in good[0].items()}
    tensors["net.head.weight"].fill_(float("nan"))
    w = forged(tmp_path, good, tensors=tensors)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "upscale",
            str(tmp_path / "a.png"),
            "-w",
            str(w),
            "-o",
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "NaN or infinite" in r.stderr, r.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "error, words",
    [
        (
            SafetensorError(
                'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
            ),
            "the disk is full",
        ),
        (OSError(28, "No space left on device"), "the disk is full"),
        (OSError(122, "Disk quota exceeded"), "the disk quota is exceeded"),
    ],
)
def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch, error, words):
    path = tmp_path / "state.safetensors"
    weights.save_atomic(path, {"a": torch.ones(2)}, {"v": "old"})

    def full(*a, **k):
        raise error

    monkeypatch.setattr(weights, "save_file", full)
    with pytest.raises(ValueError, match=f"cannot write .*state.safetensors: {words}.*unchanged"):
        weights.save_atomic(path, {"a": torch.zeros(2)}, {"v": "new"}, overwrite=True)
    assert weights.load(path)[1]["v"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]  # no temporary left


def truncated_png(path, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 3])  # the header is intact, the pixels end early


def test_a_folder_of_truncated_images_is_refused_not_trained_on_black(tmp_path):
    truncated_png(tmp_path / "a.png")
    with pytest.raises(
        ValueError, match=r"no readable images under .*1 skipped, e\.g\. .*a\.png: its pixels do not decode"
    ):
        data.ImageFolder(tmp_path)


def test_a_truncated_image_among_good_ones_is_skipped_with_a_warning(tmp_path):
    truncated_png(tmp_path / "a.png")
    Image.fromarray(np.full((150, 150, 3), 77, np.uint8)).save(tmp_path / "b.png")
    ds = data.ImageFolder(tmp_path)
    assert [f.name for f in ds.files] == ["b.png"] and "a.png: its pixels do not decode" in ds.warnings[0]
    assert torch.allclose(ds[0], torch.full_like(ds[0], 77 / 255))


def test_truncated_images_past_the_first_checked_are_replaced_or_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DECODE_CHECK", 0)  # only headers read when the folder opens
    truncated_png(tmp_path / "a.png")
    Image.fromarray(np.full((150, 150, 3), 200, np.uint8)).save(tmp_path / "b.png")
    ds = data.ImageFolder(tmp_path)
    assert len(ds.files) == 2 and torch.allclose(ds[0], torch.full_like(ds[0], 200 / 255))  # a.png -> b.png
    (tmp_path / "b.png").unlink()
    truncated_png(tmp_path / "b.png", seed=1)
    with pytest.raises(ValueError, match="none of the 2 training images decodes"):
        ds[0]


def test_a_swiss_roll_generator_still_loads(tmp_path):
    """Its operator (the coordinates' average) has no scale: the scale check must not need one."""
    from affsr_cli import swissroll

    path = checkpoint.save_generator(
        tmp_path / "mlp.safetensors", methods.build_generator("mlp", swissroll.AverageSpec(), "aff")
    )
    model = checkpoint.load_generator(path)
    assert model.net_config["class"] == "MLPGenerator" and model(torch.zeros(3, 1)).shape == (3, 2)
