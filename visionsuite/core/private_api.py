"""Every use the suite makes of a private attribute of Lightning, jsonargparse (argparse) or
torchmetrics, in one place.

Each function reads or writes one attribute whose name starts with ``_``, where no public API
gives the same thing; its docstring names the attribute and why the suite needs it. A release
that renames one fails ``tests/test_private_api.py`` (each function is run there against the
installed libraries), and the same test checks that no other module of the suite touches these
names. Where a public path exists the suite uses it instead, and it does not belong here.

Nothing here imports the libraries: the functions take their objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

#: the private attribute names this module is the only reader of (checked by the test above).
PRIVATE_NAMES = (
    "_logger_connector",
    "_trainer",
    "_last_global_step_saved",
    "_save_last_checkpoint",
    "_monitor_candidates",
    "_average_model",
    "_wandb_init",
    "_jit_is_scripting",
    "_option_string_actions",
    "_typehint",
    "_coco_backend",
)


# -- Lightning ---------------------------------------------------------------------------------
def should_update_logs(trainer: Any) -> bool:
    """Whether the loggers write at this step: ``trainer._logger_connector.should_update_logs``.

    Lightning decides it from the fit loop's private count of batches that stepped the optimiser
    (``(n + 1) % log_every_n_steps == 0``, or the trainer stopping). That count is not
    ``trainer.global_step``: under manual optimisation (the GAN's two optimisers) the global step
    advances twice per batch. Reading Lightning's own answer keeps ``train/*`` values computed at
    exactly the steps its loggers write.
    """
    return bool(trainer._logger_connector.should_update_logs)


def attached_trainer(module: Any) -> Any | None:
    """The Trainer a LightningModule is attached to, or ``None``: ``module._trainer``.

    The public ``module.trainer`` raises ``RuntimeError`` when the module is not attached (a task
    built and used outside ``Trainer.fit``/``test``), so asking "is there one?" needs the
    attribute behind the property.
    """
    return module._trainer


def last_checkpoint_step(callback: Any) -> int:
    """The global step a ``ModelCheckpoint`` last saved at: ``callback._last_global_step_saved``.

    Lightning keeps it to skip saving twice at one step and exposes no public reader; the suite's
    ``LastCheckpoint`` reads it to refresh ``last.ckpt`` only when it is stale.
    """
    return int(callback._last_global_step_saved)


def save_last_checkpoint(callback: Any, trainer: Any) -> None:
    """Write ``callback``'s ``last.ckpt`` now: ``callback._save_last_checkpoint(trainer,
    callback._monitor_candidates(trainer))``.

    The public route (``trainer.save_checkpoint``) writes a file but none of what a
    ``ModelCheckpoint`` keeps about it (``last_model_path``, the step saved, the previous last
    file removed, the loggers told); these two private methods are how Lightning itself saves it.
    """
    callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


def averaged_model(callback: Any) -> Any | None:
    """The ``AveragedModel`` of a ``WeightAveraging`` callback (``None`` before ``fit`` set it up):
    ``callback._average_model``.

    Lightning has no public accessor; the suite's EMA needs it to tell a resumed fit (restore the
    average) from a test or predict whose checkpoint already holds the averaged weights.
    """
    return callback._average_model


def wandb_init_arguments(logger: Any) -> dict[str, Any] | None:
    """The keyword arguments a ``WandbLogger`` will hand ``wandb.init`` (a dict it mutates in
    place): ``logger._wandb_init``; ``None`` for any other logger.

    The CLI drops an ``anonymous=None`` from it, which Lightning always adds and W&B then warns
    about on every run; the logger offers no public way to change them after construction.
    """
    init = getattr(logger, "_wandb_init", None)
    return init if isinstance(init, dict) else None


@contextlib.contextmanager
def scripting(modules: Iterable[Any]) -> Iterator[None]:
    """Mark the LightningModules among ``modules`` as being scripted or traced while the block
    runs: ``module._jit_is_scripting``.

    Their ``trainer`` property then returns ``None`` instead of raising when the tracer reads it,
    as Lightning's own ``to_torchscript`` arranges; the suite traces wrapped tasks, which that
    method cannot.
    """
    lightning = [m for m in modules if hasattr(m, "_jit_is_scripting")]
    for m in lightning:
        m._jit_is_scripting = True
    try:
        yield
    finally:
        for m in lightning:
            m._jit_is_scripting = False


# -- jsonargparse (argparse) ---------------------------------------------------------------------
def option_action(parser: Any, option: str) -> Any | None:
    """The action of a parser's option (``"--trainer.limit_val_batches"``), or ``None``:
    ``parser._option_string_actions`` (argparse's table, which jsonargparse's parser keeps).

    Neither argparse nor jsonargparse has a public lookup of an action by its option string.
    """
    return parser._option_string_actions.get(option)


def option_typehint(action: Any) -> Any:
    """The type a jsonargparse ``ActionTypeHint`` parses its value as: ``action._typehint``."""
    return action._typehint


def set_option_typehint(action: Any, typehint: Any) -> None:
    """Make a jsonargparse ``ActionTypeHint`` parse its value as ``typehint``: ``action._typehint``.

    The CLI retypes Lightning's ``limit_*_batches`` (``Optional[Union[int, float]]``, which
    typing's union cache hands back float-first, so ``1`` parsed as 1.0) as ``int | float``;
    jsonargparse offers no public way to change an added argument's type.
    """
    action._typehint = typehint


# -- torchmetrics ----------------------------------------------------------------------------------
def coco_backend_name(metric: Any) -> str:
    """The COCO evaluation backend (``pycocotools`` or ``faster_coco_eval``) a torchmetrics
    ``MeanAveragePrecision`` was built with: ``metric._coco_backend.backend``.

    The metric keeps its ``backend`` argument only there; the suite needs it to build a twin of a
    configured metric with one option changed.
    """
    return str(metric._coco_backend.backend)
