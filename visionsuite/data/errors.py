"""Exceptions of the data layer.

Every message is a single line that says what is wrong and what to do, because the CLI prints
``str(err)`` instead of a traceback: a user with a misplaced folder should not have to read
library internals.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visionsuite.errors import VisionSuiteError


class DataError(VisionSuiteError, RuntimeError):
    """Base class: bad or missing input data, reported in one line (the CLI catches these)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DatasetNotFoundError(DataError):
    """The dataset is neither under ``data_dir``, nor in the mirror, nor downloadable."""


class InvalidDatasetError(DataError):
    """The data exists but cannot be used as given (e.g. an image folder with one class)."""


class UnsafeArchiveError(DataError):
    """An archive member would land outside the extraction folder (absolute path, ``..``)."""


class CorruptArchiveError(InvalidDatasetError):
    """A dataset archive that cannot be read to its end (truncated download or copy, not an archive)."""


class DataWriteError(DataError):
    """``data_dir`` cannot take the files the data layer writes (read-only, full disk, not a folder)."""


#: what the user can do about the usual reasons a write under ``data_dir`` fails.
_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free space or point data_dir at another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or point data_dir at another disk",
    errno.EACCES: "data_dir must be a writable folder: fix its permissions or point data_dir elsewhere",
    errno.EPERM: "data_dir must be a writable folder: fix its permissions or point data_dir elsewhere",
    errno.EROFS: "data_dir is on a read-only file system: point data_dir at a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: point data_dir at a folder",
}


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``what`` to ``path`` into one :class:`DataWriteError` line."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        # torch.save reports some failed writes as a RuntimeError raised while handling the OSError
        os_error = err if isinstance(err, OSError) else (err.__cause__ or err.__context__)
        if not isinstance(os_error, OSError):
            raise
        reason = os_error.strerror or str(os_error) or type(os_error).__name__
        hint = _WRITE_HINTS.get(os_error.errno or 0, "check that data_dir is a writable folder with free space")
        raise DataWriteError(f"cannot write {what} {str(path)!r}: {reason}; {hint}") from err
