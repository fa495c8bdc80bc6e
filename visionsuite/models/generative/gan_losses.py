"""GAN objectives on raw discriminator scores (logits / critic values), each a pair (D loss, G loss).

* ``nonsaturating`` (Goodfellow et al., 2014, the DCGAN paper's): BCE on logits for D; G maximises
  log D(G(z)) rather than minimising log(1 − D(G(z))), whose gradient vanishes when D wins.
* ``hinge`` (Lim & Ye 2017; Miyato et al. 2018, with spectral norm): D: E[relu(1 − D(x))] +
  E[relu(1 + D(G(z)))]; G: −E[D(G(z))].
* ``wasserstein`` (Arjovsky et al. 2017) with :func:`gradient_penalty` (Gulrajani et al. 2017,
  λ = 10): D: E[D(G(z))] − E[D(x)] + λ·GP; G: −E[D(G(z))].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from visionsuite.backbones.layers import check_choice

GAN_LOSSES: tuple[str, ...] = ("nonsaturating", "hinge", "wasserstein")


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """D's loss from its scores on real and generated images (GP not included)."""
    check_choice("GAN loss", kind, GAN_LOSSES)
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # BCE(real, 1) + BCE(fake, 0)
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return fake.mean() - real.mean()


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """G's loss from D's scores on generated images."""
    check_choice("GAN loss", kind, GAN_LOSSES)
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()  # BCE(fake, 1)
    return -fake.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, alpha: Tensor | None = None
) -> Tensor:
    """E[(‖∇ D(x̂)‖₂ − 1)²] on x̂ = α·real + (1 − α)·fake, α ~ U(0, 1) per image (or given, [B]).

    The graph is kept (``create_graph``) so the penalty trains the critic.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()
