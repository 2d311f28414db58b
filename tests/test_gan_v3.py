"""The AffGAN v3 pieces: the U-Net discriminator with spectral norm, the relativistic average loss,
and an AffGAN run of SPAN with both, resumed and consistent."""

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, losses, objectives
from affsr_cli import train as engine
from affsr_cli.config import TrainConfig
from affsr_cli.errors import AffsrError
from affsr_cli.nets import Discriminator, UNetDiscriminator


@pytest.mark.parametrize("size", [(32, 32), (36, 44), (27, 19)])
def test_unet_discriminator_gives_a_logit_per_pixel(size):
    d = UNetDiscriminator(width=8)
    assert d(torch.rand(2, 3, *size)).shape == (2, 1, *size)


def test_spectral_norm_bounds_each_inner_convolution():
    """After power iterations (training-mode forwards) every inner conv's weight, as a matrix, has
    largest singular value 1: the Lipschitz bound spectral norm promises."""
    torch.manual_seed(0)
    d = UNetDiscriminator(width=8).train()
    for _ in range(30):
        d(torch.rand(1, 3, 32, 32))
    d.eval()
    convs = [*d.down, *d.up, *d.extra]
    sigmas = [torch.linalg.matrix_norm(c.weight.reshape(c.weight.shape[0], -1), 2).item() for c in convs]
    assert len(sigmas) == 8 and all(abs(s - 1) < 0.05 for s in sigmas), sigmas


def test_relativistic_loss_against_its_formula():
    torch.manual_seed(0)
    a, b = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    sig = torch.sigmoid
    expected = -(torch.log(sig(a - b.mean())).mean() + torch.log(1 - sig(b - a.mean())).mean())
    assert losses.relativistic_loss(a, b).item() == pytest.approx(expected.item(), rel=1e-5)
    # D's loss falls as real logits rise above the fakes'; G's (the arguments swapped) rises
    assert losses.relativistic_loss(a + 1, b) < losses.relativistic_loss(a, b)
    assert losses.relativistic_loss(b, a + 1) > losses.relativistic_loss(b, a)


def test_affgan_of_span_with_the_unet_d_and_relativistic_loss(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        small = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((40, 40), Image.BICUBIC).save(tmp_path / f"img{i}.png")
    cfg = TrainConfig(
        method="affgan",
        data=str(tmp_path),
        out=str(tmp_path / "run"),
        preset="patch",
        patch=32,
        batch_size=2,
        steps=2,
        generator="span48",
        discriminator="unet",
        gan_loss="relativistic",
        operator="bicubic",
        workers=0,
        log_every=1,
        sample_every=10,
        checkpoint_every=1,
        seed=0,
    )
    engine.train(cfg, engine.Callbacks())
    engine.train(TrainConfig(**{**cfg.__dict__, "steps": 3, "resume": True}), engine.Callbacks())
    state, saved = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 3 and saved["gan_loss"] == "relativistic" and saved["discriminator"] == "unet"
    model = checkpoint.load_generator(tmp_path / "run" / "generator.safetensors")
    assert model.net_config["class"] == "SPAN"
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        y_hat = model(x)
    assert (model.A(y_hat) - x).abs().max() < 1e-5
    with pytest.raises((ValueError, engine.TrainingError), match="gan loss"):
        engine.train(
            TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "bad"), "gan_loss": "wgan"}), engine.Callbacks()
        )


def test_grad_clip_bounds_the_generator_gradient_at_each_step(tmp_path, monkeypatch):
    """--grad-clip C: the generator's gradient that Adam sees has global norm ≤ C, and the norm before
    clipping is logged as grad_norm."""
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    logs = []

    class Log(engine.Callbacks):
        def on_step(self, s, entry):
            logs.append(entry)

    cfg = TrainConfig(
        method="affmse",
        data=str(tmp_path),
        out=str(tmp_path / "run"),
        preset="patch",
        patch=32,
        batch_size=2,
        steps=3,
        generator="span48",
        grad_clip=1e-4,
        operator="bicubic",
        workers=0,
        log_every=1,
        sample_every=10,
        checkpoint_every=10,
        seed=0,
    )
    engine.train(cfg, Log())
    assert len(seen) == 3 and max(seen) <= 1e-4 * (1 + 1e-4), seen
    assert all(entry["grad_norm"] > 1e-4 for entry in logs)  # the raw norm: larger, so clipping acted


@pytest.mark.parametrize("bits", [0, 8])
def test_lr_bits_rounds_the_training_input_as_a_file_holds_it(tmp_path, monkeypatch, bits):
    Image.fromarray((np.random.default_rng(2).random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    inputs = []
    step = engine.train_step
    monkeypatch.setattr(
        engine, "train_step", lambda run, x, y, z, t: (inputs.append(x.detach().clone()), step(run, x, y, z, t))[1]
    )
    cfg = TrainConfig(
        method="affmse",
        data=str(tmp_path),
        out=str(tmp_path / "run"),
        preset="patch",
        patch=32,
        batch_size=2,
        steps=2,
        generator="tiny",
        lr_bits=bits,
        operator="bicubic",
        workers=0,
        log_every=1,
        sample_every=10,
        checkpoint_every=10,
        seed=0,
    )
    engine.train(cfg, engine.Callbacks())
    x = torch.cat(inputs)
    on_grid = torch.equal(x * 255, (x * 255).round()) and x.min() >= 0 and x.max() <= 1
    assert on_grid == (bits == 8)  # bicubic's negative lobes put float x off the grid (and outside [0, 1])


def test_feature_matching_through_the_discriminator():
    """--feature-weight w adds w · Σ_layers mean |φ(ŷ) − φ(y)| over the strided D's activations: zero when
    ŷ = y, the logit unchanged by asking for the features, and refused for the U-Net D."""
    torch.manual_seed(0)
    d = Discriminator(widths=(8, 16, 32)).eval()
    y = torch.rand(2, 3, 32, 32)
    logit, feats = d.forward_with_features(y)
    assert torch.allclose(logit, d(y)) and [f.shape[1:] for f in feats] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    noise = losses.InstanceNoise(0.0, "linear", 0)
    gan = objectives.GANObjective(d, noise, loss="relativistic", feature_weight=3.0)
    plain = objectives.GANObjective(d, noise, loss="relativistic")
    yhat = (y + 0.1 * torch.randn_like(y)).requires_grad_()
    loss, logs = gan.generator_loss(yhat, y)
    base, _ = plain.generator_loss(yhat, y)
    with torch.no_grad():
        both = d.forward_with_features(torch.cat([y, yhat]))[1]
        want = sum((f[:2] - f[2:]).abs().mean() for f in both)
    assert logs["feature_l1"] == pytest.approx(float(want), rel=1e-5)
    assert loss.item() == pytest.approx(base.item() + 3.0 * want.item(), rel=1e-5)
    loss.backward()
    assert yhat.grad.abs().sum() > 0
    assert gan.generator_loss(y.clone(), y)[1]["feature_l1"] == 0
    with pytest.raises(AffsrError, match="--feature-weight needs a strided discriminator"):
        objectives.GANObjective(UNetDiscriminator(width=8), noise, feature_weight=1.0)
