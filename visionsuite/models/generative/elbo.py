"""The evidence lower bound, in nats per image, and the weights a β-VAE puts on its KL term.

negative ELBO = E_q[-log p(x|z)] + KL(q(z|x) ‖ N(0, I)), the reconstruction term estimated with the
one reparameterised sample the model drew, the KL in closed form for a diagonal Gaussian.
All terms are summed over pixels / latent dimensions and returned per image (shape [B]), so a
mean over a test set is "nats per image".

Likelihoods:

* ``bernoulli``: the decoder outputs logits; -log p(x|z) = BCE-with-logits summed over pixels.
  On grey-level images (Fashion-MNIST) the targets are the grey values in [0, 1], the common
  convention; the result is then a cross-entropy, not the likelihood of a discrete distribution
  (the continuous Bernoulli, Loaiza-Ganem & Cunningham 2019, would normalise it), so these nats are
  comparable between models evaluated the same way but not with discrete-likelihood papers.
* ``gaussian``: the decoder outputs means; -log N(x; mean, σ²) summed over pixels, with σ fixed or
  learned (``log_sigma`` is a tensor either way).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from visionsuite.core.registry import Registry


class ElboTerms(NamedTuple):
    """Per-image terms in nats, each of shape [B]: ``nelbo = recon + kl``."""

    nelbo: Tensor
    recon: Tensor
    kl: Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) per row: ½ Σ (mu² + σ² − 1 − log σ²)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


class Likelihood(NamedTuple):
    """One decoder likelihood: ``nll(x, output, log_sigma)``, -log p(x|z) per pixel, and ``mean``,
    the [0, 1] pixels to show for a decoder output."""

    nll: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    mean: Callable[[Tensor], Tensor]


def _gaussian_nll(x: Tensor, output: Tensor, log_sigma: Tensor | None) -> Tensor:
    log_sigma = torch.zeros((), device=x.device) if log_sigma is None else log_sigma
    return 0.5 * ((x - output) / log_sigma.exp()).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)


#: every decoder likelihood by name (``VAETask.likelihood``; ``visionsuite list generative``).
LIKELIHOODS: Registry[Likelihood] = Registry("likelihood")
LIKELIHOODS.register("bernoulli")(
    Likelihood(lambda x, output, _: F.binary_cross_entropy_with_logits(output, x, reduction="none"), torch.sigmoid)
)
LIKELIHOODS.register("gaussian")(Likelihood(_gaussian_nll, lambda output: output.clamp(0, 1)))


def reconstruction_nll(x: Tensor, output: Tensor, likelihood: str, log_sigma: Tensor | None = None) -> Tensor:
    """-log p(x|z) per image, summed over pixels (``output``: logits or means, see module doc)."""
    return LIKELIHOODS[likelihood].nll(x, output, log_sigma).flatten(1).sum(1)


def negative_elbo(
    x: Tensor, output: Tensor, mu: Tensor, logvar: Tensor, likelihood: str, log_sigma: Tensor | None = None
) -> ElboTerms:
    """The negative ELBO of each image and its two terms (β = 1: the bound itself, not the loss)."""
    recon = reconstruction_nll(x, output, likelihood, log_sigma)
    kl = gaussian_kl(mu, logvar)
    return ElboTerms(recon + kl, recon, kl)


def kl_weight(step: int, *, beta: float = 1.0, warmup_steps: int = 0) -> float:
    """The KL weight at optimiser step ``step``: β, ramped linearly from 0 over ``warmup_steps``
    (KL warm-up, Bowman et al. 2016 / Sønderby et al. 2016), which keeps the latent from collapsing
    to the prior before the decoder has learnt to use it."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def vae_loss(terms: ElboTerms, weight: float) -> Tensor:
    """The training objective: mean over the batch of recon + ``weight`` · KL."""
    return (terms.recon + weight * terms.kl).mean()
