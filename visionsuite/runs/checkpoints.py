"""Checking a ``--ckpt_path`` before Lightning touches it.

The file is opened once here with ``torch.load(weights_only=True)``: a checkpoint that needs
pickled code is refused before any of it runs, and a missing, truncated or foreign file gives
one line instead of a traceback. Remote checkpoints (``http://``, ``s3://``, …) are refused –
Lightning would load them with ``weights_only=False`` – download the file and pass its path.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from visionsuite.errors import VisionSuiteError


class CheckpointError(VisionSuiteError):
    """A checkpoint that cannot be used: missing, unreadable, unsafe or made for another model."""


def local_checkpoint(spec: str) -> Path:
    """The local path of ``spec``; URLs are refused (see the module docstring)."""
    if "://" in spec:
        raise CheckpointError(
            f"--ckpt_path {spec}: remote checkpoints are not loaded (they could run code);"
            " download the file and pass its local path"
        )
    path = Path(spec)
    if not path.is_file():
        raise CheckpointError(f"--ckpt_path {spec}: no such file")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded weights-only on the CPU."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):  # a class/function reference: code
            raise CheckpointError(
                f"--ckpt_path {path}: refused, the file holds pickled code, not only weights"
                " (loaded with weights_only=True; nothing of it was run)"
            ) from None
        raise CheckpointError(f"--ckpt_path {path}: truncated or not a checkpoint (unpickling failed)") from None
    except Exception as err:  # torch.load raises many types (RuntimeError, KeyError, EOFError, …) for bad bytes
        first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"--ckpt_path {path}: truncated or not a checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"--ckpt_path {path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def _differing(saved: dict[str, Any], configured: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, "key: checkpoint=… config=…")`` for each model hyperparameter the two disagree on."""
    return [
        (key, f"{key}: checkpoint={saved[key]!r} config={configured[key]!r}")
        for key in sorted(saved.keys() & configured.keys())
        if not key.startswith("_") and plain_value(saved[key]) != plain_value(configured[key])
    ]


def hparam_differences(
    saved: dict[str, Any], configured: dict[str, Any], may_differ: Iterable[str] = ()
) -> list[str]:
    """``key: checkpoint=… config=…`` for each model hyperparameter the two disagree on, except
    those in ``may_differ`` (a task's ``evaluation_options``)."""
    skip = set(may_differ)
    return [text for key, text in _differing(saved, configured) if key not in skip]


def check_settings(
    ckpt: Path, saved: dict[str, Any], configured: dict[str, Any], task_class: type | None, *, resume: bool = False
) -> list[str]:
    """Refuse a checkpoint whose weights mean something else than the config says; return notes.

    Each hyperparameter is one of its task's three kinds (``BaseTask.option_kind``): an
    *evaluation* option takes the config's value silently; a *training* option that differs is
    accepted with a one-line note (the weights were only trained differently) – except when
    resuming, which continues the run as it was trained; an *architecture* option that differs
    is refused, naming the key and both values.
    """
    kind = getattr(task_class, "option_kind", lambda key: "architecture")
    kinds = [(kind(key), text) for key, text in _differing(saved, configured)]
    architecture = [text for which, text in kinds if which == "architecture"]
    training = [text for which, text in kinds if which == "training"]
    refused = sorted(architecture + training) if resume and training else architecture
    if refused:
        why = ("these shape the weights, so they must match; training settings such as lr may differ" if architecture
               else "resuming continues a run as it was trained")  # fmt: skip
        raise CheckpointError(f"{ckpt} was trained with other model settings than the config: {'; '.join(refused)} ({why})")
    if training:
        return [f"{ckpt} was trained with other training settings ({'; '.join(training)}); evaluating its weights as they are"]
    return []


def plain_value(value: Any) -> Any:
    """Tuples and lists compare equal (YAML has only lists); ints and equal floats too; dict keys
    as strings (``unfreeze_at: {1: …}`` may come back from a checkpoint as ``{'1': …}``)."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    return value
