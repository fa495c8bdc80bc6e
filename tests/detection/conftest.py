"""Fixtures of the detection tests: COCO128 extracted once per session from the mirror."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def coco128(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extracted ``coco128/`` tree (images, COCO JSON, YOLO labels, names.yaml)."""
    dest = tmp_path_factory.mktemp("coco128")
    with tarfile.open(mirror / "coco128" / "coco128.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "coco128"
