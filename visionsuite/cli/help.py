"""``visionsuite fit|validate|test|predict --help``: the task's and data module's options first.

LightningCLI's own help is ~520 lines, almost all of them the Trainer's, and names no task.
This help leads with examples and the tasks and data modules there are; given a ``--config``,
it prints that config's task and data options with their docs (jsonargparse's
``--model.help CLASS``, the subclass help LightningCLI offers). ``--help all`` (or
``--help trainer``) is LightningCLI's complete help, Trainer options included.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from visionsuite.cli.suggest import config_files

#: ``--help <word>`` that asks for LightningCLI's complete help.
FULL = ("all", "trainer", "full")

EXAMPLES = {
    "fit": ["visionsuite fit --config configs/classification/lenet5_fashion_mnist.yaml",
            ("visionsuite fit --config configs/classification/lenet5_fashion_mnist.yaml --trainer.max_epochs 3"
             " --model.init_args.lr 0.01"),
            "visionsuite fit --run latest --trainer.max_epochs 10      # resume (or extend) a run in place"],
    "validate": ["visionsuite validate --run latest --ckpt last"],
    "test": ["visionsuite test --run latest                 # the run's best checkpoint",
             "visionsuite test --run logs/<root>/<run> --ckpt last"],
    "predict": ["visionsuite predict --run latest --data.init_args.predict_dir my_images/"],
}  # fmt: skip


def wants_help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)


def wants_full_help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") and i + 1 < len(args) and args[i + 1] in FULL for i, a in enumerate(args))


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _classes(module: str, base: str) -> list[type]:
    mod = importlib.import_module(module)
    if hasattr(mod, "import_all"):
        mod.import_all()
    parent = getattr(importlib.import_module(base.rsplit(".", 1)[0]), base.rsplit(".", 1)[1])
    names = getattr(mod, "__all__", dir(mod))
    found = [getattr(mod, n) for n in names]
    return [c for c in found if isinstance(c, type) and issubclass(c, parent) and c is not parent and not inspect.isabstract(c)
            and not (c.__doc__ or "").startswith("Base class")]  # fmt: skip  # bases are documented, not chosen


def configured_classes(args: Sequence[str]) -> dict[str, str]:
    """``{"model": class_path, "data": class_path}`` from the ``--config`` files in ``args`` (a
    later file wins, as in LightningCLI)."""
    found: dict[str, str] = {}
    for config in config_files(args):
        try:
            loaded = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for section in ("model", "data"):
            entry = loaded.get(section) if isinstance(loaded, dict) else None
            if isinstance(entry, dict) and isinstance(entry.get("class_path"), str):
                found[section] = entry["class_path"]
    return found


def _class_help(run_cli: Callable[[list[str]], Any], subcommand: str, section: str, class_path: str) -> str:
    """jsonargparse's help for one class (its options and their docs), without the usage block."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        run_cli([subcommand, f"--{section}.help", class_path])
    text = out.getvalue()
    start = text.find("Help for")
    return text[start:] if start >= 0 else text


def print_help(subcommand: str, args: Sequence[str], run_cli: Callable[[list[str]], Any]) -> None:
    """The help described in the module docstring; ``run_cli`` is the LightningCLI runner."""
    lines = [f"usage: visionsuite {subcommand} --config CONFIG.yaml [--config MORE.yaml] [--section.key VALUE …]",
             f"       visionsuite {subcommand} --run RUN [--ckpt best|last|PATH] [overrides]", "", "examples:"]
    lines += [f"  {e}" for e in EXAMPLES.get(subcommand, [])]
    classes = configured_classes(args)
    if not classes:
        lines += ["", "tasks (model.class_path: visionsuite.tasks.<name>):"]
        lines += [f"  {c.__name__:<28} {_first_line(c)}" for c in _classes("visionsuite.tasks", "visionsuite.tasks.BaseTask")]
        lines += ["", "data modules (data.class_path: visionsuite.data.<name>):"]
        lines += [f"  {c.__name__:<28} {_first_line(c)}"
                  for c in _classes("visionsuite.data", "lightning.pytorch.LightningDataModule")]  # fmt: skip
    more = [(f"visionsuite {subcommand} --config C.yaml --help", "that config's task and data options, with their docs"),
            (f"visionsuite {subcommand} --model.help ClassificationTask", "one task's options (--data.help CIFAR10DataModule: one data module's)"),
            (f"visionsuite {subcommand} --help all", "every option, the Trainer's included (LightningCLI's help)"),
            ("README.md", "a quickstart per task family; configs/ holds a config per recipe")]  # fmt: skip
    width = max(len(c) for c, _ in more) + 2
    lines += ["", "more help:", *(f"  {c:<{width}}{t}" for c, t in more)]
    print("\n".join(lines))
    for section, class_path in classes.items():
        print(f"\n── {section}: {class_path} " + "─" * 20)
        print(_class_help(run_cli, subcommand, section, class_path).rstrip())
