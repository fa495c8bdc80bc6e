"""Point a parsed CLI config at its run folder, before any class is instantiated.

Everything a run writes lands in the run folder because the config says so: the Trainer's
``default_root_dir`` (checkpoints, ``metrics.json``, predictions, pictures) and the logger's
``save_dir``/``name``/``version`` (CSV/TensorBoard files directly in the run folder, so
``trainer.log_dir`` is the run folder too; the W&B run is named ``<experiment>/<run>``).
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from visionsuite.errors import ConfigError

_FILE_LOGGERS = ("CSVLogger", "TensorBoardLogger")


def logger_entries(trainer_cfg: Any) -> list[Any]:
    """The ``class_path``/``init_args`` entries of ``trainer.logger`` (none for ``true``/``false``)."""
    logger = trainer_cfg.get("logger")
    entries = logger if isinstance(logger, list) else [logger]
    return [e for e in entries if hasattr(e, "get") and e.get("class_path")]


def configure_loggers(trainer_cfg: Any, run_dir: Path, resumed: bool) -> list[str]:
    """Set each logger's location and name for ``run_dir``; returns warnings to print."""
    notes: list[str] = []
    experiment = run_dir.parent.name
    for entry in logger_entries(trainer_cfg):
        kind = entry.class_path.rsplit(".", 1)[-1]
        args = entry.get("init_args")
        if args is None:
            continue
        if kind in _FILE_LOGGERS:
            if kind == "TensorBoardLogger":
                _require_tensorboard()
            args.save_dir, args.name, args.version = str(run_dir), "", ""
        elif kind == "WandbLogger":
            args.save_dir, args.name, args.version = str(run_dir), f"{experiment}/{run_dir.name}", None
            previous = _previous_wandb_id(run_dir) if resumed else None
            args.id = previous or args.get("id") or secrets.token_hex(4)
            if not args.get("offline") and not _wandb_can_sync():
                args.offline = True
                notes.append(
                    "W&B: no login and WANDB_MODE unset, so the run is logged offline in"
                    f" {run_dir}/wandb; upload it later with `wandb sync`"
                )
        elif "save_dir" in args:
            args.save_dir = str(run_dir)
    return notes


def _require_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("the TensorBoard logger needs TensorBoard: pip install -e '.[tensorboard]'")


def _previous_wandb_id(run_dir: Path) -> str | None:
    """The W&B run id the run used before it was stopped (from its saved config)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    saved = yaml.safe_load(path.read_text()) or {}
    logger = (saved.get("trainer") or {}).get("logger")
    for entry in logger if isinstance(logger, list) else [logger]:
        if isinstance(entry, dict) and entry.get("class_path", "").endswith("WandbLogger"):
            return (entry.get("init_args") or {}).get("id")
    return None


def _wandb_can_sync() -> bool:
    """True when W&B is told its mode, or has an API key (env or ~/.netrc) to go online with."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://", 1)[-1].split("/", 1)[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
