"""``images/curves.png`` in every run folder: the run's curves, redrawn as it trains.

The numbers are the ones in ``metrics.csv``: the CSV logger's rows (the file it has written,
plus any rows it holds but has not saved yet). Without a CSV logger the callback keeps its own
rows, one per validation, from the values the task logged (``trainer.callback_metrics``).

:func:`curve_series` turns rows into one ``[(step, value), …]`` series per logged key,
:func:`curve_panels` sorts the series into panels (training loss, the monitored metric, the
other metrics, the learning rate) and :func:`draw_curves` draws them (Agg, written atomically);
:class:`TrainingCurves` calls the three after each validation and at the end of fit, on rank 0.
A missing matplotlib or a failed drawing is one warning, never a failed run.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.trainer.states import TrainerFn

from visionsuite.core.atomic import atomic_path
from visionsuite.core.notes import warn
from visionsuite.core.readers import finite_number

#: the file name, under the run folder's ``images/`` (where the sample pictures go too).
FILENAME = "curves.png"
#: row keys that are coordinates, not series.
_AXES = ("step", "epoch")

Series = dict[str, list[tuple[int, float]]]


def curve_series(rows: Iterable[Mapping[str, Any]]) -> Series:
    """One series per logged key: ``{key: [(step, value), …]}`` in row order.

    ``rows`` are ``metrics.csv`` rows (``csv.DictReader``'s strings, or the CSV logger's numbers):
    each has a ``step`` and some of the logged keys. Empty cells, rows without a step and values
    that are not finite numbers are left out; ``step``/``epoch`` are coordinates, not series.
    """
    series: Series = {}
    for row in rows:
        step = finite_number(row.get("step"))
        if step is None:
            continue
        for key, raw in row.items():
            value = finite_number(raw)
            if key in _AXES or value is None:
                continue
            series.setdefault(key, []).append((int(step), value))
    return series


def curve_panels(series: Series, monitor: str | None) -> list[tuple[str, str, Series]]:
    """``(title, y label, series)`` per panel that has data, in this order: training loss (every
    ``train/`` key but the monitor's twin), the monitored metric (with its ``train/`` twin), the
    other metrics (``val/`` and anything else, ``test/`` excluded) and the learning rate
    (LearningRateMonitor's ``lr-…`` keys)."""
    twin = f"train/{monitor.split('/', 1)[-1]}" if monitor else None
    train: Series = {}
    monitored: Series = {}
    other: Series = {}
    rates: Series = {}
    for key, points in series.items():
        if not points or key.startswith("test/"):
            continue
        if key in (monitor, twin):
            monitored[key] = points
        elif key == "lr" or key.startswith(("lr-", "lr/")):
            rates[key] = points
        elif key.startswith("train/"):
            train[key] = points
        else:
            other[key] = points
    only_losses = all("loss" in key for key in train)
    panels = [
        ("training loss" if only_losses else "training", "loss" if only_losses else "value", train),
        (f"monitored: {monitor}", str(monitor), dict(sorted(monitored.items(), key=lambda kv: kv[0] != monitor))),
        ("other validation metrics", "value", other),
        ("learning rate", "learning rate", rates),
    ]
    return [(title, ylabel, data) for title, ylabel, data in panels if data]


#: one dash pattern per line of a panel (train / val / …), so a greyscale print tells them apart.
LINE_STYLES = ("-", "--", ":", "-.")


def draw_curves(panels: list[tuple[str, str, Series]], path: Path) -> Path | None:
    """Draw ``panels`` (from :func:`curve_panels`) into the PNG ``path``, atomically (a temporary
    name in the same folder, then renamed); ``None`` and no file when there is nothing to draw.
    Raises ImportError without matplotlib."""
    if not panels:
        return None
    fig = curves_figure(panels)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    fig.clear()  # a pyplot-free Figure: nothing else keeps it alive
    return path


def curves_figure(panels: list[tuple[str, str, Series]]) -> Any:
    """The figure of :func:`draw_curves`: one panel per quantity, one line per series, each line
    with its own dash pattern (:data:`LINE_STYLES`)."""
    from visionsuite.outputs.figures import new_figure  # matplotlib, only when something is drawn

    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(6.0 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, ylabel, data) in zip(axes.flat, panels, strict=False):
        for i, (key, points) in enumerate(data.items()):
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=key, marker="o" if len(points) <= 30 else None, markersize=3, linewidth=1.2,
                    linestyle=LINE_STYLES[i % len(LINE_STYLES)])  # fmt: skip  # the lines differ in greyscale too
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class TrainingCurves(Callback):
    """Redraws ``<run>/images/curves.png`` after each validation and at the end of fit (rank 0).

    Not under ``fast_dev_run`` (Lightning writes no logs there either), nor outside ``fit``.
    """

    def __init__(self) -> None:
        #: rows of logged values, one per validation: used only when there is no CSV logger.
        self.rows: list[dict[str, float]] = []
        #: what the last drawing was given (``curve_panels``' series): what tests compare.
        self.drawn: list[tuple[str, str, Series]] = []
        self._warned = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if _csv_logger(trainer) is None:
            self.rows.append(_logged_row(trainer))
        self._update(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        path = self._update(trainer, pl_module)
        if path is not None:  # W&B draws the scalars itself; the run's own picture goes there once, at the end
            from lightning.pytorch.loggers import WandbLogger

            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image(key="curves", images=[str(path)])

    def _update(self, trainer: Trainer, pl_module: LightningModule) -> Path | None:
        """Redraw the PNG; its path, or ``None`` when nothing was drawn."""
        if trainer.fast_dev_run:
            return None
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "images"  # as FigureLogger; collective under DDP
        if not trainer.is_global_zero:
            return None
        try:
            logger = _csv_logger(trainer)
            rows = csv_rows(logger) if logger is not None else self.rows
            panels = curve_panels(curve_series(rows), getattr(pl_module, "monitor", None))
            written = draw_curves(panels, out_dir / FILENAME)
            self.drawn = panels
            return written
        except ImportError as err:
            self._warn(f"no {FILENAME}: {err} (pip install matplotlib)")
        except Exception as err:  # noqa: BLE001 - a picture must never stop a training
            self._warn(f"could not draw {out_dir / FILENAME}: {type(err).__name__}: {err}")
        return None

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warn(message)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


def _csv_logger(trainer: Trainer) -> CSVLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)


def csv_rows(logger: CSVLogger) -> list[dict[str, Any]]:
    """The rows of the CSV logger: those in its ``metrics.csv`` and those it has yet to save."""
    experiment = logger.experiment
    path = Path(experiment.metrics_file_path)
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    return [*rows, *experiment.metrics]


def _logged_row(trainer: Trainer) -> dict[str, float]:
    """The scalars logged so far (``callback_metrics``) and each optimiser's learning rate, as one
    row at the current step (``lr-<Optimizer>``, LearningRateMonitor's names)."""
    row: dict[str, float] = {"step": trainer.global_step, "epoch": trainer.current_epoch}
    for key, value in trainer.callback_metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not key.startswith("test/"):
            row[key] = float(value)
    for i, optimizer in enumerate(trainer.optimizers):
        name = f"lr-{type(optimizer).__name__}" + (f"-{i}" if i else "")
        row[name] = float(optimizer.param_groups[0]["lr"])
    return row
