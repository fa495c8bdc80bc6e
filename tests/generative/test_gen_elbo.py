"""The ELBO: its terms against hand computations and a Monte-Carlo KL, and a VAE that lowers it on
real Fashion-MNIST, judged by an evaluation written in the test (not the library's)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from visionsuite.models.generative import ConvVAE, MLPVAE, gaussian_kl, kl_weight, negative_elbo, vae_loss
from visionsuite.models.generative.vae import VAE


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_negative_elbo_bernoulli_by_hand() -> None:
    x = torch.tensor([[[[1.0, 0.0]]]])
    logits = torch.tensor([[[[2.0, -1.0]]]])
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    recon = _softplus(-2.0) + _softplus(-1.0)  # -log σ(2) - log(1 - σ(-1))
    kl = 0.5 * (0.25 + 1 - 1 - 0) + 0.5 * (1 + 4 - 1 - math.log(4.0))
    terms = negative_elbo(x, logits, mu, logvar, "bernoulli")
    assert terms.recon.item() == pytest.approx(recon, abs=1e-5)
    assert terms.kl.item() == pytest.approx(kl, abs=1e-5)
    assert terms.nelbo.item() == pytest.approx(recon + kl, abs=1e-5)


def test_negative_elbo_gaussian_by_hand() -> None:
    x, mean = torch.tensor([[[[0.2, 0.9]]]]), torch.tensor([[[[0.5, 0.5]]]])
    sigma = 0.5
    nll = sum(0.5 * ((a - b) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi) for a, b in ((0.2, 0.5), (0.9, 0.5)))
    zeros = torch.zeros(1, 3)
    terms = negative_elbo(x, mean, zeros, zeros, "gaussian", torch.tensor(math.log(sigma)))
    assert terms.recon.item() == pytest.approx(nll, abs=1e-5)
    assert terms.kl.item() == pytest.approx(0.0, abs=1e-7)  # q = prior


def test_analytic_kl_matches_monte_carlo() -> None:
    mu, logvar = torch.tensor([[0.7, -1.2, 0.1]]), torch.tensor([[-0.5, 0.8, -2.0]])
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert gaussian_kl(mu, logvar).item() == pytest.approx(mc.item(), abs=0.02)


def test_kl_weight_warmup() -> None:
    assert [kl_weight(s, beta=2.0, warmup_steps=4) for s in (0, 2, 4, 10)] == [0.0, 1.0, 2.0, 2.0]
    assert kl_weight(0, beta=0.5) == 0.5


def _independent_nelbo(vae: VAE, x: Tensor, samples: int = 4) -> tuple[float, float]:
    """Mean negative ELBO and KL (nats per image), sampled and computed here from encode/decode only,
    so a model that trained with a broken reparameterisation or without its KL is caught."""
    vae.eval()
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
        recon = torch.stack(
            [
                F.binary_cross_entropy_with_logits(vae.decode(mu + (0.5 * logvar).exp() * torch.randn_like(mu)), x, reduction="none").sum((1, 2, 3))
                for _ in range(samples)
            ]
        ).mean(0)
    vae.train()
    return float((recon + kl).mean()), float(kl.mean())


@pytest.mark.parametrize(
    ("make", "bound"),
    [(lambda: ConvVAE(1, 28, 8, widths=(8, 16)), 330.0), (lambda: MLPVAE(1, 28, 8, hidden=(128, 128)), 330.0)],
    ids=["conv", "mlp"],
)
def test_vae_lowers_negative_elbo_on_fashion_mnist(make, bound: float, fmnist_train, fmnist_test) -> None:
    x, _ = fmnist_train
    held_out = fmnist_test[0]
    vae = make()
    start, _ = _independent_nelbo(vae, held_out)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    for step in range(150):
        batch = x[torch.randint(0, len(x), (32,))]
        loss = vae_loss(vae.elbo_terms(batch, vae(batch)), kl_weight(step, warmup_steps=20))
        opt.zero_grad()
        loss.backward()
        opt.step()
    end, kl = _independent_nelbo(vae, held_out)
    assert end < bound < start, (start, end)
    assert kl > 3.0  # the latent carries information: the posterior has not collapsed onto the prior
