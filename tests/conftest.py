"""Shared fixtures. Decoded datasets are cached in the repo's git-ignored ``data/`` folder, so
only the first test run pays for decoding (CIFAR-10: ~17 s on an idle 2-core machine)."""

from __future__ import annotations

import os
import tarfile
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


#: the test folders (and files) whose every test runs seeded on one thread (:func:`_seed_and_one_thread`).
SEEDED = ("backbones", "generative", "segmentation", "test_shipped_configs.py")


@pytest.fixture(autouse=True)
def _seed_and_one_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """In :data:`SEEDED`: ``torch.manual_seed(0)`` (deterministic weights) and one intra-op
    thread, since on a shared small CPU OpenMP spin-waits cost more than they save at these tiny
    sizes. The other tests keep torch's global state as they find it."""
    here, path = Path(__file__).parent, Path(request.node.path)
    if not path.is_relative_to(here) or path.relative_to(here).parts[0] not in SEEDED:
        yield
        return
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: CamVid test-split frames from three different drives (sky, road, cars, pedestrians, poles all present).
CAMVID_FRAMES = ("0001TP_008550", "0001TP_010320", "Seq05VD_f01710")


@pytest.fixture(scope="session")
def camvid_files(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """(image.jpg, mask.png) of :data:`CAMVID_FRAMES`, extracted from the mirror's tar (safe 'data' filter)."""
    out = tmp_path_factory.mktemp("camvid")
    wanted = {f"CamVid/{d}/{f}.{ext}" for f in CAMVID_FRAMES for d, ext in (("test", "jpg"), ("testannot", "png"))}
    with tarfile.open(mirror / "camvid" / "camvid.tar.gz") as tar:
        members = [m for m in tar if m.name in wanted]
        tar.extractall(out, members=members, filter="data")
    return [(out / f"CamVid/test/{f}.jpg", out / f"CamVid/testannot/{f}.png") for f in CAMVID_FRAMES]


@pytest.fixture(scope="session")
def tiny_camvid_root(camvid_files: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding a CamVid tree of the three frames as train, val and test (:mod:`tiny_camvid`)."""
    from tiny_camvid import make_tiny_camvid

    return make_tiny_camvid(tmp_path_factory.mktemp("tiny_camvid"), camvid_files)
