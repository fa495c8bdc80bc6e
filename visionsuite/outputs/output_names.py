"""Where a prediction for one input file goes: named after the file, never over another one's.

Both ``predict`` writers that make one picture per input (segmentation masks, detection boxes)
name it after the input's path relative to the predicted folder, suffix replaced, so a user
finds ``street/0001.png`` for ``street/0001.jpg``. Two inputs that would share a name
(``a.jpg`` and ``a.png``) both keep their suffix in it (``a_jpg.png``, ``a_png.png``) instead of one
silently replacing the other, and a mask's overlay never takes another input's name.
"""

from __future__ import annotations

import functools
from pathlib import Path

from visionsuite.data.images import IMG_EXTENSIONS


def relative_name(source: str | Path, root: Path | None) -> Path:
    """``source`` relative to ``root`` when inside it, else its own file name (or, for a name
    that is not a file such as ``test/12``, that name)."""
    path = Path(source)
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root)
    return Path(path.name) if path.is_absolute() or path.is_file() else path


def prediction_path(
    folder: Path, source: str | Path, root: Path | None, taken: set[Path], suffix: str = ".png", companions: tuple[str, ...] = ()
) -> Path:
    """``folder/<relative name>`` with ``suffix``, and adds it (and its companions) to ``taken``.

    Inputs that share a stem in one folder (``a.jpg`` and ``a.png`` side by side) both keep their
    own suffix in the name (``a_jpg.png``, ``a_png.png``), whichever comes first, so no output
    carries the name of another input. ``companions`` are the stem endings of files written
    beside it (``("_overlay",)`` for ``a_overlay.png``): when one of them, or the name itself, is
    already another input's (``a_overlay.jpg`` beside ``a.jpg``), the name moves on to ``a_2``,
    ``a_3`` …; nothing is written over.
    """
    rel = relative_name(source, root)
    path = Path(source)
    twins = bool(rel.suffix) and path.is_file() and _image_stems(path.parent).count(path.stem.lower()) > 1
    base = f"{rel.stem}_{rel.suffix.lstrip('.')}" if twins else rel.stem

    def names(stem: str) -> list[Path]:
        return [folder / rel.with_name(f"{stem}{ending}{suffix}") for ending in ("", *companions)]

    candidate, n = base, 2
    if any(name in taken for name in names(candidate)) and rel.suffix and not twins:
        candidate = base = f"{rel.stem}_{rel.suffix.lstrip('.')}"
    while any(name in taken for name in names(candidate)):
        candidate, n = f"{base}_{n}", n + 1
    taken.update(names(candidate))
    return names(candidate)[0]


def _image_stems(folder: Path) -> list[str]:
    """The (lower-case) stems of the image files in ``folder``, listed once per folder and change."""
    return _stems_listed(folder, folder.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _stems_listed(folder: Path, mtime_ns: int) -> list[str]:
    return [f.stem.lower() for f in folder.iterdir() if f.suffix.lower() in IMG_EXTENSIONS]
