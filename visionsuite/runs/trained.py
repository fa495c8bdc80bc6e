"""A trained task and its data module, rebuilt from a config file and a checkpoint, outside the CLI.

What ``export`` and ``ensemble`` start from: the task class named by the config's
``model.class_path`` built from the checkpoint's own hyperparameters (opened weights-only, so
the model is the one that was trained), its weights loaded strictly, in eval mode; and the
config's data module (``data.class_path`` / ``init_args``), for class names, normalisation and
real test images.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visionsuite.errors import ConfigError


@dataclass
class Trained:
    """A trained task (eval mode) with the data module of its config."""

    task: Any
    datamodule: Any
    config: Path
    ckpt: Path

    @property
    def class_names(self) -> list[str]:
        from visionsuite.tasks.base import class_names_of

        return class_names_of(self.datamodule, self.task.hparams.get("num_classes"))

    @property
    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        dm = self.datamodule
        return (tuple(dm.mean), tuple(dm.std)) if getattr(dm, "normalize", True) and hasattr(dm, "mean") else None

    def test_batch(self, n: int) -> dict[str, Any]:
        """The first ``n`` test images as the data module prepares them (uint8, not normalised)."""
        dm = self.datamodule
        dm.prepare_data()
        dm.setup("test")
        return dm.test_set[list(range(min(n, len(dm.test_set))))]


def import_class(path: str) -> type:
    """The class a config's ``class_path`` names (full dotted path, or a short task/data name)."""
    module, _, name = path.rpartition(".")
    if not module:  # a short name: the packages register their classes
        module = "visionsuite.tasks" if name.endswith("Task") else "visionsuite.data"
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"class_path {path!r} names no importable class") from None


def resolve_checkpoint(config: dict[str, Any], spec: str) -> Path:
    """``best``/``last`` of the config's latest run (``trainer.default_root_dir``), or a file path."""
    from visionsuite.runs import checkpoints
    from visionsuite.runs import folders as runs

    if spec in ("best", "last"):
        root = Path((config.get("trainer") or {}).get("default_root_dir") or "logs")
        return runs.run_checkpoint(runs.find_run(root, None), spec)
    return checkpoints.local_checkpoint(spec)


def load_trained(config_path: str | Path, ckpt_spec: str, *, data_overrides: dict[str, Any] | None = None) -> Trained:
    """The task of ``config_path`` with the weights of ``ckpt_spec`` (``best``/``last``/a path)."""
    from visionsuite.runs import checkpoints

    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"--config {config_path}: no such file")
    config = yaml.safe_load(path.read_text()) or {}
    if "model" not in config or "data" not in config:
        raise ConfigError(f"--config {config_path}: needs model and data sections")
    ckpt = resolve_checkpoint(config, ckpt_spec)
    saved = checkpoints.load_checkpoint(ckpt)
    hparams = dict(saved.get("hyper_parameters") or {})
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    weights = hparams.get("weights")
    if "weights" in hparams:
        hparams["weights"] = None  # the checkpoint holds the trained weights; no need for the file
    task = import_class(config["model"]["class_path"])(**hparams)
    task.load_state_dict(saved["state_dict"], strict=True)
    task.eval()
    data_cfg = config["data"]
    init = {**(data_cfg.get("init_args") or {}), **(data_overrides or {})}
    datamodule = import_class(data_cfg["class_path"])(**init)
    if hasattr(task, "align_datamodule"):  # the pretrained weights' preprocessing, as the fit adopted it
        task.align_datamodule(datamodule, weights, warn_mismatch=False)
    return Trained(task, datamodule, path, ckpt)
