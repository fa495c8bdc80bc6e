"""A misspelt option answered with the nearest accepted ones and where it was written.

jsonargparse reports an unknown key in three shapes (``model (ClassificationTask): Option 'lrr'
is not accepted``, ``Subcommand 'fit' does not accept option 'trainer.max_epoch'`` and
``unrecognized arguments: --modle.init_args.lr 3``) and names neither a likely intended key
nor the YAML file the key came from. :func:`explain_unknown_key` adds both, as the backbone
registry does for names (``Did you mean …?``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path

#: the top-level keys of a ``fit``/``test``/… config (LightningCLI's and the suite's own).
TOP_LEVEL = ("trainer", "model", "data", "seed_everything", "ckpt_path", "config", "optimizer", "lr_scheduler",
             "test_after_fit", "run_name", "run", "allow_untrained", "ckpt", "weights_only")  # fmt: skip

#: where a short class name from an error message is looked up.
NAMESPACES = ("visionsuite.tasks", "visionsuite.data")


def accepted_options(cls: type) -> list[str]:
    """The keyword names ``cls(...)`` accepts, through every ``__init__`` that forwards ``**kwargs``
    to its parent (as jsonargparse resolves them)."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


#: longer spellings users type for the suite's short option names (``learning_rate`` for ``lr``).
SPELLED_OUT = {"learning_rate": "lr", "num_epochs": "max_epochs", "epochs": "max_epochs", "wd": "weight_decay",
               "bs": "batch_size", "classes": "num_classes", "in_channels": "in_chans"}  # fmt: skip


def nearest(name: str, names: Sequence[str]) -> list[str]:
    """Up to three of ``names`` close to ``name`` (difflib's ratio ≥ 0.6), closest first; a
    spelled-out form of a short name (``lerning_rate`` → ``lr``) counts as close."""
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    for long in difflib.get_close_matches(name, list(SPELLED_OUT), n=1, cutoff=0.8):
        if SPELLED_OUT[long] in names and SPELLED_OUT[long] not in close:
            close.insert(0, SPELLED_OUT[long])
    return close[:3]


def _class_named(short: str) -> type | None:
    for module in NAMESPACES:
        cls = getattr(importlib.import_module(module), short, None)
        if isinstance(cls, type):
            return cls
    return None


def _trainer_options() -> list[str]:
    from lightning.pytorch import Trainer

    return accepted_options(Trainer)


def _candidates(dotted: str) -> tuple[str, list[str]]:
    """For an unknown dotted key, the part that is wrong and what could stand there."""
    parts = dotted.split(".")
    if parts[0] not in TOP_LEVEL:
        return parts[0], list(TOP_LEVEL)
    if parts[0] == "trainer" and len(parts) >= 2:
        return parts[1], _trainer_options()
    if parts[0] in ("model", "data") and len(parts) >= 2 and parts[1] not in ("init_args", "class_path"):
        return parts[1], ["init_args", "class_path"]
    return parts[-1], []


def config_files(argv: Sequence[str]) -> list[str]:
    """The ``--config`` files of a command line, in order (``--config F`` and ``--config=F``)."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    return configs + [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]


def _where(key: str, leaf: str, argv: Sequence[str]) -> str:
    """``on the command line`` or ``in FILE line N`` for an unknown key (empty when not found)."""
    if any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv):
        return "on the command line"
    pattern = re.compile(rf"^\s*{re.escape(leaf)}\s*:")
    for config in config_files(argv):
        try:
            lines = Path(config).read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            if pattern.match(line):
                return f"in {config} line {number}"
    return ""


def explain_unknown_key(message: str, argv: Sequence[str]) -> str:
    """``message`` with ``Did you mean …?`` and where the unknown key was written, when it is one."""
    found = re.search(r"(\w+) \((\w+)\): Option '([^']+)' is not accepted", message)
    if found:
        section, short, leaf = found.groups()
        cls = _class_named(short)
        names = accepted_options(cls) if cls is not None else []
        key = f"{section}.init_args.{leaf}"
    else:
        found = re.search(r"does not accept option '([^']+)'", message) or re.search(
            r"unrecognized arguments: --([\w.]+)", message
        )
        if not found:
            return message
        key = found.group(1)
        leaf, names = _candidates(key)
    hint = nearest(leaf, names)
    where = _where(key, leaf, argv)
    parts = [message.rstrip(".")]
    if where:
        parts.append(f"'{leaf}' {where}")
    if hint:
        parts.append(f"did you mean {', '.join(repr(h) for h in hint)}?")
    return "; ".join(parts)
