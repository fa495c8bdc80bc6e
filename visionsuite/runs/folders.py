"""One folder per run: ``<experiment root>/<run name>/`` with a ``latest`` pointer per experiment.

The experiment root is ``trainer.default_root_dir`` of the config. ``fit`` creates a new run
folder (the ``--run_name`` or a timestamp) that is never reused – except by
``fit --ckpt_path last``, which resumes the latest run in place. ``validate``/``test``/``predict``
write into their own ``<timestamp>-<subcommand>`` folder. ``latest`` is a relative symlink to
the newest ``fit`` run (a one-line text file where the file system has no symlinks).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from visionsuite.errors import VisionSuiteError

LATEST = "latest"
CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


class RunError(VisionSuiteError):
    """A run folder or checkpoint the command line asks for that does not exist (or exists already)."""


def check_run_name(name: str) -> str:
    """A run name is one path component, so it cannot escape the experiment root."""
    if not _NAME.match(name) or name == LATEST:
        raise RunError(f"--run_name {name!r}: use letters, digits and . _ = + - (one folder name, not 'latest')")
    return name


def create_run_dir(root: Path, name: str | None, suffix: str = "") -> Path:
    """Create a new, empty run folder; an explicit name that exists already is an error."""
    root.mkdir(parents=True, exist_ok=True)
    if name is not None:
        path = root / check_run_name(name)
        try:
            path.mkdir()
        except FileExistsError:
            raise RunError(
                f"run {path} exists already: resume it with --ckpt_path last, or choose another --run_name"
            ) from None
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S") + suffix
    for attempt in range(1000):  # two runs started in the same second get -2, -3, …
        path = root / (stamp if attempt == 0 else f"{stamp}-{attempt + 1}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"cannot create a run folder under {root}")


def tool_output_dir(source: Path, tool: str) -> Path:
    """A new ``<stamp>-<tool>`` folder for what a tool writes, beside the run ``source`` came from.

    ``source`` is a checkpoint (``<run>/checkpoints/x.ckpt``: the folder goes beside ``<run>``,
    as ``test`` and ``predict`` write theirs) or any other file (the folder goes beside it). Never
    the current directory, never an existing folder: outputs of two calls do not mix.
    """
    folder = source.parent
    root = folder.parent.parent if folder.name == CHECKPOINTS else folder
    created = create_run_dir(root, None, f"-{tool}")
    TOOL_DIRS.append(created)
    return created


#: folders :func:`tool_output_dir` made in this process, for :func:`discard_empty_tool_dirs`.
TOOL_DIRS: list[Path] = []


def discard_empty_tool_dirs() -> None:
    """Remove the output folders this process made that a failed tool left empty (empty
    subfolders included), so a failure leaves nothing behind."""
    while TOOL_DIRS:
        folder = TOOL_DIRS.pop()
        if not folder.is_dir() or any(p.is_file() for p in folder.rglob("*")):
            continue
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        folder.rmdir()


def set_latest(root: Path, run_dir: Path) -> None:
    """Point ``<root>/latest`` at ``run_dir`` (replaced atomically, so a reader never sees it missing)."""
    tmp = root / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:  # no symlinks here (some Windows set-ups): a text file naming the run
        tmp.write_text(run_dir.name + "\n")
    os.replace(tmp, root / LATEST)


def latest_name(root: Path) -> str | None:
    """The run name ``<root>/latest`` points at (``None`` when there is no pointer)."""
    pointer = root / LATEST
    if pointer.is_symlink():
        return os.readlink(pointer)
    return pointer.read_text().strip() if pointer.is_file() else None


def latest_run(root: Path) -> Path:
    """The run ``latest`` points at."""
    pointer = root / LATEST
    if pointer.is_symlink():
        name = os.readlink(pointer)
    elif pointer.is_file():
        name = pointer.read_text().strip()
    else:
        raise RunError(f"no run to take a checkpoint from: {root} has no '{LATEST}' run (train one with fit first)")
    run = root / name
    if not run.is_dir():
        raise RunError(f"{pointer} points at {run}, which does not exist")
    return run


def find_run(root: Path, name: str | None) -> Path:
    """The run called ``name``, or the latest one."""
    if name is None:
        return latest_run(root)
    run = root / check_run_name(name)
    if not run.is_dir():
        raise RunError(f"no run {run}")
    return run


def run_checkpoint(run: Path, which: str) -> Path:
    """``last`` → ``checkpoints/last.ckpt``; ``best`` → the one ``best-*.ckpt`` of the run."""
    folder = run / CHECKPOINTS
    if which == "last":
        path = folder / "last.ckpt"
        if not path.is_file():
            raise RunError(f"run {run} has no {path.name} (it stopped before its first checkpoint)")
        return path
    best = sorted(folder.glob("best-*.ckpt"))
    if len(best) > 1:  # a run folder that was moved or copied and then resumed keeps the old best too
        named = _best_named_by_last(folder)
        best = [named] if named in best else best
    if len(best) != 1:
        found = "no" if not best else f"{len(best)}"
        raise RunError(
            f"run {run} has {found} best-*.ckpt checkpoint(s) (no validation score yet, or the task monitors"
            " nothing); use --ckpt last or a checkpoint's path"
        )
    return best[0]


def _best_named_by_last(folder: Path) -> Path | None:
    """The best checkpoint ``last.ckpt``'s checkpoint callback names (by file name, so it holds
    in a moved folder); ``None`` without one."""
    import torch

    last = folder / "last.ckpt"
    try:
        callbacks = torch.load(last, map_location="cpu", weights_only=True).get("callbacks", {})
    except (OSError, RuntimeError, ValueError, AttributeError):
        return None
    for state in callbacks.values() if isinstance(callbacks, dict) else []:
        name = Path(str(state.get("best_model_path") or "")).name if isinstance(state, dict) else ""
        if name.startswith("best-"):
            return folder / name
    return None


#: where ``--run NAME`` and ``--run latest`` look for runs (every experiment root below it).
RUNS_ROOT = Path("logs")


def is_fit_run(path: Path) -> bool:
    """A folder ``fit`` made: its resolved ``config.yaml`` and a ``checkpoints/`` folder."""
    return (path / "config.yaml").is_file() and (path / CHECKPOINTS).is_dir()


def iter_fit_runs(root: Path) -> list[Path]:
    """Every fit run below ``root`` (experiment roots nest: ``logs/classification/lenet5_…/<run>``)."""
    if not root.is_dir():
        return []
    found = []
    for config in sorted(root.rglob("config.yaml")):
        run = config.parent
        if is_fit_run(run) and not run.is_symlink():
            found.append(run)
    return found


def resolve_run(spec: str, root: Path = RUNS_ROOT) -> Path:
    """The run folder ``--run spec`` means: a folder path, ``latest`` (the newest fit of any
    experiment below ``root``) or a run name (unique below ``root``)."""
    path = Path(spec).expanduser()
    if path.is_dir() or "/" in spec or spec in (".", ".."):
        if not path.is_dir():
            raise RunError(f"--run {spec}: no such folder")
        run = path.resolve() if path.name == LATEST else path
        if not (run / "config.yaml").is_file():
            raise RunError(f"--run {spec}: not a run folder (it has no config.yaml)")
        return run
    if spec == LATEST:
        pointers = [p for p in root.rglob(LATEST) if p.is_symlink() or p.is_file()] if root.is_dir() else []
        if not pointers:
            raise RunError(f"--run latest: no run under {root}/ (train one with fit first, or give the run's folder)")
        newest = max(pointers, key=lambda p: p.lstat().st_mtime)
        return latest_run(newest.parent)
    check_run_name(spec)
    matches = [run for run in iter_fit_runs(root) if run.name == spec]
    if not matches:
        raise RunError(f"--run {spec}: no run of that name under {root}/ (give the run's folder to look elsewhere)")
    if len(matches) > 1:
        raise RunError(f"--run {spec}: {len(matches)} runs of that name under {root}/ ({', '.join(map(str, matches))}); give the folder")
    return matches[0]


def checkpoint_of(run: Path, spec: str) -> Path:
    """``--ckpt best|last|PATH`` of a run: its best or last checkpoint, or a file."""
    if spec in ("best", "last"):
        return run_checkpoint(run, spec)
    from visionsuite.runs.checkpoints import local_checkpoint

    return local_checkpoint(spec)


def checkpoint_for_config(root: Path, run_name: str | None, spec: str) -> tuple[Path | None, Path]:
    """``--ckpt_path best|last|PATH`` of a config: for ``best``/``last``, (the run: ``run_name``'s,
    else the latest under ``root``, and its checkpoint); for a path, (``None``, the file). The one
    place a config's ``best``/``last`` is resolved (``fit``/``test``/… and the tools)."""
    if spec in ("best", "last"):
        source = find_run(root, run_name)
        return source, run_checkpoint(source, spec)
    from visionsuite.runs.checkpoints import local_checkpoint

    return None, local_checkpoint(spec)


def run_checkpoint_for(run: Path, spec: str | None) -> tuple[Path, str | None]:
    """``--ckpt best|last|PATH`` (default ``best``) of ``run``, and a note when ``best`` fell back
    to ``last`` because the run keeps no best checkpoint (a task that monitors nothing, a GAN)."""
    if spec is None:
        best = sorted((run / CHECKPOINTS).glob("best-*.ckpt"))
        if not best and (run / CHECKPOINTS / "last.ckpt").is_file():
            return run_checkpoint(run, "last"), f"run {run} keeps no best checkpoint; using its last.ckpt"
        spec = "best"
    return checkpoint_of(run, spec), None
