"""Lenient readers of files a run may still be writing: a JSON object, a number in a CSV cell.

``metrics.csv``, ``metrics.json`` and ``run.json`` are read while a run writes them (``runs``,
``compare``, the curves, the run record): a missing file, half a row or ``nan`` is no error there,
just nothing to show. Standard library only, so ``visionsuite runs`` answers without torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def finite_number(raw: Any) -> float | None:
    """A finite float from a CSV cell (or a number); ``None`` for an empty cell, text or NaN/inf."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
