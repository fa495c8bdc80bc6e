"""Autoencoders and VAEs as tasks: the models of :mod:`visionsuite.models.generative` on any image
data module, with their numbers (MSE/PSNR; the negative ELBO in nats per image) and pictures.

The data module stays normalised like every other task's; :meth:`GenerativeTask.pixels` undoes it
with the module's own mean/std (see :mod:`visionsuite.models.generative.pixels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection

from visionsuite.errors import ConfigError
from visionsuite.models.generative import (
    ConvAutoencoder,
    VAEOutput,
    corrupt,
    kl_weight,
    negative_elbo,
    reparameterize,
    vae_loss,
)
from visionsuite.models.generative.metrics import (
    reconstruction_metrics,
    update_reconstruction,
)
from visionsuite.models.generative.noise import check_noise
from visionsuite.models.generative.vae import VAE_ARCHS
from visionsuite.outputs import generative_pictures as pictures
from visionsuite.outputs.figures import titled_picture
from visionsuite.tasks.base import BaseTask, StepOutput

#: seed of the generator that draws evaluation noise (VAE posterior samples, GAN latents), reset at
#: the start of every validation/test epoch, so an evaluation number is reproducible from a checkpoint.
EVAL_SEED = 1234


class GenerativeTask(BaseTask):
    """What the generative tasks share: [0, 1] pixels from the data module's batches, a seeded
    evaluation noise source, and the figure callback at every validation and test."""

    #: reconstructions and samples are drawn in every stage, ``predict`` too
    figure_functions = frozenset({"fit", "validate", "test", "predict"})

    def expected_data_classes(self) -> int | None:
        return None  # unconditional models work on any labelled data; GANTask checks its conditional_classes

    def setup(self, stage: str) -> None:
        """Also refuse data whose image size is not the model's ``img_size`` (the networks are
        built for one size: another one fails deep inside a reshape)."""
        super().setup(stage)
        size = getattr(self.datamodule, "image_size", None)
        side = self.hparams.get("img_size")
        if side is not None and isinstance(size, (tuple, list)) and tuple(size) != (side, side):
            raise ConfigError(
                f"model.img_size={side} but the data's images are {size[0]}x{size[1]}; set"
                f" model.init_args.img_size to the data's side (square images) or data.init_args.image_size: {side}"
            )

    def pixels(self, images: Tensor) -> Tensor:
        """The batch's images as [0, 1] pixels (the data module's normalisation undone)."""
        return self.display_pixels(images)

    def on_stage_start(self, stage: str) -> None:
        """Every evaluation draws the same noise (:data:`EVAL_SEED`), so figures and metrics compare."""
        self.eval_generator = torch.Generator(device=self.device).manual_seed(EVAL_SEED)

    def noise_source(self, stage: str) -> torch.Generator | None:
        """The seeded generator in evaluation, the global RNG in training."""
        return None if stage == "train" else getattr(self, "eval_generator", None)



def as_figure(image: Tensor, title: str) -> Any:
    """A uint8 picture of :mod:`~visionsuite.outputs.generative_pictures` under ``title``, as the
    figure the figure logger writes."""
    return titled_picture(image.float() / 255.0, title)


class _Eval:
    """``with _Eval(module):`` eval mode and no gradients, the previous mode restored after."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.was_training = module, module.training
        self.grad = torch.no_grad()

    def __enter__(self) -> None:
        self.module.eval()
        self.grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.grad.__exit__(*exc)
        self.module.train(self.was_training)


class AutoencoderTask(GenerativeTask):
    """A convolutional autoencoder (optionally denoising) trained on pixel MSE; MSE and PSNR reported,
    the best checkpoint chosen on validation MSE."""

    computes_train_metrics = False  # the loss is the training MSE

    monitor = "val/mse"
    mode = "min"
    headline_format = "{:.5f}"
    evaluation_options = GenerativeTask.evaluation_options | {"num_sample_images"}
    training_options = GenerativeTask.training_options | {"noise", "noise_level"}

    def __init__(
        self,
        in_chans: int = 1,
        img_size: int = 28,
        latent_dim: int = 32,
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str = "relu",
        upsample: str = "nearest",
        noise: str = "none",
        noise_level: float = 0.0,
        num_sample_images: int = 32,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            in_chans: image channels; must equal the data module's.
            img_size: image side (the data's).
            latent_dim: bottleneck size.
            widths: encoder stage widths (the decoder mirrors them).
            depth: backbone blocks per stage.
            norm: normalisation layer of the blocks (``batch``, ``none``, …).
            activation: activation of the blocks.
            upsample: the decoder's ×2 step: ``nearest`` (+ 3x3 conv; no checkerboard artefacts)
                or ``transposed`` (4x4 stride-2 transposed conv; ~4x cheaper per step on CPU).
            noise: denoising: corruption of the input (``none``, ``gaussian``, ``salt_pepper``,
                ``masking``); the target stays the clean image. Applied in every stage, so the
                reported MSE is the denoising error.
            noise_level: σ for gaussian, the corrupted fraction otherwise.
            num_sample_images: how many inputs the reconstruction picture shows.
            **kwargs: optimisation and checkpointing options of :class:`BaseTask`.
        """
        check_noise(noise, noise_level)
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = ConvAutoencoder(
            hp.in_chans, hp.img_size, hp.latent_dim, widths=hp.widths, depth=hp.depth, norm=hp.norm,
            activation=hp.activation, upsample=hp.upsample,
        )

    def configure_metrics(self) -> MetricCollection:
        return reconstruction_metrics()

    def update_metrics(self, metrics: MetricCollection, out: StepOutput, batch: dict[str, Any]) -> None:
        update_reconstruction(metrics, out.preds, out.target)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        x = self.pixels(batch["image"])
        hp = self.hparams
        inputs = corrupt(x, hp.noise, hp.noise_level, generator=self.noise_source(stage))
        recon = self.model(inputs)
        loss = F.mse_loss(recon, x)
        return StepOutput(loss, recon.detach(), x)

    def figures(self, stage: str) -> dict[str, Any]:
        """Inputs (corrupted when denoising) above their reconstructions; an interpolation in code
        space between pairs of evaluation images."""
        if stage not in self.first_batches:
            return {}
        batch, _ = self.first_batches[stage]
        hp = self.hparams
        x = self.pixels(batch["image"][: hp.num_sample_images])
        # the corrupted inputs drawn again (seeded), and what the model makes of exactly those
        shown = corrupt(x, hp.noise, hp.noise_level, generator=torch.Generator(x.device).manual_seed(EVAL_SEED))
        with _Eval(self.model):
            recon = self.model(shown)
        step = f"{stage}, epoch {self.current_epoch}, step {self.global_step}"
        label = "corrupted input" if hp.noise not in (None, "none") else "input"
        figs = {f"{stage}/reconstructions": pictures.reconstruction_figure(shown, recon, f"reconstructions ({step})",
                                                                          input_label=label)}  # fmt: skip
        if len(x) >= 2:
            with _Eval(self.model):
                codes = self.model.encode(x[: 2 * (min(4, len(x) // 2))])
            half = len(codes) // 2
            figs[f"{stage}/interpolation"] = as_figure(
                pictures.interpolation_grid(self.model.decode, codes[:half], codes[half:], steps=10),
                f"decoded along straight lines between codes of two images ({step})",
            )
        return figs


class VAETask(GenerativeTask):
    """A VAE (convolutional, or Kingma & Welling's MLP) trained on the (β-weighted) negative ELBO.

    Reported: the negative ELBO in nats per image (``neg_elbo``) and its two terms (``nll``:
    E_q[−log p(x|z)] under the stated likelihood, ``kl``), estimated with one posterior sample per
    image; in evaluation that sample comes from a generator seeded with :data:`EVAL_SEED` at the
    start of the epoch, so the test number is reproducible from the checkpoint. β and the KL
    warm-up shape only the training loss; the reported bound always has β = 1.
    """

    monitor = "val/neg_elbo"
    mode = "min"
    headline_format = "{:.2f} nats"
    evaluation_options = GenerativeTask.evaluation_options | {"num_sample_images", "scatter_points"}
    training_options = GenerativeTask.training_options | {"beta", "kl_warmup_steps"}

    def __init__(
        self,
        in_chans: int = 1,
        img_size: int = 28,
        latent_dim: int = 16,
        arch: str = "conv",
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str | None = None,
        upsample: str = "transposed",
        fc_hidden: Sequence[int] = (256,),
        hidden: Sequence[int] = (500, 500),
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        learn_sigma: bool = False,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        num_sample_images: int = 64,
        scatter_points: int = 2000,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            in_chans: image channels; must equal the data module's.
            img_size: image side (the data's).
            latent_dim: size of z (2 adds the latent scatter and the decoded manifold pictures).
            arch: ``conv`` (the autoencoder's backbone blocks) or ``mlp`` (Kingma & Welling:
                ``hidden`` fully connected layers).
            widths: conv stage widths.
            depth: conv blocks per stage.
            norm: conv normalisation layer.
            activation: hidden activation (default: relu for conv, tanh for mlp, as in the paper).
            upsample: conv decoder's ×2 step, ``transposed`` or ``nearest`` (see the autoencoder).
            fc_hidden: conv: fully connected hidden layers between the conv features and z
                (mirrored in the decoder).
            hidden: MLP hidden layer sizes.
            likelihood: ``bernoulli`` (decoder logits; grey values as targets) or ``gaussian``
                (decoder means, σ = ``sigma``, learned with ``learn_sigma``).
            sigma: Gaussian likelihood σ in [0, 1] pixel units.
            learn_sigma: learn σ (one scalar).
            beta: KL weight of the training loss (β-VAE; 1 = the ELBO).
            kl_warmup_steps: ramp the KL weight linearly from 0 to β over this many steps.
            num_sample_images: prior samples in the fixed-noise grid (also the reconstructions shown).
            scatter_points: 2-D latent: how many evaluation images the latent scatter shows.
            **kwargs: optimisation and checkpointing options of :class:`BaseTask`.
        """
        VAE_ARCHS[arch]  # an unknown name: the nearest one suggested
        if beta < 0 or kl_warmup_steps < 0:
            raise ConfigError(f"beta and kl_warmup_steps must be ≥ 0, got {beta} and {kl_warmup_steps}")
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = VAE_ARCHS[hp.arch](
            hp.in_chans, hp.img_size, latent_dim=hp.latent_dim, likelihood=hp.likelihood, sigma=hp.sigma,
            learn_sigma=hp.learn_sigma, widths=hp.widths, depth=hp.depth, norm=hp.norm, activation=hp.activation,
            upsample=hp.upsample, fc_hidden=hp.fc_hidden, hidden=hp.hidden,
        )  # fmt: skip
        # the prior samples drawn at every validation: the same z each time, saved with the weights
        fixed = torch.randn(hp.num_sample_images, hp.latent_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
        self.register_buffer("fixed_z", fixed)
        self._latents: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.model.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        return VAEOutput(self.model.decode(z), mu, logvar, z)

    def decode_images(self, z: Tensor) -> Tensor:
        """Latents → [0, 1] images (the likelihood's mean)."""
        return self.model.mean_image(self.model.decode(z))

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        x = self.pixels(batch["image"])
        out = self(x, self.noise_source(stage))
        terms = negative_elbo(x, out.output, out.mu, out.logvar, self.model.likelihood, self.model.log_sigma)
        hp = self.hparams
        weight = kl_weight(self.global_step, beta=hp.beta, warmup_steps=hp.kl_warmup_steps) if stage == "train" else hp.beta
        loss = vae_loss(terms, weight)
        logged = {"neg_elbo": terms.nelbo.mean(), "nll": terms.recon.mean(), "kl": terms.kl.mean()}
        if stage != "train":
            self._keep_latents(out.mu, batch.get("label"))
            return StepOutput(loss, self.model.mean_image(out.output.detach()), x, logged)
        if hp.kl_warmup_steps:
            logged["kl_weight"] = loss.new_tensor(weight)  # on the loss's device, like the other terms
        return StepOutput(loss, None, None, logged)

    def _keep_latents(self, mu: Tensor, labels: Tensor | None) -> None:
        held = sum(len(m) for m, _ in self._latents)
        if self.hparams.latent_dim == 2 and labels is not None and held < self.hparams.scatter_points:
            self._latents.append((mu.detach().cpu(), labels.detach().cpu()))

    def on_stage_start(self, stage: str) -> None:
        super().on_stage_start(stage)
        self._latents = []

    def figures(self, stage: str) -> dict[str, Any]:
        """Prior samples from the fixed noise, reconstructions beside their inputs, interpolations
        between evaluation images, and for a 2-D latent the latent scatter and decoded manifold."""
        figs: dict[str, Any] = {}
        step = f"{stage}, epoch {self.current_epoch}, step {self.global_step}"
        with _Eval(self.model):
            grid = pictures.image_grid(self.decode_images(self.fixed_z), nrow=8)
            figs[f"{stage}/samples"] = as_figure(grid, f"samples from the prior, fixed noise ({step})")
            if stage in self.first_batches:
                batch, out = self.first_batches[stage]
                k = self.hparams.num_sample_images
                x = self.pixels(batch["image"])
                figs[f"{stage}/reconstructions"] = pictures.reconstruction_figure(
                    x[:k], out.preds[:k], f"reconstructions, mean of the decoder ({step})"
                )
                pairs = min(4, len(x) // 2)
                if pairs:
                    mu, _ = self.model.encode(x[: 2 * pairs])
                    figs[f"{stage}/interpolation"] = as_figure(
                        pictures.interpolation_grid(self.decode_images, mu[:pairs], mu[pairs:], steps=10),
                        f"decoded along straight lines between the latent means of two images ({step})",
                    )
            if self.hparams.latent_dim == 2:
                figs[f"{stage}/manifold"] = as_figure(
                    pictures.manifold_grid(self.decode_images, 20, device=self.device),
                    f"the 2-D latent manifold: z1 left to right, z2 top to bottom, at N(0, 1) quantiles ({step})",
                )
                if self._latents:
                    z = torch.cat([m for m, _ in self._latents])[: self.hparams.scatter_points]
                    y = torch.cat([lab for _, lab in self._latents])[: len(z)]
                    figs[f"{stage}/latent_scatter"] = as_figure(
                        pictures.latent_scatter(z, y, self.class_names() or None), f"latent means by class ({step})"
                    )
        return figs

