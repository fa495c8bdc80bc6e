"""The task base's loop on a real Fashion-MNIST subset: logged metrics equal a hand computation
from the model's outputs, the training loss is written at the step it was computed, the
data/model agreement check, the optimiser factory, and the closing line's unit."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from visionsuite.cli.app import _print_result
from visionsuite.data import FashionMNISTDataModule
from visionsuite.errors import ConfigError
from visionsuite.tasks import ClassificationTask

LOG_EVERY = 3


class _LossRecorder(Callback):
    """The loss each training step computed, in step order."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))


def _dm(data_root: Path, **kwargs: Any) -> FashionMNISTDataModule:
    options = {"batch_size": 64, "train_subset": 256, "val_subset": 100, "test_subset": 100, "augment": False}
    return FashionMNISTDataModule(data_dir=str(data_root), **{**options, **kwargs})


def _trainer(root: Path, **kwargs: Any) -> Trainer:
    options = {"accelerator": "cpu", "num_sanity_val_steps": 0, "enable_progress_bar": False,
               "enable_model_summary": False, "default_root_dir": str(root), "logger": False}
    return Trainer(**{**options, **kwargs})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> dict[str, Any]:
    """LeNet-5 fitted for 3 epochs of 4 steps each (shorter than ``log_every_n_steps`` x 2)."""
    root = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1, optimizer="adam", lr=3e-3)
    recorder = _LossRecorder()
    logger = CSVLogger(str(root), name="csv")
    trainer = _trainer(root, max_epochs=3, log_every_n_steps=LOG_EVERY, logger=logger, callbacks=[recorder])
    dm = _dm(data_root)
    trainer.fit(task, datamodule=dm)
    return {"task": task, "trainer": trainer, "dm": dm, "losses": recorder.losses, "csv": Path(logger.log_dir)}


def _by_hand(task: ClassificationTask, dm: FashionMNISTDataModule, loader: Any) -> dict[str, float]:
    """Accuracy, top-5 accuracy and the per-image mean cross-entropy from the model's outputs."""
    task.eval()
    logits, labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits.append(task(dm.transform_batch(batch, train=False)["image"]))
            labels.append(batch["label"])
    out, y = torch.cat(logits), torch.cat(labels)
    top5 = out.topk(5, dim=1).indices
    return {
        "acc": (out.argmax(1) == y).float().mean().item(),
        "acc_top5": (top5 == y[:, None]).any(1).float().mean().item(),
        "loss": nn.functional.cross_entropy(out, y).item(),
        "n": len(y),
    }


def test_logged_test_metrics_equal_a_hand_computation(fitted: dict[str, Any]) -> None:
    task, dm = fitted["task"], fitted["dm"]
    result = _trainer(fitted["csv"] / "t").test(task, datamodule=dm, verbose=False)[0]
    hand = _by_hand(task, dm, dm.test_dataloader())
    assert hand["n"] == 100  # batches of 64 + 36: the loss mean must weight by batch size
    assert result["test/acc"] == pytest.approx(hand["acc"], abs=1e-6)
    assert result["test/acc_top5"] == pytest.approx(hand["acc_top5"], abs=1e-6)
    assert result["test/loss"] == pytest.approx(hand["loss"], rel=1e-5)
    confusion = task.stage_results["test"]["test/confusion_matrix"]  # kept for figures, not logged
    assert "test/confusion_matrix" not in result and int(confusion.sum()) == 100
    assert int(confusion.diag().sum()) == round(hand["acc"] * 100)


def test_each_validation_starts_from_fresh_metric_states(fitted: dict[str, Any], data_root: Path) -> None:
    """Two validations on different data: the second reports its own data only (states reset)."""
    task = fitted["task"]
    trainer = _trainer(fitted["csv"] / "v")
    trainer.validate(task, datamodule=fitted["dm"], verbose=False)
    small = _dm(data_root, val_subset=40, batch_size=16)
    second = trainer.validate(task, datamodule=small, verbose=False)[0]
    hand = _by_hand(task, small, small.val_dataloader())
    assert second["val/acc"] == pytest.approx(hand["acc"], abs=1e-6)
    assert second["val/loss"] == pytest.approx(hand["loss"], rel=1e-5)


def test_training_loss_is_written_at_the_step_it_was_computed(fitted: dict[str, Any]) -> None:
    """12 steps, epochs of 4, log_every_n_steps=3: rows at steps 2, 5, 8, 11, each holding that
    step's loss (logging when ``global_step % N == 0`` wrote step 0's loss as step 2, and so on)."""
    losses = fitted["losses"]
    assert len(losses) == 12 and len(set(losses)) == 12
    rows = list(csv.DictReader((fitted["csv"] / "metrics.csv").open()))
    logged = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(logged) == [2, 5, 8, 11]
    for step, value in logged.items():
        assert value == pytest.approx(losses[step], rel=1e-6), step
    epochs = [float(r["train/acc"]) for r in rows if r.get("train/acc")]
    assert len(epochs) == 3  # the epoch-level training accuracy, once per epoch


def test_class_count_mismatch_is_one_line_config_error(data_root: Path, mirror: Path, tmp_path: Path) -> None:
    task = ClassificationTask(backbone="lenet5", num_classes=7, in_chans=1)
    with pytest.raises(ConfigError, match=r"num_classes=7 but the data has 10 classes.*num_classes: 10") as err:
        _trainer(tmp_path, fast_dev_run=1).fit(task, datamodule=_dm(data_root))
    assert "\n" not in str(err.value)
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=3)
    with pytest.raises(ConfigError, match=r"in_chans=3 but the data has 1 channels"):
        _trainer(tmp_path, fast_dev_run=1).fit(task, datamodule=_dm(data_root))


class _WithBackground(ClassificationTask):
    """A detector's convention: ``num_classes`` counts a background class the data lacks."""

    def expected_data_classes(self) -> int | None:
        return self.hparams.num_classes - 1


def test_background_class_hook_shifts_the_agreement_check(data_root: Path, mirror: Path) -> None:
    dm = _dm(data_root)
    fine = _WithBackground(backbone="lenet5", num_classes=11, in_chans=1)
    fine._trainer = SimpleNamespace(datamodule=dm)  # setup() reads only the data module
    fine.setup("fit")
    wrong = _WithBackground(backbone="lenet5", num_classes=10, in_chans=1)
    wrong._trainer = SimpleNamespace(datamodule=dm)
    with pytest.raises(ConfigError, match=r"set model.init_args.num_classes: 11"):
        wrong.setup("fit")


def test_optimizer_factory_called_twice_gives_two_optimizers_with_their_betas() -> None:
    """A GAN's two optimisers: one from the config's betas, one overridden (DCGAN's β1 = 0.5)."""
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1, optimizer="adam", lr=2e-4,
                              betas=(0.0, 0.9))
    features = nn.ModuleList(task.model.stages.values())
    first = task.make_optimizer(features)
    second = task.make_optimizer(task.model.head, betas=(0.5, 0.999), lr=1e-3)
    assert isinstance(first, torch.optim.Adam) and isinstance(second, torch.optim.Adam)
    assert first.param_groups[0]["betas"] == (0.0, 0.9) and first.param_groups[0]["lr"] == 2e-4
    assert second.param_groups[0]["betas"] == (0.5, 0.999) and second.param_groups[0]["lr"] == 1e-3
    ids = [{id(p) for g in o.param_groups for p in g["params"]} for o in (first, second)]
    assert ids[0].isdisjoint(ids[1]) and ids[1] == {id(p) for p in task.model.head.parameters()}


def test_closing_line_prints_the_headline_metric_in_its_unit(capsys: pytest.CaptureFixture[str]) -> None:
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1)
    _print_result({"test/acc": 0.896, "test/loss": 0.3}, task, "test", "best-validation checkpoint")
    assert capsys.readouterr().out.strip() == "Test acc (best-validation checkpoint): 89.60%"

    class _Vae(ClassificationTask):  # a loss in nats: never a percentage
        monitor = "val/loss"
        headline_metric = "test/nelbo"
        headline_format = "{:.2f} nats"

    _print_result({"test/nelbo": 87.12, "test/loss": 87.12}, _Vae(num_classes=10, in_chans=1), "test", "final weights")
    assert capsys.readouterr().out.strip() == "Test nelbo (final weights): 87.12 nats"

    class _Gan(ClassificationTask):  # no monitored metric, no headline: no closing line
        monitor = None

    _print_result({"test/acc": 0.5}, _Gan(num_classes=10, in_chans=1), "test", "final weights")
    assert capsys.readouterr().out == ""

    _print_result({"val/acc": 0.25, "test/acc": 0.5}, task, "val", "last.ckpt, step 40")  # validate: its own metric
    assert capsys.readouterr().out.strip() == "Validation acc (last.ckpt, step 40): 25.00%"


@pytest.mark.parametrize("enabled", [True, False])
def test_enable_checkpointing_false_writes_no_checkpoint(enabled: bool, data_root: Path, mirror: Path, tmp_path: Path) -> None:
    """A plain Trainer keeps the task's checkpoints (last.ckpt) unless it was told not to checkpoint."""
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1)
    trainer = Trainer(accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=enabled,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(task, datamodule=_dm(data_root, train_subset=128, batch_size=64))
    assert bool(list(tmp_path.rglob("*.ckpt"))) == enabled


def test_channels_last_stores_conv_weights_nhwc_and_runs_the_same_network() -> None:
    """``channels_last`` puts every 4-D weight in NHWC, the convolutions then run channels-last
    on an ordinary NCHW batch, and the outputs equal the default layout's."""
    from visionsuite.tasks import SegmentationTask

    torch.manual_seed(0)
    options = {"model": "unet", "num_classes": 11, "ignore_index": 11, "model_options": {"depth": 2, "base_width": 4}}
    default, nhwc = SegmentationTask(**options).eval(), SegmentationTask(**options, channels_last=True).eval()
    nhwc.load_state_dict(default.state_dict())  # loading keeps the layout
    weights = [p for p in nhwc.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in default.parameters() if p.dim() == 4)
    first_conv = next(m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d))
    layouts: list[bool] = []
    first_conv.register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(x), default(x), atol=1e-5, rtol=1e-4)
    assert layouts == [True]


def test_cosine_time_reads_the_trainers_max_time(data_root: Path, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule's clock is the Trainer's Timer: with 75 of 100 s spent (warm-up 0.2), the
    rate is lr x (1 + cos(pi x 0.6875)) / 2 after any number of steps; without max_time, a
    one-line config error."""
    from lightning.pytorch.callbacks import Timer

    monkeypatch.setattr(Timer, "time_elapsed", lambda self, stage="train": 75.0)
    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1, optimizer="sgd", lr=0.1,
                              scheduler="cosine_time", warmup_pct=0.2)  # fmt: skip
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0, enable_checkpointing=False, max_time={"seconds": 100})
    trainer.fit(task, datamodule=_dm(data_root, train_subset=192, batch_size=64))
    expected = 0.1 * (1 + math.cos(math.pi * (0.75 - 0.2) / 0.8)) / 2
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(expected)

    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1, scheduler="cosine_time")
    with pytest.raises(ConfigError, match="max_time"):
        _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(task, datamodule=_dm(data_root, train_subset=64))


class _LastStep(Callback):
    """The step stored in ``last.ckpt`` as each epoch after the first starts (after a validation)."""

    def __init__(self, path: Path) -> None:
        self.path, self.steps = path, []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.current_epoch > 0:
            self.steps.append(torch.load(self.path, map_location="cpu", weights_only=True)["global_step"])


def test_last_checkpoint_follows_each_validation_and_the_end_of_training(data_root: Path, mirror: Path, tmp_path: Path) -> None:
    """With a best checkpoint that never improves after the first epoch (it monitors ``epoch``,
    lowest best), ``last.ckpt`` is still rewritten after each validation (steps 4 and 8: 4 steps per
    epoch) and at the ``max_steps`` stop mid-epoch (step 11): ``--ckpt_path last`` resumes where
    training stopped, not at the last improvement."""
    from visionsuite.callbacks import checkpoint_callbacks

    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1)
    probe = _LastStep(tmp_path / "last.ckpt")
    trainer = _trainer(tmp_path, max_steps=11, callbacks=[*checkpoint_callbacks(tmp_path, "epoch", "min", 500), probe])
    trainer.fit(task, datamodule=_dm(data_root))
    assert [p.name for p in tmp_path.glob("best-*.ckpt")] == ["best-epoch=000-step=4.ckpt"]
    assert probe.steps == [4, 8]
    assert torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 11
