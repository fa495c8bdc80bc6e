"""Where raw dataset files come from: ``data_dir``, then the offline mirror, then the network.

The project's machines often have no internet, so a read-only mirror of the canonical archives
(``VISIONSUITE_MIRROR``, by default the checkout's sibling ``../shared/datasets``) is tried
before downloading. The download code is the real one (torchvision's downloader and the
canonical URLs); offline it fails fast because every socket gets a short timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import DatasetNotFoundError

#: environment variable naming the offline mirror folder.
MIRROR_ENV = "VISIONSUITE_MIRROR"
#: seconds a download may wait on a socket before giving up (keeps offline failures short).
DOWNLOAD_TIMEOUT = 10.0


def default_mirror_candidates() -> list[Path]:
    """The checkout's ``../shared/datasets``, found from the package and from the cwd."""
    import visionsuite

    return [
        Path(visionsuite.__file__).resolve().parents[2] / "shared" / "datasets",
        Path.cwd().parent / "shared" / "datasets",
    ]


def mirror_root() -> Path | None:
    """The mirror folder: ``$VISIONSUITE_MIRROR`` if set (even if empty/missing), else the default.

    An explicit ``VISIONSUITE_MIRROR`` wins outright, so pointing it at an empty folder really
    disables the mirror (what the offline tests rely on).
    """
    env = os.environ.get(MIRROR_ENV)
    if env is not None and env.strip():
        path = Path(env).expanduser()
        return path if path.is_dir() else None
    return next((p for p in default_mirror_candidates() if p.is_dir()), None)


def mirror_path(*parts: str) -> Path | None:
    """``<mirror>/<parts...>`` if the mirror exists and holds it, else ``None``."""
    root = mirror_root()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def first_dir_with(files: Sequence[str], dirs: Iterable[Path | None]) -> Path | None:
    """The first folder among ``dirs`` that holds every name in ``files``."""
    for folder in dirs:
        if folder is not None and all((folder / name).is_file() for name in files):
            return folder
    return None


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Give every new socket a timeout (torchvision's ``urlopen`` calls pass none)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def download(url: str, dest_dir: Path, filename: str | None = None, md5: str | None = None) -> Path:
    """Download ``url`` into ``dest_dir`` with torchvision's downloader, atomically.

    The file is fetched into a temporary folder next to its destination and moved into place
    only once complete and checksummed, so an interrupted download never looks like data.
    """
    from torchvision.datasets.utils import download_url

    filename = filename or url.rsplit("/", 1)[-1]
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp:
        with socket_timeout(DOWNLOAD_TIMEOUT):
            download_url(url, tmp, filename=filename, md5=md5)
        target = dest_dir / filename
        os.replace(Path(tmp) / filename, target)
    return target


def download_first(
    urls: Sequence[str], dest_dir: Path, filename: str, md5: str | None = None
) -> tuple[Path | None, str]:
    """Try each URL in turn; return ``(path, "")`` or ``(None, reason of the last failure)``."""
    reason = "no download URL"
    for url in urls:
        try:
            return download(url, dest_dir, filename, md5), ""
        except Exception as err:  # noqa: BLE001 - any network/IO failure means "try the next"
            reason = f"{type(err).__name__}: {err}"
    return None, reason


def not_found(dataset: str, data_dir: Path, mirror_subdir: str, reason: str) -> DatasetNotFoundError:
    """The one-line error for "nowhere to get this dataset from"."""
    root = mirror_root()
    env = os.environ.get(MIRROR_ENV)
    where = f"{MIRROR_ENV}={env!r}" if env else f"{MIRROR_ENV} unset, default mirror {root}"
    mirror = f"no {mirror_subdir}/ in the mirror ({where})"
    if root is None:
        mirror = f"no mirror folder ({where})"
    return DatasetNotFoundError(
        f"{dataset} not found: nothing usable under data_dir={str(data_dir)!r}, {mirror}, "
        f"and the download failed ({reason}). Put the files under data_dir or point "
        f"{MIRROR_ENV} at a folder holding {mirror_subdir}/."
    )


def remove_tree(path: Path) -> None:
    """Delete a stale partial tree inside the data folder (never follows symlinks)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
