"""``visionsuite compare RUN RUN… [--output compare.png] [--root logs]``: what differs between runs.

Prints two Markdown tables – the config keys whose values differ (dotted keys of each run's
``config.yaml``, without the per-run bookkeeping: folders, logger names and ids, ``run_name``,
``ckpt_path``), then the final value of every ``val/*`` and ``test/*`` metric the runs share and
the best of each run's monitored metric – and writes one PNG overlaying the runs' validation
curves (a panel per shared ``val/*`` key, a line per run, x = step). Runs are given as for
``--run``: a folder, a name below ``--root``, or ``latest``. Runs of different tasks are
compared on what they share. Nothing is written into a run folder.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionsuite.core.tool_parser import ToolParser
from visionsuite.runs.folders import CHECKPOINTS, RUNS_ROOT, RunError, resolve_run, tool_output_dir
from visionsuite.tools.runs import (
    RUN_JSON,
    best_of,
    format_value,
    logged_keys,
    monitored,
    read_config,
    read_json,
    read_rows,
    task_of,
)

#: dotted config keys that differ from run to run by construction, not by choice.
BOOKKEEPING = re.compile(
    r"^(trainer\.default_root_dir|run_name|run|ckpt_path|weights_only"
    r"|trainer\.logger(\.\d+)?\.init_args\.(save_dir|dir|name|version|id)"
    r"|trainer\.callbacks(\.\d+)?\.init_args\.dirpath)$"
)

Series = dict[str, list[tuple[int, float]]]


@dataclass
class Compared:
    """One run as compare sees it: its label, files read once."""

    label: str
    path: Path
    task: str
    config: dict[str, Any]
    rows: list[dict[str, str]]
    record: dict[str, Any]

    @functools.cached_property
    def series(self) -> Series:
        """The run's ``metrics.csv`` as one ``[(step, value)]`` series per key (the curves' reader)."""
        # imports torch: only when comparing, never in the listing
        from visionsuite.outputs.curves import curve_series

        return curve_series(self.rows)

    def monitor(self) -> tuple[str, str] | None:
        return monitored(self.record, logged_keys(self.rows))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"init_args": {"lr": 0.1}}}`` → ``{"model.init_args.lr": 0.1}``; lists of
    mappings (loggers, callbacks) by index (``trainer.logger.0.init_args.save_dir``), other lists as values."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, sub in items:
        flat.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_differences(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The dotted keys whose values differ between the configs (a key one config lacks counts
    as different), without :data:`BOOKKEEPING` keys; ``{key: [value per config]}``, sorted by key."""
    flats = [flatten(c) for c in configs]
    missing = object()
    keys = sorted({k for flat in flats for k in flat if not BOOKKEEPING.match(k)})
    diffs = {}
    for key in keys:
        values = [flat.get(key, missing) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            diffs[key] = [None if v is missing else v for v in values]
    return diffs


def shared_keys(runs: Sequence[Compared], prefixes: tuple[str, ...]) -> list[str]:
    """The metric keys with ``prefixes`` that every run logged, in the first run's order."""
    sets = [set(logged_keys(run.rows)) for run in runs]
    return [k for k in logged_keys(runs[0].rows) if k.startswith(prefixes) and all(k in s for s in sets)]


def metric_rows(runs: Sequence[Compared]) -> list[tuple[str, list[float | None]]]:
    """``(row title, value per run)``: the final value of each shared ``val/*``/``test/*`` key,
    then the best of each monitored key (one row per distinct key, ``None`` where a run lacks it)."""
    series = [run.series for run in runs]
    rows: list[tuple[str, list[float | None]]] = []
    for key in shared_keys(runs, ("val/", "test/")):
        rows.append((f"final {key}", [s[key][-1][1] if s.get(key) else None for s in series]))
    chosen = {}
    for run in runs:
        pick = run.monitor()
        if pick:
            chosen.setdefault(pick[0], pick[1])
    for key, mode in chosen.items():
        values = [best_of([v for _, v in s.get(key, [])], mode) for s in series]
        rows.append((f"best {key} ({mode})", values))
    return rows


def curve_panels(runs: Sequence[Compared]) -> list[tuple[str, Series]]:
    """What the PNG draws: ``(val key, {run label: [(step, value)]})`` per shared ``val/*`` key."""
    series = [run.series for run in runs]
    return [(key, {run.label: s[key] for run, s in zip(runs, series, strict=True)}) for key in shared_keys(runs, ("val/",))]


def draw_panels(panels: Sequence[tuple[str, Series]], path: Path) -> Path | None:
    """One panel per key, one line per run, into ``path`` (atomically, through the run curves'
    own drawing); ``None`` when nothing to draw."""
    from visionsuite.outputs.curves import draw_curves

    return draw_curves([(key, key.split("/", 1)[-1], data) for key, data in panels], path)


def labels(paths: Sequence[Path]) -> list[str]:
    """Short, distinct names: the folder names, or as many trailing path parts as make them unique."""
    parts = [p.resolve().parts for p in paths]
    for n in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (``|`` in a cell escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def load(specs: Sequence[str], root: Path) -> list[Compared]:
    """Resolve the runs (at least two, none twice) and read their files."""
    if len(specs) < 2:
        raise RunError(f"compare needs at least 2 runs, got {len(specs)}")
    paths = [resolve_run(spec, root) for spec in specs]
    seen: dict[Path, str] = {}
    for spec, path in zip(specs, paths, strict=True):
        real = path.resolve()
        if real in seen:
            raise RunError(f"run {real} is given twice (as {seen[real]} and {spec}); comparing a run with itself says nothing")
        seen[real] = spec
    return [
        Compared(label, path, task_of(config), config, read_rows(path), read_json(path / RUN_JSON))
        for label, path, config in zip(labels(paths), paths, (read_config(p) for p in paths), strict=True)
    ]


def main_compare(args: list[str]) -> int:
    parser = ToolParser(prog="visionsuite compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="a run: its folder, its name below --root, or latest")
    parser.add_argument("--output", type=Path, default=None,
                        help="the PNG of the curves (default: compare.png in a new <stamp>-compare folder beside the first run)")
    parser.add_argument("--root", type=Path, default=RUNS_ROOT, help=f"where run names are looked up (default: {RUNS_ROOT}/)")
    opts = parser.parse_args(args)
    runs = load(opts.runs, opts.root)
    tasks = list(dict.fromkeys(run.task for run in runs))
    if len(tasks) > 1:
        print(f"note: runs of different tasks ({', '.join(tasks)}): comparing what they share")
    header = ["", *(run.label for run in runs)]
    diffs = config_differences([run.config for run in runs])
    print("## config differences\n")
    print(markdown(header, [[key, *map(_cell, values)] for key, values in diffs.items()]) if diffs else "(none)")
    metrics = metric_rows(runs)
    print("\n## metrics\n")
    print(markdown(header, [[title, *map(format_value, values)] for title, values in metrics]) if metrics else "(no shared metrics)")
    panels = curve_panels(runs)
    output = opts.output
    if output is None and panels:  # never the current directory; the checkpoints path places it beside the run
        output = tool_output_dir(runs[0].path / CHECKPOINTS / "compare", "compare") / "compare.png"
    written = draw_panels(panels, output) if panels else None
    print(f"\nwrote {written}" if written else "\nno shared validation curves: no PNG written")
    return 0


main = main_compare
