"""Batched, device-agnostic image ops for ``[N, C, H, W]`` tensors.

They run in the DataModule's ``on_after_batch_transfer``, i.e. on the GPU when training on one,
so they use only tensor ops (no numpy, no PIL, no Python loop over the batch). Every image gets
its own random crop offset / flip decision. Pass a ``torch.Generator`` (on the batch's device)
for reproducible draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] → float32 [0, 1]; floating inputs are returned unchanged."""
    return images if images.is_floating_point() else images.float().div_(255.0)


def shift_crop(images: Tensor, padding: int, offsets: Tensor) -> Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to (H, W) at per-image ``offsets``.

    ``offsets`` is int [N, 2] of (top, left) in ``[0, 2 * padding]``; (p, p) is the identity.
    Implemented as two ``gather`` ops, so it stays one kernel each on any device.
    """
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = offsets.to(device=images.device, dtype=torch.int64)
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [N, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [N, W]
    padded = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return padded.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Random crop with zero padding (the CIFAR recipe): each image shifted by up to ``padding``."""
    if padding <= 0:
        return images
    offsets = torch.randint(
        0, 2 * padding + 1, (images.shape[0], 2), device=images.device, generator=generator
    )
    return shift_crop(images, padding, offsets)


def random_hflip(images: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(images - mean) / std`` per channel; ``images`` must be floating point."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s
