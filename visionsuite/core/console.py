"""What a run prints while it works: live bars in a terminal, whole lines in a file.

A log redirected to a file (``visionsuite fit … > train.log``, a batch job) should read line by
line: no carriage returns, no bar redrawn thousands of times. :func:`interactive` is the one
test every layer uses for "a person is watching this stream"; where it is false, a long step
prints one line when it is done (:func:`timed_line`) instead of a progress bar.

``VISIONSUITE_PROGRESS_BAR=1`` makes :func:`interactive` true for every stream (bars even in a
file, as before); ``VISIONSUITE_PROGRESS_BAR=0`` makes it false (lines even in a terminal).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import TextIO

#: the environment variable that forces bars (``1``) or lines (``0``) whatever the stream is.
PROGRESS_BAR_ENV = "VISIONSUITE_PROGRESS_BAR"


def forced_progress_bar() -> bool | None:
    """``True``/``False`` when ``VISIONSUITE_PROGRESS_BAR`` is set to 1/0 (yes/no, true/false), else ``None``."""
    value = os.environ.get(PROGRESS_BAR_ENV, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def interactive(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stdout``) is a terminal, unless the environment forces it."""
    forced = forced_progress_bar()
    if forced is not None:
        return forced
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def line(message: str) -> None:
    """One whole line on stdout, flushed (a file being followed with ``tail -f`` shows it at once)."""
    print(message, flush=True)


@contextlib.contextmanager
def timed_line(message: str) -> Iterator[list[str]]:
    """One line when the block completes: ``<message> (<details>) in <seconds> s``, where the
    block appends its details (counts) to the list it is given; nothing is printed if it fails."""
    details: list[str] = []
    start = time.perf_counter()
    yield details
    extra = f" ({', '.join(details)})" if details else ""
    line(f"{message}{extra} in {time.perf_counter() - start:.1f} s")
