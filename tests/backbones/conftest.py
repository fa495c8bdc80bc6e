"""Parametrise every ``BackboneTester`` test that takes ``name`` over its class's backbone names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if cls is None or "name" not in metafunc.fixturenames or not hasattr(cls, "backbone_names"):
        return
    slow = set(cls.slow_names)
    params = [pytest.param(n, id=n, marks=[pytest.mark.slow] if n in slow else []) for n in cls.backbone_names()]
    metafunc.parametrize("name", params)


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Deterministic weights; one thread, since on a shared small CPU OpenMP spin-waits cost more
    than they save at these tiny input sizes."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
