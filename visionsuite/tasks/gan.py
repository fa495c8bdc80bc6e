"""GANs as a task: DCGAN (Radford et al., 2016) and its stabilised variants (WGAN-GP; hinge loss
with spectral normalisation), optionally class-conditional and with a generator EMA.

Lightning manual optimisation: two optimisers from :meth:`BaseTask.make_optimizer` (generator,
discriminator), ``n_critic`` discriminator steps per generator step. ``trainer.global_step`` counts
the optimiser steps of both networks (Lightning's rule under manual optimisation), so
``max_steps`` does too. There is no validation score to select on (``monitor = None``): only
``last.ckpt`` is kept, and samples are judged by FID/KID in a named feature space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from torchmetrics import Metric

from visionsuite.errors import ConfigError
from visionsuite.models.generative import (
    DCGANDiscriminator,
    DCGANGenerator,
    DiscriminatorWinsDetector,
    InceptionFeatures,
    build_sample_metrics,
    classifier_features,
    compute_sample_metrics,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    make_ema,
    to_signed,
    to_unit,
)
from visionsuite.models.generative.gan_losses import GAN_LOSSES
from visionsuite.outputs import generative_pictures as pictures
from visionsuite.tasks.base import StepOutput
from visionsuite.tasks.generative import EVAL_SEED, GenerativeTask, _Eval, as_figure
from visionsuite.tasks.optim import OptimizerName


class GANTask(GenerativeTask):
    """Train a DCGAN-style generator against a discriminator (critic); see the module docstring."""

    monitor = None
    headline_format = "{:.2f}"
    evaluation_options = GenerativeTask.evaluation_options | {
        "fid_classifier_ckpt", "fid_backbone", "fid_features_name", "inception_weights", "kid_subset_size",
    }  # fmt: skip
    training_options = GenerativeTask.training_options | {
        "loss", "gp_weight", "n_critic", "d_lr", "ema_warmup", "d_wins_threshold", "d_wins_patience",
    }  # fmt: skip

    def __init__(
        self,
        in_chans: int = 1,
        img_size: int = 28,
        latent_dim: int = 100,
        g_width: int = 64,
        d_width: int = 64,
        loss: str = "nonsaturating",
        gp_weight: float = 10.0,
        spectral_norm: bool = False,
        d_norm: str = "batch",
        conditional_classes: int = 0,
        n_critic: int = 1,
        d_lr: float | None = None,
        ema_decay: float | None = None,
        ema_warmup: bool = True,
        num_fixed_samples: int = 64,
        fid_classifier_ckpt: str | None = None,
        fid_backbone: str = "lenet5",
        fid_features_name: str | None = None,
        inception_weights: str | None = None,
        kid_subset_size: int = 1000,
        d_wins_threshold: float = 0.01,
        d_wins_patience: int = 200,
        optimizer: OptimizerName = "adam",
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        **kwargs: Any,
    ) -> None:
        """
        Args:
            in_chans: image channels; must equal the data module's.
            img_size: image side, 4·2ᵏ or 7·2ᵏ (28, 32, 64).
            latent_dim: size of the noise vector z.
            g_width: generator width (channels of its last hidden layer).
            d_width: discriminator width (channels of its first layer).
            loss: ``nonsaturating`` (DCGAN), ``hinge`` (with ``spectral_norm``) or ``wasserstein``
                (WGAN-GP: with ``gp_weight``, ``d_norm: none``, ``n_critic: 5``, betas (0, 0.9)).
            gp_weight: gradient-penalty weight λ (used with ``wasserstein``; 0 disables it).
            spectral_norm: spectral normalisation on every discriminator layer.
            d_norm: discriminator normalisation (``batch``; ``none`` for WGAN-GP).
            conditional_classes: > 0: class-conditional generator and (projection) discriminator;
                the data's class count.
            n_critic: discriminator steps per generator step.
            d_lr: discriminator learning rate (default ``lr``).
            ema_decay: keep an EMA of the generator with this decay (e.g. 0.999) and sample and
                evaluate with it.
            ema_warmup: ramp the EMA's decay up as ``min(ema_decay, (1 + n) / (10 + n))`` after n
                updates (TensorFlow's rule), so short runs do not sample a mostly untrained average.
            num_fixed_samples: size of the fixed-noise sample grid drawn at every validation.
            fid_classifier_ckpt: a visionsuite classification checkpoint (``fid_backbone``), or the
                folder of a classification run (its best checkpoint), trained on
                the same dataset: FID/KID are computed in its pre-logits feature space, named
                ``fid_<fid_features_name>`` (default name ``<fid_backbone>_<dataset>``).
            fid_backbone: the backbone of that checkpoint.
            fid_features_name: the feature space's name in the metric keys.
            inception_weights: torch-fidelity's Inception-v3 weights file: also the standard
                ``fid_inception``/``kid_inception``.
            kid_subset_size: KID subset size (capped at the number of evaluated images).
            d_wins_threshold: D loss under which D counts as winning (warning, once).
            d_wins_patience: generator steps D must keep winning, with G's loss rising, to warn.
            optimizer: both networks' optimiser (DCGAN: adam).
            lr: generator (and default discriminator) learning rate (DCGAN: 2e-4).
            betas: Adam betas (DCGAN (0.5, 0.999); WGAN-GP (0, 0.9)).
            **kwargs: other optimisation and checkpointing options of :class:`BaseTask`
                (``scheduler`` must stay ``none``).
        """
        GAN_LOSSES[loss]  # an unknown name: the nearest one suggested
        if n_critic < 1:
            raise ConfigError(f"n_critic must be ≥ 1, got {n_critic}")
        if kwargs.get("scheduler", "none") != "none":
            raise ConfigError("GANTask supports scheduler: none only (its two optimisers step by hand)")
        super().__init__(optimizer=optimizer, lr=lr, betas=betas, **kwargs)
        self.automatic_optimization = False

    # -- networks ------------------------------------------------------------------------------
    def configure_models(self) -> None:
        hp = self.hparams
        self.generator = DCGANGenerator(
            hp.latent_dim, hp.in_chans, hp.img_size, width=hp.g_width, num_classes=hp.conditional_classes
        )
        self.discriminator = DCGANDiscriminator(
            hp.in_chans, hp.img_size, width=hp.d_width, num_classes=hp.conditional_classes, norm=hp.d_norm,
            spectral_norm=hp.spectral_norm,
        )
        self.generator_ema = make_ema(self.generator, hp.ema_decay, warmup=hp.ema_warmup) if hp.ema_decay else None
        # the noise (and labels) of the sample grid drawn at every validation, saved with the weights
        gen = torch.Generator().manual_seed(EVAL_SEED)
        self.register_buffer("fixed_z", torch.randn(hp.num_fixed_samples, hp.latent_dim, generator=gen))
        self.register_buffer("fixed_labels", torch.arange(hp.num_fixed_samples) % max(hp.conditional_classes, 1))
        self.d_wins = DiscriminatorWinsDetector(threshold=hp.d_wins_threshold, patience=hp.d_wins_patience)
        #: the fixed-noise grids of every validation (uint8), the frames of the run's GIF.
        self.sample_frames: list[Tensor] = []
        #: what each frame of ``samples.gif`` shows (``epoch 3, step 1290``), written under it.
        self.sample_frame_labels: list[str] = []
        self.sample_metrics: dict[str, dict[str, Metric]] = {}
        #: per stage, whether the real images' features are in (fed once: real statistics persist)
        self._real_fed: dict[str, bool] = {}
        self._metrics_built = False

    def expected_data_classes(self) -> int | None:
        return self.hparams.conditional_classes or None

    def sampler(self) -> torch.nn.Module:
        """The generator to sample and evaluate with: the EMA copy when there is one."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    def _labels(self, batch: dict[str, Any]) -> Tensor | None:
        return batch["label"] if self.hparams.conditional_classes else None

    def configure_optimizers(self) -> Any:
        d_over = {"lr": self.hparams.d_lr} if self.hparams.d_lr else {}
        return [self.make_optimizer(self.generator), self.make_optimizer(self.discriminator, **d_over)]

    # -- training: manual optimisation -------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        real = to_signed(self.pixels(batch["image"]))
        labels = self._labels(batch)
        z = torch.randn(len(real), hp.latent_dim, device=real.device)
        with torch.no_grad():
            fake = self.generator(z, labels)
        d_loss = discriminator_loss(hp.loss, self.discriminator(real, labels), self.discriminator(fake, labels))
        losses = {"d_loss": d_loss}
        d_total = d_loss
        if GAN_LOSSES[hp.loss].critic and hp.gp_weight > 0:
            gp = gradient_penalty(lambda t: self.discriminator(t, labels), real, fake)
            losses["gp"] = gp
            d_total = d_loss + hp.gp_weight * gp
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_total)
        opt_d.step()

        if (batch_idx + 1) % hp.n_critic == 0:
            self.discriminator.requires_grad_(False)  # G's step needs D's input gradient only
            z = torch.randn(len(real), hp.latent_dim, device=real.device)
            g_loss = generator_loss(hp.loss, self.discriminator(self.generator(z, labels), labels))
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.discriminator.requires_grad_(True)
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
            losses["g_loss"] = g_loss
            if not GAN_LOSSES[hp.loss].critic and self.d_wins.update(float(d_loss.detach()), float(g_loss.detach())):
                rank_zero_warn(self.d_wins.message(self.global_step))
        self.last_losses = {k: v.detach() for k, v in losses.items()}  # what the divergence guard checks
        self.log_train_step(self.last_losses, batch)

    # -- evaluation: losses on held-out images, FID/KID ------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage in ("fit", "validate", "test") and not self._metrics_built:
            self.sample_metrics, self._metrics_built = self._build_sample_metrics(), True

    def _build_sample_metrics(self) -> dict[str, dict[str, Metric]]:
        """Per evaluation stage, FID/KID in each configured feature space (none configured: none)."""
        hp = self.hparams
        extractors = []
        if hp.fid_classifier_ckpt:
            dm = self.datamodule
            if dm is None or not getattr(dm, "mean", None):
                raise ConfigError("fid_classifier_ckpt needs a data module with mean/std (the classifier's normalisation)")
            name = hp.fid_features_name or f"{hp.fid_backbone}_{dm.dataset_name}"
            ckpt = Path(hp.fid_classifier_ckpt).expanduser()
            if ckpt.is_dir():  # a classification run folder: its one best checkpoint
                best = sorted((ckpt / "checkpoints").glob("best-*.ckpt"))
                if len(best) != 1:
                    raise ConfigError(
                        f"fid_classifier_ckpt {ckpt}: a run folder needs exactly one checkpoints/best-*.ckpt,"
                        f" found {len(best)}; give the checkpoint file instead"
                    )
                ckpt = best[0]
            extractors.append(
                classifier_features(
                    hp.fid_backbone, str(ckpt), name, num_classes=dm.num_classes, mean=dm.mean,
                    std=dm.std, in_chans=dm.in_chans,
                )
            )
        if hp.inception_weights:
            extractors.append(InceptionFeatures(hp.inception_weights))
        if not extractors:
            rank_zero_info(
                "GANTask: no FID/KID (no feature extractor configured: set model.fid_classifier_ckpt to a"
                " classifier checkpoint trained on this dataset, or model.inception_weights)"
            )
            return {}
        built: dict[str, dict[str, Metric]] = {}
        for stage in ("val", "test"):
            built[stage] = {}
            for extractor in extractors:
                built[stage].update(build_sample_metrics(extractor, kid_subset_size=hp.kid_subset_size))
        return built

    def headline_key(self) -> str | None:
        """The closing line shows the first configured FID (none configured: no closing line)."""
        keys = list(self.sample_metrics.get("test", {}))
        return f"test/{keys[0]}" if keys else None

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        hp = self.hparams
        real01 = self.pixels(batch["image"])
        labels = self._labels(batch)
        z = torch.randn(len(real01), hp.latent_dim, device=real01.device, generator=self.noise_source(stage))
        fake = self.sampler()(z, labels)
        d_loss = discriminator_loss(hp.loss, self.discriminator(to_signed(real01), labels), self.discriminator(fake, labels))
        g_loss = generator_loss(hp.loss, self.discriminator(fake, labels))
        for metric in self.sample_metrics.get(stage, {}).values() if not self.trainer.sanity_checking else ():
            metric.to(real01.device)
            if not self._real_fed.get(stage):
                metric.update(real01, real=True)
            metric.update(to_unit(fake), real=False)
        return StepOutput(None, None, None, {"d_loss": d_loss, "g_loss": g_loss})

    def _end_epoch(self, stage: str, metrics: Any) -> None:
        super()._end_epoch(stage, metrics)
        sample = self.sample_metrics.get(stage, {})
        if stage == "train" or not sample or not any(m.update_count for m in sample.values()):
            return
        for metric in sample.values():
            if hasattr(metric, "subset_size"):  # KID: subsets cannot be larger than the sets
                n = min(_count(metric.real_features), _count(metric.fake_features))
                metric.subset_size = min(self.hparams.kid_subset_size, n)
        values = compute_sample_metrics(sample)
        for metric in sample.values():
            metric.reset()  # fake features only (reset_real_features=False)
        self._real_fed[stage] = True
        self.stage_results[stage].update({f"{stage}/{k}": torch.tensor(v) for k, v in values.items()})
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")

    # -- pictures ----------------------------------------------------------------------------------
    def fixed_noise_grid(self) -> Tensor:
        """Samples of the fixed noise vector (and labels) from the sampling generator, uint8."""
        sampler = self.sampler()
        labels = self.fixed_labels if self.hparams.conditional_classes else None
        with _Eval(sampler):
            images = to_unit(sampler(self.fixed_z, labels))
        return pictures.image_grid(images, nrow=8)

    def on_stage_end(self, stage: str) -> None:
        super().on_stage_end(stage)
        if stage == "val" and not self.trainer.sanity_checking:
            self.sample_frames.append(self.fixed_noise_grid())
            self.sample_frame_labels.append(f"epoch {self.current_epoch}, step {self.global_step}")

    def figures(self, stage: str) -> dict[str, Any]:
        """Real images of the stage beside the fixed-noise samples, each column titled (at every
        validation: one scroll shows the run's progress against what it should look like)."""
        if stage == "val" and self.sample_frames:
            samples = self.sample_frames[-1]
        elif stage == "test":
            samples = self.fixed_noise_grid()
        else:
            return {}
        title = f"{stage}, epoch {self.current_epoch}, step {self.global_step}"
        if stage not in self.first_batches:
            return {f"{stage}/samples": as_figure(samples, f"samples from the fixed noise ({title})")}
        from visionsuite.outputs.figures import labelled_grid

        batch, _ = self.first_batches[stage]
        real = pictures.image_grid(self.display_pixels(batch["image"][: self.hparams.num_fixed_samples].float()), nrow=8)
        columns = [f"real ({stage} images)", "generated from the fixed noise"]
        figure = labelled_grid([[real.float() / 255, samples.float() / 255]], columns, title=title, min_cell=4.0)
        return {f"{stage}/samples": figure}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the GIF's frames with the weights, so a resumed run's GIF starts at the beginning."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["sample_frames"] = [f.cpu() for f in self.sample_frames]
        checkpoint["sample_frame_labels"] = list(self.sample_frame_labels)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.sample_frames = list(checkpoint.get("sample_frames", []))
        labels = list(checkpoint.get("sample_frame_labels", []))  # older checkpoints kept the frames only
        self.sample_frame_labels = labels if len(labels) == len(self.sample_frames) else [""] * len(self.sample_frames)

    def on_fit_end(self) -> None:
        """The fixed-noise grids of every validation as one animated GIF in the run folder."""
        if self.sample_frames and self.trainer.is_global_zero:
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            path = pictures.save_gif(self.sample_frames, folder / "samples.gif", labels=self.sample_frame_labels)
            rank_zero_info(f"GANTask: {len(self.sample_frames)} fixed-noise sample grids → {path}")


def _count(features: Tensor | list[Tensor]) -> int:
    """Images in a KID feature state (a list of batches, or one tensor after a sync)."""
    return int(features.shape[0]) if isinstance(features, Tensor) else sum(len(f) for f in features)
