"""Write a file completely or not at all.

Every output (predictions, exported models and their sidecars, ensemble tables, figures) is
written to a temporary name in the target's own folder and renamed onto the target when it is
complete (``os.replace`` is atomic within one file system): a command that fails half-way leaves
the previous file byte-identical and no partial new one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(target: Path) -> Path:
    """A hidden sibling of ``target`` that keeps its suffix (exporters and savers choose the
    format by it): ``dir/.model.<pid>.tmp.onnx``."""
    return target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        if err.filename not in (str(tmp), tmp):
            raise
        # name the file the user asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(target)) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
