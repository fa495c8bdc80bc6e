"""Variational autoencoders (Kingma & Welling, 2014): a Gaussian encoder q(z|x) = N(mu, diag σ²),
a sample z = mu + σ·ε (the reparameterisation trick, so gradients reach the encoder), and a
decoder whose output parameterises p(x|z) (see :mod:`.elbo` for the likelihoods).

Inputs are [0, 1] pixels (the task undoes the data module's normalisation, :func:`.pixels.denormalize`).
:class:`ConvVAE` uses the autoencoder's encoder/decoder; :class:`MLPVAE` is the paper's fully
connected model, the benchmark's baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from visionsuite.backbones.layers import activation_factory
from visionsuite.core.registry import Registry
from visionsuite.models.generative.conv import ConvDecoder, ConvEncoder, linear_stack
from visionsuite.models.generative.elbo import LIKELIHOODS, ElboTerms, negative_elbo


class VAEOutput(NamedTuple):
    """``output``: decoder logits (Bernoulli) or means (Gaussian); ``z`` the sample decoded."""

    output: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + exp(½ logvar) · ε, ε ~ N(0, I)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


class VAE(nn.Module):
    """The shared part: subclasses set ``self.encoder`` (→ 2·latent_dim) and ``self.decoder``."""

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, latent_dim: int, likelihood: str, sigma: float, learn_sigma: bool) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        LIKELIHOODS[likelihood]  # an unknown name: the nearest one suggested
        self.likelihood = likelihood
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma: Tensor = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Logits (Bernoulli) or means (Gaussian) of p(x|z)."""
        return self.decoder(z)

    def mean_image(self, output: Tensor) -> Tensor:
        """The pixels to show for a decoder output: sigmoid of logits, or the Gaussian means."""
        return LIKELIHOODS[self.likelihood].mean(output)

    def forward(self, x: Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    def elbo_terms(self, x: Tensor, out: VAEOutput) -> ElboTerms:
        """Per-image negative ELBO and its terms (nats) for the forward pass ``out`` on ``x``."""
        return negative_elbo(x, out.output, out.mu, out.logvar, self.likelihood, self.log_sigma)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, z: Tensor | None = None) -> Tensor:
        """Images in [0, 1] decoded from prior samples (or the given ``z``, e.g. a fixed noise batch)."""
        device = self.log_sigma.device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device) if z is None else z
        return self.mean_image(self.decode(z))


class ConvVAE(VAE):
    """Convolutional VAE: the autoencoder's encoder (backbone blocks) and mirrored decoder."""

    def __init__(
        self,
        in_chans: int = 1,
        image_size: int = 28,
        latent_dim: int = 16,
        *,
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str = "relu",
        upsample: str = "transposed",
        fc_hidden: Sequence[int] = (256,),
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        learn_sigma: bool = False,
    ) -> None:
        """``upsample``, ``fc_hidden``: the decoder's ×2 step and the fully connected layers around
        the code (see :mod:`.conv`; the defaults are the benchmark's, ~4x cheaper per step than
        nearest + conv and better fitted); ``sigma``/``learn_sigma``: the Gaussian likelihood's σ
        (ignored for Bernoulli)."""
        super().__init__(latent_dim, likelihood, sigma, learn_sigma)
        shape = {"widths": widths, "depth": depth, "norm": norm, "activation": activation, "fc_hidden": fc_hidden}
        self.encoder = ConvEncoder(in_chans, image_size, 2 * latent_dim, **shape)
        self.decoder = ConvDecoder(latent_dim, in_chans, image_size, upsample=upsample, **shape)


class MLPVAE(VAE):
    """Kingma & Welling's fully connected VAE: pixels → hidden → hidden → (mu, logvar), and back.

    The paper's MLPs use tanh hidden units (its appendix C); the default here is two hidden layers
    of 500 (784-500-500-z), the benchmark baseline the convolutional VAE must beat.
    """

    def __init__(
        self,
        in_chans: int = 1,
        image_size: int = 28,
        latent_dim: int = 16,
        *,
        hidden: Sequence[int] = (500, 500),
        activation: str = "tanh",
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__(latent_dim, likelihood, sigma, learn_sigma)
        act = activation_factory(activation)
        pixels = in_chans * image_size * image_size

        self.encoder = nn.Sequential(nn.Flatten(1), *linear_stack([pixels, *hidden, 2 * latent_dim], act))
        self.decoder = nn.Sequential(
            *linear_stack([latent_dim, *hidden[::-1], pixels], act), nn.Unflatten(1, (in_chans, image_size, image_size))
        )


#: every VAE architecture by name (``VAETask.arch``; ``visionsuite list generative``): a builder
#: ``(in_chans, image_size, **options)`` taking the options it uses; ``activation=None`` is the
#: architecture's own default (relu for conv, tanh for the paper's MLP).
VAE_ARCHS: Registry[Callable[..., VAE]] = Registry("VAE architecture")


@VAE_ARCHS.register("conv")
def _conv_vae(
    in_chans: int, image_size: int, *, widths: Sequence[int], depth: int, norm: str, activation: str | None,
    upsample: str, fc_hidden: Sequence[int], latent_dim: int, likelihood: str, sigma: float, learn_sigma: bool, **_: object,
) -> VAE:  # fmt: skip
    return ConvVAE(
        in_chans, image_size, widths=widths, depth=depth, norm=norm, activation=activation or "relu", upsample=upsample,
        fc_hidden=fc_hidden, latent_dim=latent_dim, likelihood=likelihood, sigma=sigma, learn_sigma=learn_sigma,
    )  # fmt: skip


@VAE_ARCHS.register("mlp")
def _mlp_vae(
    in_chans: int, image_size: int, *, hidden: Sequence[int], activation: str | None, latent_dim: int, likelihood: str,
    sigma: float, learn_sigma: bool, **_: object,
) -> VAE:  # fmt: skip
    return MLPVAE(
        in_chans, image_size, hidden=hidden, activation=activation or "tanh", latent_dim=latent_dim, likelihood=likelihood,
        sigma=sigma, learn_sigma=learn_sigma,
    )  # fmt: skip
