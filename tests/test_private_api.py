"""``visionsuite/core/private_api.py`` against the installed Lightning, jsonargparse and
torchmetrics: each function does what its docstring says (so a release that renames the private
attribute fails here, not in a user's run), and no other module of the suite touches those names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Union

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from torch.utils.data import DataLoader, TensorDataset

from visionsuite.core import private_api

PACKAGE = Path(__file__).resolve().parents[1] / "visionsuite"

#: uses not moved yet (file → private names it still reads), each to be replaced by the function
#: named beside it; remove an entry once its file calls the function (the test says when).
PENDING: dict[str, set[str]] = {}


class _Tiny(LightningModule):
    """One linear layer; records what the private API says at every training step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.logged_at: list[bool] = []
        self.trainer_seen: list[Any] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.logged_at.append(private_api.should_update_logs(self.trainer))
        self.trainer_seen.append(private_api.attached_trainer(self))
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2)


def _trainer(root: Path, **kwargs: Any) -> Trainer:
    options = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False, "default_root_dir": root, **kwargs}  # fmt: skip
    return Trainer(**options)


def test_should_update_logs_and_attached_trainer_follow_the_fit(tmp_path: Path) -> None:
    module = _Tiny()
    assert private_api.attached_trainer(module) is None  # the public property would raise here
    trainer = _trainer(tmp_path, max_steps=6, log_every_n_steps=3)
    trainer.fit(module)
    assert module.logged_at == [False, False, True, False, False, True]  # steps 3 and 6 are written
    assert all(seen is trainer for seen in module.trainer_seen)


def test_last_checkpoint_is_saved_and_its_step_known(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=0, save_last=True, every_n_train_steps=1000)
    assert private_api.last_checkpoint_step(callback) == 0
    trainer = _trainer(tmp_path, max_steps=3, enable_checkpointing=True, callbacks=[callback])
    trainer.fit(_Tiny())
    (tmp_path / "ckpt" / "last.ckpt").unlink(missing_ok=True)
    private_api.save_last_checkpoint(callback, trainer)
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    assert callback.last_model_path == str(tmp_path / "ckpt" / "last.ckpt")
    assert private_api.last_checkpoint_step(callback) == trainer.global_step == 3


def test_averaged_model_exists_once_fit_set_it_up(tmp_path: Path) -> None:
    averaging = WeightAveraging()
    assert private_api.averaged_model(averaging) is None
    _trainer(tmp_path, max_steps=2, callbacks=[averaging]).fit(_Tiny())
    assert isinstance(private_api.averaged_model(averaging), torch.optim.swa_utils.AveragedModel)


def test_wandb_init_arguments_are_the_dict_wandb_init_gets(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="p")
    init = private_api.wandb_init_arguments(logger)
    assert init is not None and init["project"] == "p" and "anonymous" in init
    init.pop("anonymous")
    assert "anonymous" not in private_api.wandb_init_arguments(logger)  # the logger's own dict, changed in place
    assert private_api.wandb_init_arguments(CSVLogger(tmp_path)) is None


def test_scripting_lets_a_detached_module_read_its_trainer() -> None:
    module, plain = _Tiny(), torch.nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match="not attached"):
        _ = module.trainer
    with private_api.scripting([module, plain]):
        assert module.trainer is None
    with pytest.raises(RuntimeError, match="not attached"):
        _ = module.trainer


def test_an_option_s_type_can_be_looked_up_and_changed() -> None:
    """The CLI's ``limit_*_batches`` fix: the action found by its option string, and the new type
    is what parses the value (``1`` an int, not 1.0)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--trainer.limit", type=Optional[Union[float, int]], default=None)  # noqa: UP007, UP045 (as Lightning)
    action = private_api.option_action(parser, "--trainer.limit")
    assert action is not None and private_api.option_action(parser, "--trainer.other") is None
    assert private_api.option_typehint(action) == Optional[Union[float, int]]  # noqa: UP007, UP045
    assert type(parser.parse_args(["--trainer.limit", "1"]).trainer.limit) is float
    private_api.set_option_typehint(action, int | float | None)
    assert private_api.option_typehint(action) == int | float | None
    parsed = parser.parse_args(["--trainer.limit", "1"]).trainer.limit
    assert parsed == 1 and type(parsed) is int


def test_the_coco_backend_of_a_map_metric_is_read() -> None:
    from torchmetrics.detection import MeanAveragePrecision

    assert private_api.coco_backend_name(MeanAveragePrecision(backend="faster_coco_eval")) == "faster_coco_eval"


def _uses(name: str, text: str) -> bool:
    """``obj._name`` or a string ``"_name"`` (``getattr(obj, "_name")``) in ``text``."""
    return re.search(rf"\.{name}\b|[\"']{name}[\"']", text) is not None


def test_no_other_module_touches_those_private_names() -> None:
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "core/private_api.py":
            continue
        text = path.read_text()
        names = {name for name in private_api.PRIVATE_NAMES if _uses(name, text)}
        if names:
            found[rel] = names
    unexpected = {rel: names - PENDING.get(rel, set()) for rel, names in found.items()}
    assert not {k: v for k, v in unexpected.items() if v}, f"use visionsuite.core.private_api instead: {unexpected}"
    moved = {rel: names - found.get(rel, set()) for rel, names in PENDING.items()}
    assert not {k: v for k, v in moved.items() if v}, f"moved to private_api already: remove from PENDING: {moved}"


def test_the_source_check_sees_a_private_use() -> None:
    assert _uses("_wandb_init", 'init = getattr(logger, "_wandb_init", None)')
    assert _uses("_trainer", "if self._trainer is None:")
    assert not _uses("_trainer", "def _trainer(root):") and not _uses("_typehint", "self._typehints = {}")
