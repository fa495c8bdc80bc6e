"""``visionsuite runs [ROOT]``: one line per fit run below ROOT (default ``logs/``), newest first.

Columns: the run (its path below ROOT), the task and model from its ``config.yaml``, its status,
epochs trained, the best value of the metric it selects on (from ``metrics.csv``) and its age.
``--json`` prints the same as a JSON list, for scripts.

Everything is read with ``yaml``, ``csv`` and ``json`` only – no torch, no Lightning, no
checkpoint is opened – so the listing answers at once even for many runs. The readers here are
shared with ``visionsuite compare`` (:mod:`visionsuite.tools.compare`).

Status: ``run.json`` (written by :class:`visionsuite.callbacks.run_record.RunRecord`) says
``running``/``finished``/``stopped``/``diverged``/``failed``; a ``running`` run whose process is
gone on this host is ``killed``. Older runs without ``run.json`` are ``finished`` when
``metrics.json`` records the end of fit (``fit_global_step``), else ``unknown``.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from visionsuite.core.readers import finite_number as number
from visionsuite.core.readers import read_json_object as read_json
from visionsuite.core.tool_parser import ToolParser
from visionsuite.runs.folders import RUNS_ROOT, RunError, iter_fit_runs

#: metrics a task selects on, in the order :func:`guess_monitor` tries them (older runs only).
MONITOR_CANDIDATES = ("val/acc", "val/miou", "val/map", "val/fid", "val/loss")
#: the file :class:`~visionsuite.callbacks.run_record.RunRecord` writes (kept in sync by a test).
RUN_JSON = "run.json"


@dataclass
class RunInfo:
    """One line of the listing (and one object of ``--json``)."""

    name: str
    path: str
    task: str
    backbone: str
    status: str
    epochs: int | None
    monitor: str | None
    mode: str | None
    best: float | None
    started: str
    age_s: float
    error: str | None = None


# --- readers (no torch) ---------------------------------------------------------------------

def read_config(run: Path) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` (``{}`` when unreadable)."""
    import yaml

    try:
        data = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_rows(run: Path) -> list[dict[str, str]]:
    """The rows of the run's ``metrics.csv`` (the CSV logger's sparse rows; ``[]`` without one)."""
    try:
        with (run / "metrics.csv").open(newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def column(rows: Iterable[Mapping[str, Any]], key: str) -> list[float]:
    """The finite values of one ``metrics.csv`` column, in row order."""
    return [v for v in (number(row.get(key)) for row in rows) if v is not None]


def logged_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns holding at least one finite value, in column order."""
    keys: dict[str, None] = {}
    for row in rows:
        for key, raw in row.items():
            if key not in keys and number(raw) is not None:
                keys[key] = None
    return list(keys)


# --- what a run selects on ------------------------------------------------------------------

def mode_of(key: str) -> str:
    """``min`` for a loss or an FID (lower is better), else ``max``."""
    return "min" if key.endswith(("/loss", "/fid")) else "max"


def guess_monitor(keys: Iterable[str]) -> tuple[str, str] | None:
    """The metric an older run (without ``run.json``) most likely selected on, and its mode.

    The rule: the first of :data:`MONITOR_CANDIDATES` (``val/acc``, ``val/miou``, ``val/map``,
    ``val/fid``, ``val/loss``) that the run logged; mode ``min`` for ``*/loss`` and ``*/fid``,
    ``max`` for the others. The tasks' real choice (``monitor``/``mode``) is in ``run.json``,
    which :func:`monitored` prefers; this rule is only the fallback.
    """
    present = set(keys)
    key = next((k for k in MONITOR_CANDIDATES if k in present), None)
    return (key, mode_of(key)) if key else None


def monitored(record: Mapping[str, Any], keys: Iterable[str]) -> tuple[str, str] | None:
    """The run's monitored metric and mode: ``run.json``'s (``None`` for a task that monitors
    nothing, a GAN), else :func:`guess_monitor`."""
    if "monitor" in record:
        key = record["monitor"]
        return (key, record.get("mode") or mode_of(key)) if key else None
    return guess_monitor(keys)


def best_of(values: Sequence[float], mode: str) -> float | None:
    """The best of ``values`` (``max`` or ``min``), ``None`` when there are none."""
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


# --- status, epochs, time -------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


def status_of(record: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """``run.json``'s status (``killed`` for a ``running`` one whose process on this host is
    gone); without ``run.json``: ``finished`` if ``metrics.json`` has ``fit_global_step``, else ``unknown``."""
    status = record.get("status")
    if not status:
        return "finished" if "fit_global_step" in metrics else "unknown"
    if status == "running" and record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if not isinstance(pid, int) or not pid_alive(pid):
            return "killed"
    return str(status)


def epochs_of(record: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> int | None:
    """Epochs trained: ``run.json``'s count, else the highest epoch of a training or validation
    row of ``metrics.csv`` + 1 (the test after fit logs one epoch further; those rows don't count)."""
    if isinstance(record.get("epochs"), int):
        return record["epochs"]
    epochs = [
        number(row.get("epoch"))
        for row in rows
        if any(k.startswith(("train/", "val/")) and number(v) is not None for k, v in row.items())
    ]
    epochs = [e for e in epochs if e is not None]
    return int(max(epochs)) + 1 if epochs else None


def started_of(record: Mapping[str, Any], run: Path) -> float:
    """When the run started (``run.json``), else its folder's modification time: the sort key."""
    try:
        return datetime.fromisoformat(str(record["started"])).timestamp()
    except (KeyError, ValueError):
        return run.stat().st_mtime


def age(seconds: float) -> str:
    """``42s``, ``3m``, ``2h``, ``5d``: the largest whole unit."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


# --- config ---------------------------------------------------------------------------------

def task_of(config: Mapping[str, Any]) -> str:
    """The task class name from ``model.class_path`` (``-`` when the config has none)."""
    model = config.get("model")
    path = model.get("class_path") if isinstance(model, dict) else None
    return str(path).rsplit(".", 1)[-1] if path else "-"


def model_of(config: Mapping[str, Any]) -> str:
    """The network's name: ``model.init_args.backbone``, ``model`` or ``arch`` (``-`` without one)."""
    model = config.get("model")
    init = model.get("init_args") if isinstance(model, dict) else None
    if isinstance(init, dict):
        for key in ("backbone", "model", "arch"):
            if isinstance(init.get(key), str) and init[key]:
                return init[key]
    return "-"


# --- the listing ----------------------------------------------------------------------------

def describe(run: Path, root: Path, now: float | None = None) -> RunInfo:
    """Everything the listing says about one run, read from its files."""
    now = time.time() if now is None else now
    record = read_json(run / RUN_JSON)
    config = read_config(run)
    rows = read_rows(run)
    chosen = monitored(record, logged_keys(rows))
    key, mode = chosen if chosen else (None, None)
    started = started_of(record, run)
    try:
        name = str(run.relative_to(root))
    except ValueError:
        name = str(run)
    return RunInfo(
        name=name,
        path=str(run),
        task=task_of(config) if config else str(record.get("task") or "-"),
        backbone=model_of(config) if config else str(record.get("backbone") or "-"),
        status=status_of(record, read_json(run / "metrics.json")),
        epochs=epochs_of(record, rows),
        monitor=key,
        mode=mode,
        best=best_of(column(rows, key), mode) if key and mode else None,
        started=datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        age_s=round(now - started, 1),
        error=record.get("error"),
    )


def list_runs(root: Path, now: float | None = None) -> list[RunInfo]:
    """The fit runs below ``root``, newest first."""
    now = time.time() if now is None else now
    infos = [describe(run, root, now) for run in iter_fit_runs(root)]
    return sorted(infos, key=lambda info: info.age_s)


def format_value(value: float | None) -> str:
    """A metric value for a table: 4 decimals (``-`` for none)."""
    return "-" if value is None else f"{value:.4f}"


def format_table(infos: Sequence[RunInfo]) -> str:
    """The aligned listing with its header line."""
    header = ("RUN", "TASK", "MODEL", "STATUS", "EPOCHS", "BEST", "AGE")
    lines = [header]
    for info in infos:
        best = f"{info.monitor} {format_value(info.best)}" if info.monitor else "-"
        epochs = "-" if info.epochs is None else str(info.epochs)
        lines.append((info.name, info.task, info.backbone, info.status, epochs, best, age(info.age_s)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main_runs(args: list[str]) -> int:
    parser = ToolParser(prog="visionsuite runs", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=RUNS_ROOT, help=f"folder to search (default: {RUNS_ROOT}/)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    opts = parser.parse_args(args)
    if not opts.root.is_dir():
        what = "a file, not a folder" if Path(opts.root).is_file() else "no such folder"
        raise RunError(f"{opts.root}: {what} (give the folder your runs are in, e.g. logs/)")
    infos = list_runs(opts.root)
    if opts.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
    elif not infos:
        print(f"no fit runs below {opts.root}/")
    else:
        print(format_table(infos))
    return 0


main = main_runs
