"""Lookup order, offline failure, and safe archive extraction."""

from __future__ import annotations

import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

import visionsuite.data.sources as sources
from visionsuite.data import CIFAR10DataModule, DatasetNotFoundError, FashionMNISTDataModule, UnsafeArchiveError
from visionsuite.data.archive import safe_extract


def _online(host: str = "fashion-mnist.s3-website.eu-central-1.amazonaws.com") -> bool:
    try:
        socket.create_connection((host, 80), timeout=2).close()
        return True
    except OSError:
        return False


def test_mirror_env_wins_over_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path))
    assert sources.mirror_root() == tmp_path
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path / "missing"))
    assert sources.mirror_root() is None  # an explicit but missing mirror disables it
    monkeypatch.delenv("VISIONSUITE_MIRROR")
    assert sources.default_mirror_candidates()[0] == Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_offline_download_fails_fast_with_one_line(tmp_path, monkeypatch) -> None:
    if _online():
        pytest.skip("the network is reachable: this test checks the offline failure")
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path / "empty-mirror"))
    (tmp_path / "empty-mirror").mkdir()
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 3.0)
    timeouts = _record_timeouts(monkeypatch)
    for cls in (FashionMNISTDataModule, CIFAR10DataModule):
        dm = cls(data_dir=str(tmp_path / "data"))
        with pytest.raises(DatasetNotFoundError) as info:
            dm.prepare_data()
        msg = str(info.value)
        assert "\n" not in msg and "VISIONSUITE_MIRROR" in msg and "data_dir" in msg, msg
    assert not list((tmp_path / "data").rglob("*.gz"))  # no partial download left behind
    assert timeouts and set(timeouts) == {3.0}  # every download attempt ran under the short timeout


def _record_timeouts(monkeypatch) -> list[float]:
    """The socket timeout each download attempt runs under (the mechanism that makes it fail fast)."""
    seen: list[float] = []
    real = sources.socket_timeout
    monkeypatch.setattr(sources, "socket_timeout", lambda seconds: (seen.append(seconds), real(seconds))[1])
    return seen


def test_unresponsive_server_times_out(tmp_path, monkeypatch) -> None:
    """A server that accepts the connection but never answers must hit the short socket timeout."""
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path))
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 1.0)
    timeouts = _record_timeouts(monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts nor replies
        port = silent.getsockname()[1]
        real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, _port, *a, **k: real("127.0.0.1", port, *a, **k))
        with pytest.raises(DatasetNotFoundError, match="timed out") as info:
            CIFAR10DataModule(data_dir=str(tmp_path / "data")).prepare_data()
        assert "VISIONSUITE_MIRROR" in str(info.value)
        assert timeouts == [1.0]  # one attempt, under the short timeout: that is what "timed out" hit


def _tar_with(path: Path, name: str, **info) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        member = tarfile.TarInfo(name)
        for key, value in info.items():
            setattr(member, key, value)
        payload = b"" if info else b"pwned\n"
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    return path


@pytest.mark.parametrize(
    ("name", "info"),
    [
        ("../evil", {}),
        ("ok/../../evil", {}),
        ("/tmp/evil", {}),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, name, info) -> None:
    archive = _tar_with(tmp_path / "bad.tar.gz", name, **info)
    dest = tmp_path / "out" / "inner"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, dest)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()
    assert list(dest.iterdir()) == []  # nothing half-extracted left behind


def test_unsafe_zip_member_is_refused_and_safe_archives_extract(tmp_path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../evil", "pwned")
    with pytest.raises(UnsafeArchiveError, match="evil"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    with tarfile.open(tmp_path / "good.tar.gz", "w:gz") as tar:
        for name in ("top/a.txt", "top/sub/b.txt"):
            member = tarfile.TarInfo(name)
            member.size = 2
            tar.addfile(member, io.BytesIO(b"hi"))
    assert safe_extract(tmp_path / "good.tar.gz", tmp_path / "out") == [tmp_path / "out" / "top"]
    assert (tmp_path / "out" / "top" / "sub" / "b.txt").read_text() == "hi"
