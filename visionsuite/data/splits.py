"""Deterministic hold-out splits and subsets, as index tensors into a decoded split.

Indices (not copies) keep memory flat: a 40k/10k CIFAR-10 split is two small int64 tensors
over the one cached train tensor. The permutation comes from a private ``torch.Generator`` so
the split depends only on ``seed``, not on whatever else consumed the global RNG.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import InvalidDatasetError


def resolve_size(size: int | float, total: int, name: str) -> int:
    """A count from an absolute ``int`` or a fraction ``0 <= float < 1`` of ``total``."""
    if isinstance(size, bool) or size < 0:
        raise InvalidDatasetError(f"{name} must be a non-negative int or a fraction in [0, 1), got {size!r}")
    if isinstance(size, float) and not size.is_integer():
        if size >= 1:
            raise InvalidDatasetError(f"{name} as a fraction must be below 1, got {size}")
        return round(size * total)
    return int(size)


def holdout_split(total: int, sizes: list[int], seed: int) -> list[Tensor]:
    """Split ``range(total)`` at random into parts of ``sizes`` plus the remainder (last).

    Returns ``len(sizes) + 1`` disjoint index tensors, in the random permutation's order.
    """
    if sum(sizes) >= total:
        raise InvalidDatasetError(f"hold-out sizes {sizes} leave nothing of the {total} training images")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    parts, start = [], 0
    for size in sizes:
        parts.append(perm[start : start + size])
        start += size
    parts.append(perm[start:])
    return parts


def first_n(indices: Tensor, n: int | None) -> Tensor:
    """The first ``n`` indices (all when ``n`` is None or larger than the split)."""
    if n is None:
        return indices
    if n < 0:
        raise InvalidDatasetError(f"a subset size must be non-negative, got {n}")
    return indices[:n]
