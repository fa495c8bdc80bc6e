"""The generative tasks end to end on a real Fashion-MNIST subset: the logged negative ELBO is the
formula's, the GAN's manual optimisation steps both networks with their own optimisers, a NaN in
one loss term stops the run naming it, and the sample grids come from the saved fixed noise."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image
from task_tester import TaskTester

from visionsuite.backbones import create_backbone
from visionsuite.cli.app import main
from visionsuite.data import FashionMNISTDataModule
from visionsuite.models.generative import denormalize, negative_elbo, reparameterize
from visionsuite.tasks import GANTask, VAETask
from visionsuite.tasks import gan as gan_module
from visionsuite.tasks.generative import EVAL_SEED

CONFIGS = Path(__file__).parents[2] / "configs" / "generative"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _subsets(train: int, val: int, test: int, batch: int) -> tuple[str, ...]:
    return (
        "--data.init_args.train_subset", str(train), "--data.init_args.val_subset", str(val),
        "--data.init_args.test_subset", str(test), "--data.init_args.batch_size", str(batch),
    )  # fmt: skip


def _data(root: Path, train: int, val: int, test: int, batch: int) -> list[str]:
    return ["--data.init_args.data_dir", str(root), *_subsets(train, val, test, batch)]


def _restore(cls: type, ckpt: dict) -> torch.nn.Module:
    """The task of a checkpoint, rebuilt from its hyperparameters (CLI bookkeeping keys dropped)."""
    task = cls(**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")})
    task.load_state_dict(ckpt["state_dict"])
    return task


def _run(root: Path) -> Path:
    return (root / "latest").resolve()


class TestVAEContract(TaskTester):
    config = str(CONFIGS / "fmnist_vae16.yaml")
    overrides = (*_subsets(512, 128, 200, 64), *QUIET, "--trainer.max_epochs", "2",
                 "--model.init_args.widths", "[8, 16]", "--model.init_args.kl_warmup_steps", "4")  # fmt: skip
    metric = "test/neg_elbo"
    images = ("val_reconstructions_step*.png", "test_reconstructions.png", "test_samples.png")
    predictions = None
    mismatch = ("latent_dim", "8")


def test_vae_test_neg_elbo_is_the_formula_on_the_saved_checkpoint(request: pytest.FixtureRequest, data_root: Path) -> None:
    fitted = TestVAEContract.fit_once(request)
    closing = fitted["stdout"].strip().splitlines()[-1]
    run = fitted["run"]
    logged = json.loads((run / "metrics.json").read_text())["test/neg_elbo"]
    assert closing == f"Test neg_elbo (best-validation checkpoint): {logged:.2f} nats"

    # recompute from the best checkpoint, batch by batch, with the same seeded posterior noise
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    ckpt = torch.load(best, weights_only=True)
    task = _restore(VAETask, ckpt)
    task.eval()
    dm = FashionMNISTDataModule(data_dir=str(data_root), test_subset=200, batch_size=64)
    dm.setup("test")
    noise = torch.Generator().manual_seed(EVAL_SEED)
    per_image = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            x = denormalize(dm.transform_batch(batch, train=False)["image"], dm.mean, dm.std)
            mu, logvar = task.model.encode(x)
            output = task.model.decode(reparameterize(mu, logvar, generator=noise))
            per_image.append(negative_elbo(x, output, mu, logvar, "bernoulli").nelbo)
    recomputed = torch.cat(per_image)
    assert len(recomputed) == 200
    assert logged == pytest.approx(float(recomputed.mean()), rel=1e-5)
    assert 100 < logged < 800  # nats per 28x28 image (sums over pixels), not a per-pixel mean


def _gan_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(CONFIGS / "fmnist_dcgan.yaml"), *_data(root, 128, 64, 64, 32), *QUIET,
        "--trainer.default_root_dir", str(out), "--model.init_args.g_width", "8", "--model.init_args.d_width", "8",
        "--model.init_args.latent_dim", "16", "--model.init_args.num_fixed_samples", "16", *extra,
    ]  # fmt: skip


def _gan_fit(
    data_root: Path, tmp_path: Path, n_train: int = 128, **options: object
) -> tuple[GANTask, dict[str, torch.Tensor], Trainer]:
    """One epoch of ``n_train`` images in batches of 32, straight on a Trainer; the weights before."""
    task = GANTask(img_size=28, latent_dim=16, g_width=8, d_width=8, num_fixed_samples=16, **options)  # type: ignore[arg-type]
    before = {k: v.detach().clone() for k, v in task.named_parameters()}
    dm = FashionMNISTDataModule(data_dir=str(data_root), train_subset=n_train, val_subset=32, test_subset=32, batch_size=32)
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    return task, before, trainer


def _changed(task: GANTask, before: dict[str, torch.Tensor], prefix: str) -> list[bool]:
    return [not torch.equal(p, before[k]) for k, p in task.named_parameters() if k.startswith(prefix)]


def test_gan_manual_steps_update_each_network_with_its_own_optimiser(
    data_root: Path, mirror: Path, tmp_path: Path
) -> None:
    # 4 batches, n_critic 2: 4 discriminator steps and 2 generator steps, each with its own Adam
    task, before, trainer = _gan_fit(data_root, tmp_path, n_critic=2, betas=(0.0, 0.9), d_lr=4e-4)
    assert all(_changed(task, before, "generator.")) and all(_changed(task, before, "discriminator."))
    opt_g, opt_d = trainer.optimizers
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.9) and opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    assert opt_g.param_groups[0]["lr"] == 2e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert {id(p) for g in opt_g.param_groups for p in g["params"]} == {id(p) for p in task.generator.parameters()}
    assert trainer.global_step == 6  # Lightning counts both networks' optimiser steps
    assert int(opt_d.state[next(iter(task.discriminator.parameters()))]["step"]) == 4

    # one batch with n_critic 2: only the discriminator has stepped, the generator is untouched
    one, before, _ = _gan_fit(data_root, tmp_path / "one", n_train=32, n_critic=2)
    assert all(_changed(one, before, "discriminator.")) and not any(_changed(one, before, "generator."))


class TestGANContract(TaskTester):
    config = str(CONFIGS / "fmnist_dcgan.yaml")
    overrides = (*_subsets(128, 64, 64, 32), *QUIET, "--model.init_args.g_width", "8", "--model.init_args.d_width", "8",
                 "--model.init_args.latent_dim", "16", "--model.init_args.num_fixed_samples", "16",
                 "--trainer.max_epochs", "2")  # fmt: skip
    metric = "test/fid_lenet5_fashion_mnist"
    checkpoint = "last"  # a GAN keeps no best checkpoint; its test scores the final weights
    images = ("val_samples_step*.png",)
    predictions = None
    mismatch = ("g_width", "16")

    @classmethod
    def fit_args(cls, request: pytest.FixtureRequest, root: Path) -> list[str]:
        """FID/KID in the feature space of a LeNet-5 checkpoint (untrained here: the wiring is under test)."""
        lenet = root / "lenet5.pt"
        torch.save(create_backbone("lenet5", num_classes=10, in_chans=1).state_dict(), lenet)
        return [*super().fit_args(request, root), "--model.init_args.fid_classifier_ckpt", str(lenet)]


def test_gan_run_keeps_last_ckpt_only_and_draws_grids_from_the_saved_fixed_noise(request: pytest.FixtureRequest) -> None:
    fitted = TestGANContract.fit_once(request)
    closing = fitted["stdout"].strip().splitlines()[-1]
    run = fitted["run"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert closing == f"Test fid_lenet5_fashion_mnist (final weights): {metrics['test/fid_lenet5_fashion_mnist']:.2f}"
    assert {"val/kid_lenet5_fashion_mnist", "test/kid_lenet5_fashion_mnist_std"} <= metrics.keys()
    assert not any(k.startswith(("val/fid", "test/fid")) and "lenet5" not in k for k in metrics)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    grids = sorted((run / "images").glob("val_samples_step*.png"))
    assert len(grids) == 2
    first, last = (np.asarray(Image.open(p)) for p in grids)
    assert first.shape == last.shape and not np.array_equal(first, last)  # the generator moved between them
    with Image.open(run / "samples.gif") as gif:
        assert gif.n_frames == 2

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    task = _restore(GANTask, ckpt)
    expected_z = torch.randn(16, 16, generator=torch.Generator().manual_seed(EVAL_SEED))
    assert torch.equal(ckpt["state_dict"]["fixed_z"], expected_z)
    # the last grid (the frame the last PNG, titled, and the GIF were drawn from) is exactly the
    # saved sampler (the EMA generator) applied to the saved noise
    frame = ckpt["sample_frames"][-1]
    assert torch.equal(task.fixed_noise_grid(), frame)
    labels = ckpt["sample_frame_labels"]  # each GIF frame says when it was drawn, under the grid
    assert [label.split(",")[0] for label in labels] == ["epoch 0", "epoch 1"] and labels[-1].endswith(f"step {ckpt['global_step']}")
    with Image.open(run / "samples.gif") as gif:
        assert gif.size[1] > frame.shape[1]
    task.first_batches["test"] = ({"image": torch.rand(16, 1, 28, 28)}, None)  # the pictured real batch
    figure = task.figures("test")["test/samples"]
    assert [ax.get_title() for ax in figure.axes] == ["real (test images)", "generated from the fixed noise"]
    task.fixed_z.add_(0.5)
    assert not torch.equal(task.fixed_noise_grid(), frame)


def test_nan_in_the_discriminator_loss_stops_naming_step_and_term(
    data_root: Path, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_loss = gan_module.discriminator_loss
    calls = {"train": 0}

    def poisoned(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = real_loss(kind, real, fake)
        if torch.is_grad_enabled():  # training steps only (evaluation runs without gradients)
            calls["train"] += 1
            if calls["train"] == 3:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(gan_module, "discriminator_loss", poisoned)
    args = _gan_args(data_root, tmp_path, "--trainer.max_epochs", "1", "--model.init_args.checkpoint_every_n_steps", "2")
    assert main(args) == 2
    captured = capsys.readouterr()
    line = next(x for x in (captured.err + captured.out).splitlines() if "error" in x)
    # batch 2 (0-based) is the 3rd D step; before its end hook 5 optimiser steps ran (3 D + 2 G)
    assert "training loss term d_loss is nan at step 6" in line and "batch 2" in line, line
    kept = torch.load(_run(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    assert kept["global_step"] == 4 and all(torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point())


class TestAutoencoderContract(TaskTester):
    config = str(CONFIGS / "fmnist_dae.yaml")
    overrides = (*_subsets(512, 128, 128, 64), *QUIET, "--trainer.max_epochs", "3", "--model.init_args.widths", "[8, 16]")
    metric = "test/mse"
    images = ("test_reconstructions.png", "test_interpolation.png")
    predictions = None
    mismatch = ("widths", "[16, 32]")


def test_denoising_autoencoder_run_lowers_val_mse_and_reports_psnr(request: pytest.FixtureRequest) -> None:
    run = TestAutoencoderContract.fit_once(request)["run"]
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/mse")]
    val_mse = [float(r["val/mse"]) for r in rows]
    assert len(val_mse) == 3 and val_mse[-1] < val_mse[0]
    metrics = json.loads((run / "metrics.json").read_text())
    # PSNR over the test set is 10·log10(1 / MSE) of the same (clean-target) reconstructions
    assert metrics["test/psnr"] == pytest.approx(10 * math.log10(1 / metrics["test/mse"]), rel=1e-4)
    assert {p.name for p in (run / "images").glob("test_*.png")} == {"test_reconstructions.png", "test_interpolation.png"}


def test_gan_resumed_from_last_ckpt_continues_both_optimisers_and_its_gif(
    data_root: Path, mirror: Path, tmp_path: Path
) -> None:
    """Kill after epoch 1, resume from its checkpoint to epoch 2: the resumed run starts from the
    saved weights and both Adam states (not from scratch), and ends with the step counts and GIF
    frames of an uninterrupted 2-epoch run."""
    from lightning.pytorch import Callback

    dm_args = {"data_dir": str(data_root), "train_subset": 128, "val_subset": 32, "test_subset": 32, "batch_size": 32}
    opts = {"img_size": 28, "latent_dim": 16, "g_width": 8, "d_width": 8, "num_fixed_samples": 16}

    def fit(epochs: int, root: Path, ckpt: str | None = None, callbacks: list | None = None) -> tuple[GANTask, Trainer]:
        torch.manual_seed(0)
        task = GANTask(**opts)  # type: ignore[arg-type]
        trainer = Trainer(
            accelerator="cpu", max_epochs=epochs, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root), callbacks=callbacks or [],
        )  # fmt: skip
        trainer.fit(task, datamodule=FashionMNISTDataModule(**dm_args), ckpt_path=ckpt)
        return task, trainer

    full, full_trainer = fit(2, tmp_path / "full")
    _, first_trainer = fit(1, tmp_path / "killed")
    (last,) = (tmp_path / "killed").rglob("*.ckpt")  # the epoch-1 checkpoint
    saved = torch.load(last, weights_only=True)

    class AtStart(Callback):
        def on_train_start(self, trainer: Trainer, task: GANTask) -> None:
            self.step = trainer.global_step
            self.same_weights = all(torch.equal(v, saved["state_dict"][k]) for k, v in task.state_dict().items())
            self.adam_steps = [int(next(iter(o.state.values()))["step"]) for o in trainer.optimizers]
            self.frames = len(task.sample_frames)

    probe = AtStart()
    resumed, resumed_trainer = fit(2, tmp_path / "killed", str(last), [probe])
    assert probe.step == 8 and probe.same_weights and probe.adam_steps == [4, 4] and probe.frames == 1
    assert resumed_trainer.global_step == full_trainer.global_step == 16
    for a, b in zip(resumed_trainer.optimizers, full_trainer.optimizers, strict=True):
        assert [int(s["step"]) for s in a.state.values()] == [int(s["step"]) for s in b.state.values()]
    assert len(resumed.sample_frames) == len(full.sample_frames) == 2
    assert torch.equal(resumed.sample_frames[0], saved["sample_frames"][0])  # epoch 1's frame, from the checkpoint
