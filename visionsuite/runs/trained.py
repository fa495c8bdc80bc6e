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
    """``best``/``last`` of the config's run (its ``run_name``, else the latest under
    ``trainer.default_root_dir``), or a file path: as ``fit``/``test`` resolve it."""
    from visionsuite.runs import folders as runs

    root = Path((config.get("trainer") or {}).get("default_root_dir") or "logs")
    return runs.checkpoint_for_config(root, config.get("run_name"), spec)[1]


def load_trained(
    config_path: str | Path | None,
    ckpt_spec: str | None,
    *,
    run: str | Path | None = None,
    data_overrides: dict[str, Any] | None = None,
) -> Trained:
    """The task of a run or config with the weights of ``ckpt_spec`` (``best``/``last``/a path).

    ``run`` (a folder, a name under ``logs/`` or ``latest``) supplies its own ``config.yaml`` and
    checkpoint (``best`` by default); a ``config_path`` given as well replaces the run's config.
    The checkpoint is checked against the config exactly as ``test`` checks it
    (:func:`~visionsuite.runs.checkpoints.check_settings`): a different architecture is refused,
    different training settings are noted, and the config's evaluation options (thresholds,
    test-time flips) are used.
    """
    from visionsuite.core.notes import warn
    from visionsuite.runs import checkpoints, folders

    run_dir = folders.resolve_run(str(run)) if run is not None else None
    if config_path is None and run_dir is None:
        raise ConfigError("give --run RUN (a run folder, its name or latest), or --config and --ckpt_path")
    path = Path(config_path) if config_path is not None else run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path}: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or "model" not in config or "data" not in config:
        raise ConfigError(f"--config {path}: needs model and data sections")
    if run_dir is not None:
        ckpt, note = folders.run_checkpoint_for(run_dir, ckpt_spec)
        if note:
            warn(note)
    elif ckpt_spec is None:
        raise ConfigError(f"--config {path} needs --ckpt_path best|last|PATH (or address the run with --run)")
    else:
        ckpt = resolve_checkpoint(config, ckpt_spec)
    saved = checkpoints.load_checkpoint(ckpt)
    hparams = {k: v for k, v in (saved.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    model_cfg = config["model"] if isinstance(config["model"], dict) else {}
    if not model_cfg.get("class_path"):
        raise ConfigError(f"--config {path}: model.class_path is missing")
    task_class = import_class(model_cfg["class_path"])
    configured = dict(model_cfg.get("init_args") or {})
    for note in checkpoints.check_settings(ckpt, hparams, configured, task_class):
        warn(note)
    kinds = getattr(task_class, "option_kind", lambda key: "architecture")
    hparams.update({k: v for k, v in configured.items() if k in hparams and kinds(k) == "evaluation"})
    weights = hparams.get("weights")
    if "weights" in hparams:
        hparams["weights"] = None  # the checkpoint holds the trained weights; no need for the file
    if hparams.get("detector_weights"):  # the same for a whole detector, which keeps the weights' structure
        from visionsuite.models.detection.pretrained import WEIGHTS_IN_CHECKPOINT

        hparams["detector_weights"] = WEIGHTS_IN_CHECKPOINT
    task = task_class(**hparams)
    task.load_state_dict(saved["state_dict"], strict=True)
    task.eval()
    data_cfg = config["data"] if isinstance(config["data"], dict) else {}
    if not data_cfg.get("class_path"):
        raise ConfigError(f"--config {path}: data.class_path is missing")
    init = {**(data_cfg.get("init_args") or {}), **(data_overrides or {})}
    datamodule = import_class(data_cfg["class_path"])(**init)
    if hasattr(task, "align_datamodule"):  # the pretrained weights' preprocessing, as the fit adopted it
        task.align_datamodule(datamodule, weights, warn_mismatch=False)
    return Trained(task, datamodule, path, ckpt)
