"""Safe archive extraction: no member may land outside the destination folder.

Archives come from mirrors and downloads, i.e. from outside the project, so absolute paths,
``..`` components and links pointing out of the tree are refused (``tarfile``'s ``"data"``
filter, plus an explicit check so zips and old Pythons get the same guarantee). Extraction
goes to a temporary folder first and is moved into place at the end, so a crash half-way never
leaves a partial tree that looks complete.
"""

from __future__ import annotations

import gzip
import lzma
import os
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import CorruptArchiveError, UnsafeArchiveError, writing
from .sources import remove_tree


def check_member_name(name: str, archive: Path) -> None:
    """Raise :class:`UnsafeArchiveError` for absolute names or names with ``..``."""
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts or ".." in win.parts:
        raise UnsafeArchiveError(f"refusing to extract {archive.name}: unsafe member path {name!r}")


#: what reading a cut or damaged archive raises (a short gzip/bz2/xz stream, a bad tar header, a bad zip).
_READ_ERRORS = (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()  # reads to the end: a truncated archive fails here
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
    with writing(dest, f"the files of {archive.name} to"):
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
            _extract_any(archive, Path(tmp))
            placed = []
            for entry in sorted(Path(tmp).iterdir()):
                target = dest / entry.name
                remove_tree(target)
                os.replace(entry, target)
                placed.append(target)
    return placed


def _extract_any(archive: Path, dest: Path) -> None:
    """Extract a zip or tar; an archive that cannot be read to its end is a :class:`CorruptArchiveError`."""
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest)
        else:
            raise CorruptArchiveError(f"{archive} is neither a tar nor a zip archive: delete it and fetch it again")
    except _READ_ERRORS as err:
        raise CorruptArchiveError(
            f"{archive} ({archive.stat().st_size} bytes) is truncated or corrupt "
            f"({type(err).__name__}: {err}): delete it and fetch it again"
        ) from err
