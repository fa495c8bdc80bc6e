"""Safe archive extraction: no member may land outside the destination folder.

Archives come from mirrors and downloads, i.e. from outside the project, so absolute paths,
``..`` components and links pointing out of the tree are refused (``tarfile``'s ``"data"``
filter, plus an explicit check so zips and old Pythons get the same guarantee). Extraction
goes to a temporary folder first and is moved into place at the end, so a crash half-way never
leaves a partial tree that looks complete.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UnsafeArchiveError
from .sources import remove_tree


def check_member_name(name: str, archive: Path) -> None:
    """Raise :class:`UnsafeArchiveError` for absolute names or names with ``..``."""
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts or ".." in win.parts:
        raise UnsafeArchiveError(f"refusing to extract {archive.name}: unsafe member path {name!r}")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_member_name(member.name, archive)
        try:  # the "data" filter also rejects links that point outside and device files
            tar.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"refusing to extract {archive.name}: {err}") from None


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        for name in names:
            check_member_name(name, archive)
        zf.extractall(dest)


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract a ``.tar[.gz|.bz2|.xz]`` or ``.zip`` into ``dest``; return the top-level entries.

    Top-level entries that already exist in ``dest`` are replaced (they are stale leftovers:
    callers only extract when the tree they need is missing or incomplete).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, Path(tmp))
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, Path(tmp))
        else:
            raise UnsafeArchiveError(f"{archive.name} is neither a tar nor a zip archive")
        placed = []
        for entry in sorted(Path(tmp).iterdir()):
            target = dest / entry.name
            remove_tree(target)
            os.replace(entry, target)
            placed.append(target)
    return placed
