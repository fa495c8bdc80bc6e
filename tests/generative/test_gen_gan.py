"""DCGAN networks, the GAN losses and gradient penalty against hand computations, the generator
EMA and the "discriminator wins" detector."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visionsuite.errors import ConfigError
from visionsuite.models.generative import (
    DCGANDiscriminator,
    DCGANGenerator,
    DiscriminatorWinsDetector,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    make_ema,
    warmup_decay,
)


@pytest.mark.parametrize(("chans", "size", "upsamplings"), [(1, 28, 2), (3, 32, 3)])
def test_dcgan_shapes_range_and_architecture(chans: int, size: int, upsamplings: int) -> None:
    g, d = DCGANGenerator(16, chans, size, width=8), DCGANDiscriminator(chans, size, width=8)
    x = g(torch.randn(4, 16))
    assert x.shape == (4, chans, size, size) and x.min() >= -1 and x.max() <= 1
    assert isinstance(g.net[-1], nn.Tanh)
    assert sum(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in g.modules()) == upsamplings
    assert d(x).shape == (4,)
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d) for m in d.modules())
    first_block = d.features[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in first_block.modules())  # no BN on D's input layer


def test_dcgan_init_statistics() -> None:
    g = DCGANGenerator(100, 3, 32, width=64)
    convs = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert convs.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert convs.std().item() == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01) and scales.std().item() == pytest.approx(0.02, rel=0.2)


def test_bad_image_size() -> None:
    with pytest.raises(ConfigError, match="4·2"):
        DCGANGenerator(8, 1, 30)


def test_class_conditional_networks_use_the_labels() -> None:
    g = DCGANGenerator(8, 1, 28, width=8, num_classes=10).eval()
    d = DCGANDiscriminator(1, 28, width=8, num_classes=10, spectral_norm=True).eval()
    z = torch.randn(2, 8)
    a, b = torch.tensor([0, 0]), torch.tensor([3, 3])
    assert not torch.allclose(g(z, a), g(z, b))
    x = g(z, a)
    assert not torch.allclose(d(x, a), d(x, b))
    assert all(nn.utils.parametrize.is_parametrized(m) for m in d.modules() if isinstance(m, nn.Conv2d | nn.Embedding))


def test_losses_by_hand() -> None:
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])
    hinge_d = (max(0, 1 - 2.0) + max(0, 1 + 0.5)) / 2 + (max(0, 1 + 0.5) + max(0, 1 - 3.0)) / 2
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(hinge_d)
    assert generator_loss("hinge", fake).item() == pytest.approx(1.25)
    bce = F.binary_cross_entropy_with_logits
    ns_d = bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))
    assert discriminator_loss("nonsaturating", real, fake).item() == pytest.approx(ns_d.item())
    assert generator_loss("nonsaturating", fake).item() == pytest.approx(bce(fake, torch.ones(2)).item())
    assert discriminator_loss("wasserstein", real, fake).item() == pytest.approx(-1.25 - 0.75)


def test_gradient_penalty_on_a_linear_critic() -> None:
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])  # ‖∇‖ = 5 everywhere, so GP = (5 - 1)²
    critic = lambda x: x.flatten(1) @ w  # noqa: E731
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)


def test_gradient_penalty_is_taken_at_the_interpolates() -> None:
    critic = lambda x: 0.5 * x.flatten(1).pow(2).sum(1)  # noqa: E731  ∇ = x̂
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    alpha = torch.tensor([0.25])
    mixed = torch.tensor([0.5, 0.75])  # 0.25·real + 0.75·fake
    expected = (mixed.norm() - 1) ** 2
    assert gradient_penalty(critic, real, fake, alpha=alpha).item() == pytest.approx(expected.item())


def test_gradient_penalty_trains_the_critic() -> None:
    lin = nn.Linear(4, 1)
    gp = gradient_penalty(lambda x: lin(x).flatten(), torch.randn(2, 4), torch.randn(2, 4))
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_ema_update_by_hand() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    for warmup, decay in ((False, 0.9), (True, warmup_decay(0.9, 1))):  # warm-up: 2/11 at the first average
        ema = make_ema(model, decay=0.9, warmup=warmup)
        ema.update_parameters(model)  # first update copies
        old_w, old_mean = model[0].weight.detach().clone(), model[1].running_mean.clone()
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model(torch.randn(8, 2) + 5)  # moves the batch-norm running mean
        ema.update_parameters(model)
        assert torch.allclose(ema.module[0].weight, decay * old_w + (1 - decay) * model[0].weight)
        assert torch.allclose(ema.module[1].running_mean, decay * old_mean + (1 - decay) * model[1].running_mean)
        assert not any(p.requires_grad for p in ema.parameters())


def test_ema_warmup_forgets_the_untrained_start_and_reaches_the_decay() -> None:
    """A weight that jumps from 0 to 1 after the copy: with a fixed 0.999 the average still holds
    0.999^1000 ≈ 37% of the start after 1,000 updates; with the warm-up it is within 1% of 1."""
    assert warmup_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmup_decay(0.999, 8989) < 0.999 and warmup_decay(0.999, 8990) == 0.999
    averages = {}
    for warmup in (False, True):
        model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(model.weight)
        ema = make_ema(model, decay=0.999, warmup=warmup)
        ema.update_parameters(model)
        nn.init.ones_(model.weight)
        for _ in range(1000):
            ema.update_parameters(model)
        averages[warmup] = float(ema.module.weight)
    assert averages[False] == pytest.approx(1 - 0.999**1000, abs=1e-4)
    assert averages[True] > 0.99


def test_gan_task_ema_warmup_option_and_its_position_in_the_checkpoint() -> None:
    from visionsuite.tasks import GANTask

    for warmup, decay in ((True, warmup_decay(0.9, 1)), (False, 0.9)):
        task = GANTask(in_chans=1, img_size=28, latent_dim=8, g_width=8, d_width=8, ema_decay=0.9, ema_warmup=warmup)
        g, ema = task.generator, task.generator_ema
        ema.update_parameters(g)
        before = [p.detach().clone() for p in ema.module.parameters()]
        with torch.no_grad():
            for p in g.parameters():
                p.add_(1.0)
        ema.update_parameters(g)
        for b, e, p in zip(before, ema.module.parameters(), g.parameters()):
            assert torch.allclose(e, decay * b + (1 - decay) * p, atol=1e-6)
        assert int(task.state_dict()["generator_ema.n_averaged"]) == 2


def test_ema_decay_is_checked() -> None:
    with pytest.raises(ConfigError):
        make_ema(nn.Linear(1, 1), decay=1.0)


def test_discriminator_wins_detector_fires_once() -> None:
    det = DiscriminatorWinsDetector(threshold=0.01, patience=5)
    fired = [det.update(0.5, 1.0) for _ in range(3)]  # D not winning
    fired += [det.update(0.001, 1.0 + 0.1 * i) for i in range(10)]  # D wins, G's loss rises
    fired += [det.update(0.001, 5.0) for _ in range(10)]
    assert fired.count(True) == 1 and fired.index(True) == 3 + 4
    assert "won" in det.message(step=7)


def test_detector_needs_the_streak_unbroken_and_g_rising() -> None:
    det = DiscriminatorWinsDetector(threshold=0.01, patience=3)
    assert not any(det.update(0.001, 1.0) for _ in range(10))  # G's loss flat
    det = DiscriminatorWinsDetector(threshold=0.01, patience=3)
    seq = [(0.001, 1.0), (0.001, 2.0), (0.5, 3.0), (0.001, 4.0), (0.001, 5.0)]
    assert not any(det.update(d, g) for d, g in seq)
