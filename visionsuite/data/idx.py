"""Reader for the IDX format of (Fashion-)MNIST: a big-endian header, then raw uint8 data.

Parsing the gzip'd files straight into numpy takes well under a second for 70k images, so no
per-image Python work (and no torchvision dataset object) is needed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import CorruptArchiveError, InvalidDatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an ``.idx`` or ``.idx.gz`` file into an array of its declared shape and dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # a download or copy cut short
        raise CorruptArchiveError(f"{path} is truncated or corrupt ({err}): delete it and fetch it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise InvalidDatasetError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise CorruptArchiveError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)
