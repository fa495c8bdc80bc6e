"""The convolutional autoencoder and its denoising corruption."""

from __future__ import annotations

import pytest
import torch

from visionsuite.errors import ConfigError
from visionsuite.models.generative import ConvAutoencoder, corrupt, reconstruction_metrics
from visionsuite.models.generative.metrics import update_reconstruction


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
@pytest.mark.parametrize(("chans", "size"), [(1, 28), (3, 32)])
def test_shapes_and_range(chans: int, size: int, upsample: str) -> None:
    ae = ConvAutoencoder(chans, size, latent_dim=10, widths=(8, 16), upsample=upsample)
    x = torch.rand(2, chans, size, size)
    assert ae.encode(x).shape == (2, 10)
    out = ae(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


def test_encoder_is_built_from_backbone_blocks() -> None:
    ae = ConvAutoencoder(1, 28, widths=(8, 16), depth=2)
    convs = [m for m in ae.encoder.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ae.decoder.modules())


def test_transposed_decoder_upsamples_with_stride_2_transposed_convs() -> None:
    """Each stage doubles the side with a 4x4 stride-2 transposed conv, the last straight to the image."""
    ae = ConvAutoencoder(1, 28, widths=(8, 16), upsample="transposed")
    ups = [m for m in ae.decoder.features.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in ups] == [(16, 8, (2, 2)), (8, 1, (2, 2))]
    assert not any(isinstance(m, (torch.nn.Upsample, torch.nn.Conv2d)) for m in ae.decoder.features.modules())
    with pytest.raises(ConfigError, match="upsample"):
        ConvAutoencoder(1, 28, upsample="bilinear")


def test_image_size_that_cannot_halve_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot be halved"):
        ConvAutoencoder(1, 30, widths=(8, 16, 32))


def test_reconstruction_error_falls_on_fashion_mnist(fmnist_train, fmnist_test) -> None:
    x, held_out = fmnist_train[0], fmnist_test[0]
    ae = ConvAutoencoder(1, 28, latent_dim=16, widths=(8, 16))

    def evaluate() -> dict[str, float]:
        metrics = reconstruction_metrics()
        ae.eval()
        with torch.no_grad():
            update_reconstruction(metrics, ae(held_out), held_out)
        ae.train()
        return {k: float(v) for k, v in metrics.compute().items()}

    before = evaluate()
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    for _ in range(100):
        batch = x[torch.randint(0, len(x), (32,))]
        loss = torch.nn.functional.mse_loss(ae(corrupt(batch, "gaussian", 0.1)), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    # a constant mean image scores about 0.09 MSE on Fashion-MNIST; the code must beat it
    assert after["mse"] < 0.6 * before["mse"] and after["mse"] < 0.05, (before, after)
    assert after["psnr"] == pytest.approx(10 * torch.log10(torch.tensor(1 / after["mse"])).item(), rel=1e-4)


def test_noise_kinds_and_levels() -> None:
    x = torch.full((4, 1, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    masked = corrupt(x, "masking", 0.3, generator=g)
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert set(masked.unique().tolist()) == {0.0, 0.5}
    sp = corrupt(x, "salt_pepper", 0.2, generator=g)
    assert (sp != 0.5).float().mean().item() == pytest.approx(0.2, abs=0.02)
    assert (sp == 1).float().mean().item() == pytest.approx(0.1, abs=0.02)
    assert (corrupt(x, "gaussian", 0.1, generator=g) - x).std().item() == pytest.approx(0.1, abs=0.01)
    assert corrupt(x, "none", 0.0) is x


@pytest.mark.parametrize(("kind", "level"), [("masking", 1.5), ("gaussian", -0.1), ("blur", 0.1)])
def test_bad_noise_is_a_config_error(kind: str, level: float) -> None:
    with pytest.raises(ConfigError):
        corrupt(torch.zeros(1, 1, 2, 2), kind, level)
