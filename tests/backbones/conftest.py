"""Parametrise every ``BackboneTester`` test that takes ``name`` over its class's backbone names
(each test here runs seeded on one thread: ``tests/conftest.py::_seed_and_one_thread``)."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if cls is None or "name" not in metafunc.fixturenames or not hasattr(cls, "backbone_names"):
        return
    slow = set(cls.slow_names)
    params = [pytest.param(n, id=n, marks=[pytest.mark.slow] if n in slow else []) for n in cls.backbone_names()]
    metafunc.parametrize("name", params)

