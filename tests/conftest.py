"""Shared fixtures. Decoded datasets are cached in the repo's git-ignored ``data/`` folder, so
only the first test run pays for decoding (CIFAR-10: ~17 s on an idle 2-core machine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from visionsuite.data.sources import mirror_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The checkout's ``data/`` folder (git-ignored), reused between test runs."""
    root = Path(__file__).resolve().parents[1] / "data"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline dataset mirror; tests needing real data skip without it (and fail under CI,
    where the mirror is always laid beside the checkout, so a skip there would hide a failure)."""
    root = mirror_root()
    if root is None:
        message = "no dataset mirror (set VISIONSUITE_MIRROR or provide ../shared/datasets)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def cifar_tree(data_root: Path, mirror: Path) -> Path:
    """The extracted CIFAR-10 JPEG tree ``data/cifar10/cifar10-jpeg/{train,test}/<class>/``."""
    from visionsuite.data import CIFAR10DataModule

    kind, folder = CIFAR10DataModule(data_dir=str(data_root)).fetch()
    assert kind == "jpeg"
    return folder


@pytest.fixture(autouse=True)
def _restore_determinism() -> Iterator[None]:
    """``Trainer(deterministic=True)`` turns on ``torch.use_deterministic_algorithms`` for the whole
    process and leaves it on; a later test of an op without a deterministic kernel (SegNet's
    max-unpooling) would then fail only because of the test order."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
