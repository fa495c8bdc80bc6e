"""The argument parser of every tool command (``export``, ``ensemble``, ``convert``, ``summary`` …).

argparse's own error path prints a usage block and a second error line and exits; LightningCLI's
commands already give one line with the nearest accepted key. This parser makes the tools say
the same: a usage error is raised as :class:`ToolUsageError`, which the CLI's one handler prints
as ``visionsuite: error: <tool>: <message> (see --help)`` with exit status 2. A misspelt option gets
the nearest accepted ones, and the one flag style of the project (``--batch_size``) is enforced
gently: the dashed spelling of an underscored option (``--check-images``) is read as that option.
Abbreviations are off (``--out`` is not silently taken for ``--output``).
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from visionsuite.errors import ConfigError


class ToolUsageError(ConfigError):
    """A tool's command line that does not parse (unknown option, missing or invalid value)."""


class ToolParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors, suggestions and dash-tolerant option names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.known_options: list[str] = []  # before argparse's own __init__ adds --help
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.known_options.extend(action.option_strings)
        return action

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        return super().parse_args(None if args is None else [self._one_style(a) for a in args], namespace)

    def _one_style(self, arg: str) -> str:
        """``--check-images[=8]`` → ``--check_images[=8]`` when only the underscored one exists."""
        if not arg.startswith("--") or "-" not in arg[2:].split("=", 1)[0]:
            return arg
        name, sep, value = arg.partition("=")
        underscored = "--" + name[2:].replace("-", "_")
        if name not in self.known_options and underscored in self.known_options:
            return underscored + sep + value
        return arg

    def error(self, message: str) -> NoReturn:
        raise ToolUsageError(f"{self.prog.removeprefix('visionsuite ')}: {message}{self._suggestion(message)} (see --help)")

    def _suggestion(self, message: str) -> str:
        """``; did you mean --check_images?`` for the unknown options named in ``message``."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        hints = []
        for word in re.findall(r"--[\w-]+", message):
            near = difflib.get_close_matches(word.replace("-", "_"), [o.replace("-", "_") for o in self.known_options], n=2, cutoff=0.6)
            hints += [o for o in self.known_options if o.replace("-", "_") in near and o not in hints]
        return f"; did you mean {' or '.join(hints)}?" if hints else ""
