"""Exceptions of the data layer.

Every message is a single line that says what is wrong and what to do, because the CLI prints
``str(err)`` instead of a traceback: a user with a misplaced folder should not have to read
library internals.
"""

from __future__ import annotations

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
