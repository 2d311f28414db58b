"""A stochastic AffGAN (paper App. F) started from a deterministic checkpoint: --init pads the first
layer with zero weights for the new noise channels, so the run starts from the given network exactly."""

import pytest
import torch

from affsr_cli import checkpoint, infer
from affsr_cli import train as engine
from helpers import noise_images, tiny_config


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return noise_images(tmp_path_factory.mktemp("images"), [(24, 24), (24, 24)])


def tiny(images, out, **kw):
    return tiny_config(
        images, out, **{"steps": 1, "generator": "span52", "operator": "bicubic", "sample_every": 100, **kw}
    )


@pytest.mark.parametrize("generator", ["small", "span52"])
def test_deterministic_start_of_a_stochastic_run(images, tmp_path, generator):
    engine.train(tiny(images, tmp_path / "d", method="affmse", generator=generator))
    start = tmp_path / "d" / "generator.safetensors"
    gan = dict(
        method="affgan",
        generator=generator,
        discriminator="small-aa",
        critic_warmup=2,
        noise_channels=3,
        noise_steps=4,
        init=str(start),
    )
    engine.train(tiny(images, tmp_path / "s", steps=2, **gan))  # steps 1–2 train D alone: G is the start, padded
    deterministic = infer.Upscaler(checkpoint.load_generator(start))
    stochastic = infer.Upscaler(checkpoint.load_generator(tmp_path / "s" / "generator.safetensors"))
    assert stochastic.noise_channels == 3
    x = torch.rand(3, 12, 10)
    want = deterministic.network(x)
    for seed in (0, 1):  # zero weights on z: every sample is the start's output
        assert torch.allclose(stochastic.network(x, seed=seed), want, atol=1e-5)
    engine.train(tiny(images, tmp_path / "s", steps=3, resume=True, **gan))  # then G learns to use z
    later = infer.Upscaler(checkpoint.load_generator(tmp_path / "s" / "generator.safetensors"))
    assert not torch.equal(later.network(x, seed=0), later.network(x, seed=1))


def test_fewer_noise_channels_or_another_network_is_refused(images, tmp_path):
    engine.train(tiny(images, tmp_path / "n", method="affmse", generator="small", noise_channels=2))
    for other in (dict(noise_channels=1, generator="small"), dict(noise_channels=2, generator="span52")):
        with pytest.raises(engine.TrainingError, match="its network differs"):
            engine.train(
                tiny(
                    images, tmp_path / "x", method="affmse", init=str(tmp_path / "n" / "generator.safetensors"), **other
                )
            )
