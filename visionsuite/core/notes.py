"""One-line notes to the user, on stderr, in the same form from every layer."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    """A note the user can act on, on one line of stderr."""
    print(f"visionsuite: warning: {message}", file=sys.stderr)
