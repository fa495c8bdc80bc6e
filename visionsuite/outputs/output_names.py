"""Where a prediction for one input file goes: named after the file, never over another one's.

Both ``predict`` writers that make one picture per input (segmentation masks, detection boxes)
name it after the input's path relative to the predicted folder, suffix replaced, so a user
finds ``street/0001.png`` for ``street/0001.jpg``. Two inputs that would share a name
(``a.jpg`` and ``a.png``) keep their suffix in it (``a_jpg.png``, ``a_png.png``) instead of one
silently replacing the other.
"""

from __future__ import annotations

from pathlib import Path


def relative_name(source: str | Path, root: Path | None) -> Path:
    """``source`` relative to ``root`` when inside it, else its own file name (or, for a name
    that is not a file such as ``test/12``, that name)."""
    path = Path(source)
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root)
    return Path(path.name) if path.is_absolute() or path.is_file() else path


def prediction_path(folder: Path, source: str | Path, root: Path | None, taken: set[Path], suffix: str = ".png") -> Path:
    """``folder/<relative name>`` with ``suffix``; a name already in ``taken`` (given to another
    input of the same call) gets the input's own suffix added. Adds the result to ``taken``."""
    rel = relative_name(source, root)
    target = folder / rel.with_suffix(suffix)
    if target in taken and rel.suffix:
        target = folder / rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}{suffix}")
    n = 2
    while target in taken:
        target = target.with_name(f"{rel.stem}_{n}{suffix}")
        n += 1
    taken.add(target)
    return target
