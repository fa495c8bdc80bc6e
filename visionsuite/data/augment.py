"""Batched, device-agnostic image ops for ``[N, C, H, W]`` tensors.

They run in the DataModule's ``on_after_batch_transfer``, i.e. on the GPU when training on one,
so they use only tensor ops (no numpy, no PIL, no Python loop over the batch). The random
choices are drawn once per image (:func:`draw`) and then applied to every part of the batch
(:func:`augment_batch`): image, mask and boxes move together. Pass a ``torch.Generator`` (on
the batch's device) for reproducible draws.

Why our own ops and not kornia's ``AugmentationSequential``: measured on this project's CPU,
see ``benchmarks/results/augment.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import BBOX_LABEL, BBOX_XYXY, IMAGE, MASK, Batch
from .geometry import affine_boxes, mirror_boxes

#: what a shifted (``crop_padding``) image shows at its border: zeros (black) or its mirrored edge.
PadMode = Literal["zeros", "reflect"]


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] → float32 [0, 1]; floating inputs are returned unchanged."""
    return images if images.is_floating_point() else images.float().div_(255.0)


def shift_crop(images: Tensor, padding: int, offsets: Tensor, fill: float = 0.0, mode: PadMode = "zeros") -> Tensor:
    """Pad by ``padding`` (with ``fill``, or ``mode`` reflect: the mirrored border pixels, as
    airbench pads) on each side, then crop back to (H, W) at per-image ``offsets``.

    ``offsets`` is int [N, 2] of (top, left) in ``[0, 2 * padding]``; (p, p) is the identity.
    Implemented as two ``gather`` ops, so it stays one kernel each on any device.
    """
    if padding == 0:
        return images
    n, c, h, w = images.shape
    pad = (padding, padding, padding, padding)
    padded = F.pad(images, pad, mode="reflect") if mode == "reflect" else F.pad(images, pad, value=fill)
    offsets = offsets.to(device=images.device, dtype=torch.int64)
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [N, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [N, W]
    padded = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return padded.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def alternating_flips(rows: Tensor, epoch: int, seed: int) -> Tensor:
    """Which images (by cache row) are mirrored in ``epoch``: a fixed random half (a hash of the
    row and ``seed``) in even epochs, its complement in odd ones (airbench's alternating flip).

    A function of (row, epoch, seed) alone, so a resumed run flips as the uninterrupted one did.
    """
    x = rows.to(torch.int64) * 0x9E3779B1 + (int(seed) % 2**31) * 0x85EBCA77 + 1  # multiply-xorshift hash
    x = (x ^ (x >> 15)) * 0x2C1B3C6D
    x = (x ^ (x >> 12)) * 0x297A2D39
    first_half = ((x ^ (x >> 15)) >> 7) & 1 == 1
    return first_half ^ (epoch % 2 == 1)


@dataclass
class Draws:
    """The random choices for one batch, made once per image and applied to every part of it.

    ``offsets`` int [B, 2]: (top, left) crop offset into the image padded by ``padding``
    ((p, p) = no shift); ``flip`` bool [B]: mirror left-right; ``scale`` float [B]: zoom about
    the image centre (> 1 enlarges). ``None`` = that op is off.
    """

    padding: int = 0
    offsets: Tensor | None = None
    pad_mode: PadMode = "zeros"
    flip: Tensor | None = None
    scale: Tensor | None = None


def draw(
    batch_size: int,
    device: torch.device | str,
    padding: int = 0,
    flip_p: float = 0.0,
    scale_range: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    pad_mode: PadMode = "zeros",
) -> Draws:
    """Draw crop offsets, then flips, then scales for ``batch_size`` images (in that order);
    ``pad_mode``: what a shifted image shows at its border (masks always get ``ignore_index``)."""
    d = Draws(padding=max(padding, 0), pad_mode=pad_mode)
    if d.padding > 0:
        d.offsets = torch.randint(0, 2 * d.padding + 1, (batch_size, 2), device=device, generator=generator)
    if flip_p > 0:
        d.flip = torch.rand(batch_size, device=device, generator=generator) < flip_p
    if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
        lo, hi = scale_range
        d.scale = torch.empty(batch_size, device=device).uniform_(lo, hi, generator=generator)
    return d


def _zoom_grid(d: Draws, n: int, h: int, w: int, device: torch.device) -> Tensor:
    """Sampling grid of ``out = s * (in - centre) + centre + t`` (t = the crop shift), per image."""
    assert d.scale is not None
    s = d.scale.to(device=device, dtype=torch.float32)
    t = _shift(d, n, device).float()  # (ty, tx) in pixels
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = -2 * t[:, 1] / (w * s)
    theta[:, 1, 2] = -2 * t[:, 0] / (h * s)
    return F.affine_grid(theta, [n, 1, h, w], align_corners=False)


def _shift(d: Draws, n: int, device: torch.device) -> Tensor:
    """Per-image translation (ty, tx) in pixels that the crop offsets amount to."""
    if d.offsets is None:
        return torch.zeros(n, 2, device=device, dtype=torch.int64)
    return d.padding - d.offsets.to(device)


def _move_images(x: Tensor, d: Draws, grid: Tensor | None, fill: float, nearest: bool = False) -> Tensor:
    if grid is not None:
        if nearest:  # sample value + 1 with zero padding: 0 marks "outside the image" → fill
            out = F.grid_sample(x.float() + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False)
            x = torch.where(out == 0, torch.full_like(out, fill), out - 1).to(x.dtype)
        else:
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif d.offsets is not None:
        x = shift_crop(x, d.padding, d.offsets, fill=fill, mode="zeros" if nearest else d.pad_mode)
    if d.flip is not None:
        x = torch.where(d.flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    return x


def _map_ragged_boxes(boxes: list[Tensor], labels: list[Tensor], scale: Tensor, offset: Tensor,
                      size: tuple[int, int], flip: Tensor | None = None):  # fmt: skip
    """A per-image map of ragged boxes, ``box * scale + offset`` (``scale``, ``offset``: [N, 2],
    (y, x)), clipped to ``size``, then mirrored where ``flip``: one flat tensor, one affine, one
    split. Boxes left without area are dropped with their labels."""
    n, w = len(boxes), size[1]
    flat, flat_labels = torch.cat(boxes), torch.cat(labels)
    device = flat.device
    owner = torch.repeat_interleave(torch.arange(n, device=device), torch.tensor([len(b) for b in boxes], device=device))
    moved, keep = affine_boxes(flat, scale.to(device, flat.dtype)[owner], offset.to(device, flat.dtype)[owner], size, min_size=1.0)
    owner = owner[keep]
    if flip is not None:
        f = flip.to(device)[owner, None]
        moved = torch.where(f, mirror_boxes(moved, w), moved)
    counts = torch.bincount(owner, minlength=n).tolist()
    return list(moved.split(counts)), list(flat_labels[keep].split(counts))


def _move_boxes(boxes: list[Tensor], labels: list[Tensor], d: Draws, size: tuple[int, int]):
    """The draws' zoom about the centre, shift and flip, for ragged boxes."""
    n, (h, w) = len(boxes), size
    if n == 0:
        return boxes, labels
    device, dtype = boxes[0].device, boxes[0].dtype
    s = d.scale.to(device) if d.scale is not None else torch.ones(n, device=device)
    scale = s[:, None].expand(-1, 2).to(dtype)
    centre = torch.tensor([h / 2, w / 2], device=device, dtype=dtype)
    offset = centre * (1 - scale) + _shift(d, n, device).to(dtype)
    return _map_ragged_boxes(boxes, labels, scale, offset, size, d.flip)


def augment_batch(batch: Batch, d: Draws, ignore_index: int = 255) -> Batch:
    """Apply the draws ``d`` to every part of ``batch``: image (bilinear, padded with 0), mask
    (nearest, padded with ``ignore_index``, never 0: 0 is a real class in CamVid), boxes
    (shifted, zoomed, flipped, clipped; boxes left without area are dropped with their labels).
    """
    out = dict(batch)
    images = batch[IMAGE]
    n, _, h, w = images.shape
    grid = _zoom_grid(d, n, h, w, images.device) if d.scale is not None else None
    out[IMAGE] = _move_images(images, d, grid, 0.0)
    if MASK in batch:
        out[MASK] = _move_images(batch[MASK][:, None], d, grid, float(ignore_index), nearest=True)[:, 0]
    if BBOX_XYXY in batch:
        out[BBOX_XYXY], out[BBOX_LABEL] = _move_boxes(batch[BBOX_XYXY], batch[BBOX_LABEL], d, (h, w))
    return out


def random_window(batch: Batch, size: tuple[int, int], generator: torch.Generator | None = None) -> Batch:
    """A random ``size`` (H, W) window of every image, at one position per image, with its mask
    and boxes (shifted, clipped; boxes left without area dropped with their labels).

    Training on windows of full-resolution images keeps their detail (thin poles, distant signs)
    at the cost of the window's pixels, where downscaling the whole image would lose it; the
    model then evaluates on whole images, as fully convolutional models can. A window larger
    than the images is an error naming both sizes.
    """
    images = batch[IMAGE]
    n, c, height, width = images.shape
    h, w = size
    if h > height or w > width:
        raise ValueError(f"train window {h}x{w} is larger than the images ({height}x{width})")
    out = dict(batch)
    if (h, w) == (height, width):
        return out
    device = images.device
    top = torch.randint(0, height - h + 1, (n,), device=device, generator=generator)
    left = torch.randint(0, width - w + 1, (n,), device=device, generator=generator)
    rows = top[:, None] + torch.arange(h, device=device)  # [N, h]
    cols = left[:, None] + torch.arange(w, device=device)  # [N, w]

    def cut(x: Tensor) -> Tensor:
        k = x.shape[1]
        x = x.gather(2, rows[:, None, :, None].expand(n, k, h, width))
        return x.gather(3, cols[:, None, None, :].expand(n, k, h, w))

    out[IMAGE] = cut(images)
    if MASK in batch:
        out[MASK] = cut(batch[MASK][:, None])[:, 0]
    if BBOX_XYXY in batch and len(batch[BBOX_XYXY]):
        offset = -torch.stack([top, left], dim=1)  # (y, x)
        out[BBOX_XYXY], out[BBOX_LABEL] = _map_ragged_boxes(
            batch[BBOX_XYXY], batch[BBOX_LABEL], torch.ones_like(offset), offset, (h, w)
        )
    return out


def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of float ``images`` to ``size`` (antialiased when shrinking, as PIL does)."""
    shrink = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(images - mean) / std`` per channel; ``images`` must be floating point."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s
