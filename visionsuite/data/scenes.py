"""Fashion-MNIST scenes: a detection set with real image content that a CPU learns in minutes.

Items (uint8 28x28 Fashion-MNIST images) are pasted onto black canvases, several per scene,
at random positions and (optionally) random sizes. A box is the item's *tight* extent — the
pixels above ``threshold`` — not its 28x28 cell, so a detector is graded on the object, not on
the empty margin around it. Everything is drawn from one seeded generator: the same arguments
give the same scenes, byte for byte.

The output is the ragged layout of the detection cache: images ``[N, 1, H, W]`` uint8, all
boxes ``[M, 4]`` float32 xyxy pixels and labels ``[M]`` int64 concatenated, and ``offsets``
``[N + 1]`` such that scene ``i`` owns rows ``offsets[i]:offsets[i + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: how often a non-overlapping position is drawn for one item before it is left out (and counted).
MAX_TRIES = 100


@dataclass
class SceneSet:
    """Scenes in the cache's ragged layout (see the module docstring)."""

    images: Tensor
    boxes: Tensor
    labels: Tensor
    offsets: Tensor
    #: items left out: no free position in :data:`MAX_TRIES` draws, or no pixel above the threshold.
    dropped: int = 0

    def targets(self, i: int) -> tuple[Tensor, Tensor]:
        """Boxes and labels of scene ``i``."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.boxes[lo:hi], self.labels[lo:hi]


def tight_extents(items: Tensor, threshold: int) -> Tensor:
    """xyxy extents (pixel edges) of the pixels ``> threshold`` of each item ``[K, h, w]``.

    Vectorised over items: the first and last row/column holding such a pixel. An item with
    none gets the empty box ``[0, 0, 0, 0]``.
    """
    mask = items > threshold
    rows, cols = mask.any(dim=2), mask.any(dim=1)  # [K, h], [K, w]
    h, w = rows.shape[1], cols.shape[1]
    y1 = rows.to(torch.uint8).argmax(dim=1)
    y2 = h - rows.flip(1).to(torch.uint8).argmax(dim=1)
    x1 = cols.to(torch.uint8).argmax(dim=1)
    x2 = w - cols.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[~rows.any(dim=1)] = 0.0
    return boxes


def _resized(items: Tensor, sizes: np.ndarray) -> list[Tensor]:
    """Each item ``[h, w]`` uint8 resized to its square size (antialiased), grouped by size."""
    out: list[Tensor] = [items[i] for i in range(len(items))]
    native = items.shape[-1]
    for size in np.unique(sizes):
        if size == native:
            continue
        idx = np.flatnonzero(sizes == size)
        scaled = F.interpolate(items[idx].unsqueeze(1).float(), size=(int(size), int(size)), mode="bilinear", antialias=True)
        scaled = scaled.round().clamp(0, 255).to(torch.uint8).squeeze(1)
        for j, i in enumerate(idx):
            out[i] = scaled[j]
    return out


def make_scenes(
    items: Tensor,
    item_labels: Tensor,
    num_scenes: int,
    *,
    canvas_size: tuple[int, int] = (96, 96),
    items_per_image: tuple[int, int] = (1, 4),
    scale_range: tuple[int, int] = (28, 28),
    non_overlapping: bool = True,
    threshold: int = 10,
    seed: int = 0,
) -> SceneSet:
    """Composite ``num_scenes`` scenes from ``items`` (uint8 ``[K, 1, 28, 28]`` or ``[K, 28, 28]``).

    ``items_per_image`` and ``scale_range`` (side of the pasted item in pixels) are inclusive
    ranges. With ``non_overlapping`` the pasted *cells* never overlap, so neither do the boxes;
    otherwise items are blended with a pixel-wise maximum. Use training items for training
    scenes and test items for test scenes: the scenes inherit the split.
    """
    if items.dtype != torch.uint8:
        raise ValueError(f"items must be uint8, got {items.dtype}")
    items = items.reshape(items.shape[0], items.shape[-2], items.shape[-1])
    (ch, cw), (lo_n, hi_n), (lo_s, hi_s) = canvas_size, items_per_image, scale_range
    if not (1 <= lo_s <= hi_s <= min(ch, cw)) or not (0 <= lo_n <= hi_n):
        raise ValueError(f"bad scene ranges: scale {scale_range} on canvas {canvas_size}, items {items_per_image}")
    rng = np.random.default_rng(seed)
    counts = rng.integers(lo_n, hi_n + 1, size=num_scenes)
    total = int(counts.sum())
    picks = rng.integers(0, len(items), size=total)
    sizes = rng.integers(lo_s, hi_s + 1, size=total)
    pasted = _resized(items[torch.from_numpy(picks)], sizes)
    # placement: cheap integer rejection sampling in Python (a few µs per item)
    canvas = torch.zeros(num_scenes, ch, cw, dtype=torch.uint8)
    keep = np.zeros(total, dtype=bool)
    origin = np.zeros((total, 2), dtype=np.int64)
    k = 0
    for n in range(num_scenes):
        placed: list[tuple[int, int, int]] = []
        for _ in range(counts[n]):
            s = int(sizes[k])
            for _try in range(MAX_TRIES):
                y, x = int(rng.integers(0, ch - s + 1)), int(rng.integers(0, cw - s + 1))
                if not non_overlapping or all(
                    x >= px + ps or px >= x + s or y >= py + ps or py >= y + s for py, px, ps in placed
                ):
                    break
            else:
                k += 1
                continue
            placed.append((y, x, s))
            region = canvas[n, y : y + s, x : x + s]
            torch.maximum(region, pasted[k], out=region)
            keep[k], origin[k] = True, (x, y)
            k += 1
    # boxes: the tight extent of each resized item, shifted to where it was pasted
    boxes = torch.zeros(total, 4)
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        boxes[idx] = tight_extents(torch.stack([pasted[i] for i in idx]), threshold)
    boxes += torch.from_numpy(origin).float().repeat(1, 2)
    keep &= (boxes[:, 2] > boxes[:, 0]).numpy()  # an item with no pixel above threshold has no box
    keep_t = torch.from_numpy(keep)
    scene_of = torch.from_numpy(np.repeat(np.arange(num_scenes), counts))
    per_scene = torch.bincount(scene_of[keep_t], minlength=num_scenes)
    offsets = torch.zeros(num_scenes + 1, dtype=torch.int64)
    offsets[1:] = per_scene.cumsum(0)
    return SceneSet(
        images=canvas.unsqueeze(1),
        boxes=boxes[keep_t].contiguous(),
        labels=item_labels[torch.from_numpy(picks)].to(torch.int64)[keep_t],
        offsets=offsets,
        dropped=int((counts.sum() - keep.sum())),
    )
