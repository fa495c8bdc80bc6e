"""What every task needs, written once in ``BaseTask`` (#31 item 1): the training-metrics switch,
the stage callbacks, the test-time augmentation hook, the per-class table writer that reaches
every logger, one rule for adding callbacks, and one place ``best``/``last`` is resolved."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from visionsuite.callbacks.assembly import missing_callbacks
from visionsuite.outputs import FigureLogger, PredictionCSVWriter, SegmentationMaskWriter
from visionsuite.outputs.detection_writer import DetectionPredictionWriter
from visionsuite.tasks import AutoencoderTask, ClassificationTask, DetectionTask, SegmentationTask

SMALL: dict[type, dict[str, Any]] = {
    ClassificationTask: {"backbone": "lenet5", "num_classes": 10, "in_chans": 1},
    SegmentationTask: {"model": "unet", "num_classes": 3, "model_options": {"depth": 2, "base_width": 4}},
    DetectionTask: {"head": "fcos", "backbone": "resnet18", "backbone_options": {"base_width": 8}, "num_classes": 3,
                    "image_size": 32, "fpn_channels": 32},
    AutoencoderTask: {"in_chans": 1, "img_size": 28, "latent_dim": 8, "widths": [8, 16]},
}  # fmt: skip


def _with_trainer(task: Any, **trainer: Any) -> Any:
    task._trainer = SimpleNamespace(**trainer)
    return task


@pytest.mark.parametrize(("cls", "has_train_metrics"), [
    (ClassificationTask, True), (SegmentationTask, False), (DetectionTask, False), (AutoencoderTask, False),
])  # fmt: skip
def test_the_training_metrics_switch(cls: type, has_train_metrics: bool) -> None:
    task = cls(**SMALL[cls])
    assert (task.train_metrics is not None) is has_train_metrics
    assert task.val_metrics is not None


@pytest.mark.parametrize(("cls", "writer"), [
    (ClassificationTask, PredictionCSVWriter), (SegmentationTask, SegmentationMaskWriter),
    (DetectionTask, DetectionPredictionWriter), (AutoencoderTask, None),
])  # fmt: skip
def test_each_trainer_function_gets_the_figure_logger_and_prediction_writer_it_uses(cls: type, writer: type | None) -> None:
    task = cls(**SMALL[cls])
    for fn in TrainerFn:
        kinds = {type(cb) for cb in _with_trainer(task, state=SimpleNamespace(fn=fn)).default_callbacks()}
        assert (FigureLogger in kinds) is (fn.value in task.figure_functions), (cls.__name__, fn)
        assert (writer is not None and writer in kinds) is (writer is not None and fn == TrainerFn.PREDICTING)
    assert ClassificationTask.figure_functions == {"test"} and "predict" in AutoencoderTask.figure_functions


@pytest.mark.parametrize("cls", [ClassificationTask, SegmentationTask, DetectionTask])
def test_test_and_predict_score_the_augmented_pass_and_validation_one_pass(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    option = {"test_time_augmentation": "flip"} if cls is ClassificationTask else {"test_time_flip": True}
    task = cls(**SMALL[cls], **option).eval()
    monkeypatch.setattr(task, "inference", lambda images: "one pass")
    monkeypatch.setattr(task, "augmented_inference", lambda images: "augmented")
    images = torch.zeros(1)
    assert [task.evaluation_output(images, s) for s in ("train", "val", "test", "predict")] == [
        "one pass", "one pass", "augmented", "augmented"]
    plain = cls(**SMALL[cls])
    monkeypatch.setattr(plain, "inference", lambda images: "one pass")
    assert plain.evaluation_output(images, "test") == "one pass"


def test_the_per_class_tables_of_segmentation_and_detection_reach_every_logger(tmp_path: Path) -> None:
    """One writer: the Markdown file in the run folder and the same table in TensorBoard (and a
    W&B table, whose logger takes the same call)."""
    seg = SegmentationTask(**SMALL[SegmentationTask])
    tensorboard = TensorBoardLogger(str(tmp_path / "tb"))
    _with_trainer(seg, default_root_dir=str(tmp_path), loggers=[tensorboard], global_step=7)
    seg.stage_results["test"] = {"test/iou_per_class": torch.tensor([0.5, float("nan"), 0.25]),
                                 "test/miou": torch.tensor(0.375)}  # fmt: skip
    seg.on_stage_end("test")
    table = (tmp_path / "per_class_iou.md").read_text()
    assert "| class0 | 50.0 |" in table and "| class1 | n/a |" in table and "- miou: 37.5%" in table
    det = DetectionTask(**SMALL[DetectionTask])
    _with_trainer(det, default_root_dir=str(tmp_path), loggers=[tensorboard], global_step=7)
    rows, text = det.per_class_table({"map_per_class": torch.tensor([0.4, -1.0, 0.2]), "classes": torch.tensor([0, 1, 2]),
                                      "map": torch.tensor(0.3), "map_50": torch.tensor(0.6), "map_75": torch.tensor(0.2)})  # fmt: skip
    assert rows == [["class0", "0.4000"], ["class1", "-"], ["class2", "0.2000"]]
    det.write_table("test", "per_class_ap", ["class", "AP@[.5:.95]"], rows, text)
    assert (tmp_path / "per_class_ap.md").read_text() == text
    tensorboard.experiment.flush()
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert b"test/per_class_iou" in events and b"test/per_class_ap" in events and b"| class2 | 0.2000 |" in events


def test_one_rule_adds_a_tasks_callbacks_to_the_trainers() -> None:
    mine = ModelCheckpoint()
    wanted = [ModelCheckpoint(), LearningRateMonitor(), FigureLogger()]
    assert [type(cb) for cb in missing_callbacks(wanted, [mine], checkpointing=True)] == [LearningRateMonitor, FigureLogger]
    assert [type(cb) for cb in missing_callbacks(wanted, [], checkpointing=False)] == [LearningRateMonitor, FigureLogger]
    assert len(missing_callbacks(wanted, [], checkpointing=True)) == 3


def test_best_and_last_of_a_config_follow_its_run_name(tmp_path: Path) -> None:
    """The tools (``--config C --ckpt_path last``) resolve a config's checkpoint as ``fit``/``test``
    do: the run its ``run_name`` names, not the latest."""
    from visionsuite.runs import folders
    from visionsuite.runs.trained import resolve_checkpoint

    for name in ("named", "newer"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    folders.set_latest(tmp_path, tmp_path / "newer")
    config = {"trainer": {"default_root_dir": str(tmp_path)}, "run_name": "named"}
    assert resolve_checkpoint(config, "last") == tmp_path / "named" / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint({**config, "run_name": None}, "last") == tmp_path / "newer" / "checkpoints" / "last.ckpt"
