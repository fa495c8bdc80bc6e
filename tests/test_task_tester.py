"""The shared :class:`~task_tester.TaskTester` catches a broken contract: applied to a classification
task with one contract broken, exactly the check of that contract fails and the other three pass.

Each broken task is a :class:`~visionsuite.tasks.ClassificationTask` subclass defined here, reached by
its class path (``test_task_tester.<Name>``) as a config reaches any task; each is fitted once, tiny."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from task_tester import TaskTester

from visionsuite.outputs import FigureLogger
from visionsuite.tasks import ClassificationTask

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")
CHECKS = ("test_fit_writes_metrics_checkpoints_and_images", "test_test_run_reproduces_the_fitted_metric",
          "test_predict_run_writes_the_family_files", "test_a_mismatched_architecture_is_refused_in_one_line")  # fmt: skip


class SilentPredictTask(ClassificationTask):
    """Predicts, but no prediction writer is attached: ``predict`` writes no file."""

    def default_callbacks(self) -> list[Callback]:
        return [c for c in super().default_callbacks() if not isinstance(c, BasePredictionWriter)]


class PictureLessTask(ClassificationTask):
    """No figure logger at test: no ``images/test_*.png``."""

    def default_callbacks(self) -> list[Callback]:
        return [c for c in super().default_callbacks() if not isinstance(c, FigureLogger)]


class ForgetfulTask(ClassificationTask):
    """Its test score depends on state kept outside the checkpoint (set while training): the labels
    are shifted by one class in the process that trained, so a reloaded run scores differently."""

    trained_here = False

    def on_train_start(self) -> None:
        super().on_train_start()
        self.trained_here = True

    def shared_step(self, batch: dict[str, Any], stage: str) -> Any:
        if stage == "test" and self.trained_here:
            batch = {**batch, "label": (batch["label"] + 1) % self.hparams.num_classes}
        return super().shared_step(batch, stage)


class ArchitectureBlindTask(ClassificationTask):
    """Calls every option a training setting: a checkpoint of another backbone is not refused."""

    @classmethod
    def option_kind(cls, key: str) -> str:
        return "training"


class _Broken(TaskTester):
    """The classification contract on a tiny fit (two steps) of a broken task."""

    config = TINY
    metric = "test/acc"
    images = ("test_samples.png", "test_confusion_matrix.png")
    predictions = ("predictions.csv",)
    predict_overrides = ("--data.init_args.test_subset", "16")
    mismatch = ("backbone", "lenet1")
    task: type[ClassificationTask]

    @classmethod
    def fit_args(cls, request: pytest.FixtureRequest, root: Path) -> list[str]:
        tiny = ["--data.init_args.train_subset", "128", "--data.init_args.val_subset", "32", "--data.init_args.test_subset",
                "32", "--trainer.max_epochs", "1", "--model.class_path", f"{__name__}.{cls.task.__qualname__}"]  # fmt: skip
        return [*super().fit_args(request, root), *tiny]


def _failing(tester: type[_Broken], request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The tester's checks run on its fit: ``{check: assertion message}`` of those that failed."""
    run, checker, failed = tester.fit_once(request)["run"], tester(), {}
    for name in CHECKS:
        args = (run, capsys) if name == "test_a_mismatched_architecture_is_refused_in_one_line" else (run,)
        try:
            getattr(checker, name)(*args)
        except AssertionError as err:
            failed[name] = str(err)
    return failed


@pytest.mark.parametrize(
    ("task", "check", "message"),
    [
        (SilentPredictTask, "test_predict_run_writes_the_family_files", "predict wrote no predictions.csv"),
        (PictureLessTask, "test_fit_writes_metrics_checkpoints_and_images", "no images/test_samples.png"),
        (ForgetfulTask, "test_test_run_reproduces_the_fitted_metric", "the fit's test"),
        (ArchitectureBlindTask, "test_a_mismatched_architecture_is_refused_in_one_line", "lenet1"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_the_tester_fails_exactly_the_broken_contract(
    task: type[ClassificationTask], check: str, message: str, request: pytest.FixtureRequest, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tester = type(f"Broken{task.__name__}", (_Broken,), {"task": task})
    failed = _failing(tester, request, capsys)
    assert list(failed) == [check], failed
    assert message in failed[check], failed[check]

