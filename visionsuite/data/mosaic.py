"""Mosaic and random affine for detection batches, on the tensor path (YOLOv4-v8's augmentation).

Both run on the device after the batch transfer, like :mod:`visionsuite.data.augment`, with
tensor ops only (no loop over the images), and move every box with its pixels:

* :func:`mosaic`: with probability ``p`` an image is replaced by a mosaic of four images of the
  batch (itself and three drawn at random) around a random centre: the top-left quadrant shows
  the bottom-right of the first image, the top-right quadrant the bottom-left of the second, and
  so on, at full scale (YOLO's 2x2 canvas, cropped back to the image size about its centre).
  Boxes are shifted with their image, clipped to its quadrant, and dropped when less than
  ``min_visible`` of their area is left (a sliver of an object is not that object);
* :func:`random_affine`: a zoom, a shift and optionally a rotation about the image centre per
  image; a box becomes the bounding box of its moved quadrilateral's part inside the image (with
  a rotation, looser than the object: the box of the rotated box), dropped when that is less
  than ``min_visible`` of the moved box's bounding box.

:class:`MosaicAffineOptions` gives the detection data modules their options (all off by default).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import BBOX_LABEL, BBOX_XYXY, IMAGE, MASK, Batch
from .errors import InvalidDatasetError

#: a box survives a transform when at least this fraction of its (moved) area is left in the image.
MIN_VISIBLE = 0.25


def _ragged(boxes: list[Tensor], labels: list[Tensor], device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat boxes [M, 4], labels [M], each box's image [M], and per-image start offsets [N]."""
    counts = torch.tensor([len(b) for b in boxes], device=device, dtype=torch.long)
    flat = torch.cat([b.to(device) for b in boxes]) if boxes else torch.zeros(0, 4, device=device)
    flat_labels = torch.cat([x.to(device) for x in labels]) if labels else torch.zeros(0, dtype=torch.long, device=device)
    owner = torch.repeat_interleave(torch.arange(len(boxes), device=device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return flat.reshape(-1, 4), flat_labels, owner, starts


def _split(boxes: Tensor, labels: Tensor, owner: Tensor, n: int) -> tuple[list[Tensor], list[Tensor]]:
    """Flat boxes sorted by ``owner`` back into per-image lists (``owner`` must be non-decreasing)."""
    counts = torch.bincount(owner, minlength=n).tolist()
    return list(boxes.split(counts)), list(labels.split(counts))


def _clip_and_keep(moved: Tensor, rects: Tensor, full_area: Tensor, min_visible: float) -> tuple[Tensor, Tensor]:
    """Clip xyxy ``moved`` to per-box ``rects`` (xyxy) and keep those with at least ``min_visible``
    of ``full_area`` left, and at least a pixel wide and high."""
    lo, hi = rects[:, :2].repeat(1, 2), rects[:, 2:].repeat(1, 2)
    clipped = torch.minimum(torch.maximum(moved, lo), hi)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= 1) & (h >= 1) & (w * h >= min_visible * full_area)
    return clipped, keep


def mosaic(batch: Batch, p: float, generator: torch.Generator | None = None, min_visible: float = MIN_VISIBLE) -> Batch:
    """Each image, with probability ``p``, replaced by a four-image mosaic of the batch (module docstring).

    The centre is drawn uniformly in the middle half of the image, so each quadrant is at least a
    quarter of the image wide and high. Images left alone keep their pixels and boxes exactly.
    """
    images = batch[IMAGE]
    n, _, h, w = images.shape
    if p <= 0 or n == 0:
        return dict(batch)
    device = images.device
    chosen = torch.rand(n, device=device, generator=generator) < p
    others = torch.randint(0, n, (n, 3), device=device, generator=generator)
    cx = torch.randint(w // 4, w - w // 4 + 1, (n,), device=device, generator=generator)
    cy = torch.randint(h // 4, h - h // 4 + 1, (n,), device=device, generator=generator)
    own = torch.arange(n, device=device)[:, None]
    src = torch.where(chosen[:, None], torch.cat([own, others], dim=1), own)  # quadrants TL, TR, BL, BR
    zero = torch.zeros_like(cx)
    return compose_mosaic(batch, src, torch.where(chosen, cx, zero), torch.where(chosen, cy, zero), min_visible)


def compose_mosaic(batch: Batch, src: Tensor, cx: Tensor, cy: Tensor, min_visible: float = MIN_VISIBLE) -> Batch:
    """Output ``i``: around the centre (``cx[i]``, ``cy[i]``), the quadrants top-left, top-right,
    bottom-left, bottom-right show images ``src[i, 0..3]`` of the batch, each placed with its corner
    opposite the quadrant at the centre (so the top-left quadrant shows the bottom-right of its image).
    A centre (0, 0) with ``src[i, 3] == i`` leaves image ``i`` as it is."""
    images = batch[IMAGE]
    n, c, h, w = images.shape
    if MASK in batch:
        raise InvalidDatasetError("mosaic is implemented for detection batches (boxes), not for masks")
    device = images.device
    # every output pixel's source image and position: one gather
    ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
    below, right = ys[None, :] >= cy[:, None], xs[None, :] >= cx[:, None]  # [N, H], [N, W]
    quadrant = below[:, :, None].long() * 2 + right[:, None, :].long()  # [N, H, W]
    row = ys[None, :] - cy[:, None] + torch.where(below, 0, h)  # [N, H]
    col = xs[None, :] - cx[:, None] + torch.where(right, 0, w)  # [N, W]
    image_of = src.gather(1, quadrant.flatten(1)).view(n, h, w)
    flat_index = (image_of * h + row[:, :, None]) * w + col[:, None, :]
    pixels = images.permute(0, 2, 3, 1).reshape(n * h * w, c)[flat_index.flatten()]
    out = dict(batch)
    out[IMAGE] = pixels.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()
    if BBOX_XYXY in batch:
        out[BBOX_XYXY], out[BBOX_LABEL] = _mosaic_boxes(batch[BBOX_XYXY], batch[BBOX_LABEL], src, cx, cy, (h, w), min_visible)
    return out


def _mosaic_boxes(
    boxes: list[Tensor], labels: list[Tensor], src: Tensor, cx: Tensor, cy: Tensor, size: tuple[int, int],
    min_visible: float,
) -> tuple[list[Tensor], list[Tensor]]:  # fmt: skip
    """The boxes of each output's four sources, shifted into their quadrant, clipped, filtered."""
    n, (h, w) = len(boxes), size
    device = src.device
    flat, flat_labels, _, starts = _ragged(boxes, labels, device)
    counts = torch.tensor([len(b) for b in boxes], device=device, dtype=torch.long)
    pair_src = src.flatten()  # [4N]: output i, quadrant q → source image
    pair_counts = counts[pair_src]
    pair = torch.repeat_interleave(torch.arange(4 * n, device=device), pair_counts)  # per gathered box
    local = torch.arange(len(pair), device=device) - (torch.cumsum(pair_counts, 0) - pair_counts)[pair]
    picked = flat[starts[pair_src][pair] + local]
    out_img, q = pair // 4, pair % 4
    x0, y0 = cx[out_img], cy[out_img]
    left, top = (q % 2 == 0), (q < 2)
    dx = torch.where(left, x0 - w, x0).to(flat.dtype)  # TL/BL: the source's right edge at the centre
    dy = torch.where(top, y0 - h, y0).to(flat.dtype)
    moved = picked + torch.stack([dx, dy, dx, dy], dim=1)
    zero = torch.zeros_like(x0)
    rects = torch.stack([
        torch.where(left, zero, x0), torch.where(top, zero, y0),
        torch.where(left, x0, torch.full_like(x0, w)), torch.where(top, y0, torch.full_like(y0, h)),
    ], dim=1).to(flat.dtype)  # fmt: skip
    area = (picked[:, 2] - picked[:, 0]) * (picked[:, 3] - picked[:, 1])
    clipped, keep = _clip_and_keep(moved, rects, area, min_visible)
    return _split(clipped[keep], flat_labels[starts[pair_src][pair] + local][keep], out_img[keep], n)


def affine_matrices(
    n: int, size: tuple[int, int], scale: tuple[float, float] | None, translate: float, degrees: float,
    device: torch.device, generator: torch.Generator | None = None,
) -> Tensor:  # fmt: skip
    """Per-image forward maps [N, 2, 3] in pixels: ``out = s R(theta) (in - c) + c + t`` (``c`` the
    image centre, ``s`` uniform in ``scale``, ``theta`` in ``±degrees``, ``t`` in ``±translate`` x size)."""
    h, w = size
    u = torch.rand(n, 4, device=device, generator=generator)
    lo, hi = scale if scale is not None else (1.0, 1.0)
    s = lo + (hi - lo) * u[:, 0]
    theta = math.radians(degrees) * (2 * u[:, 1] - 1)
    tx, ty = translate * w * (2 * u[:, 2] - 1), translate * h * (2 * u[:, 3] - 1)
    cos, sin = s * torch.cos(theta), s * torch.sin(theta)
    cx, cy = w / 2, h / 2
    m = torch.stack([
        torch.stack([cos, -sin, cx - cos * cx + sin * cy + tx], dim=1),
        torch.stack([sin, cos, cy - sin * cx - cos * cy + ty], dim=1),
    ], dim=1)  # fmt: skip
    return m


def warp_images(images: Tensor, forward: Tensor, fill: Tensor | float = 0.0) -> Tensor:
    """``images`` [N, C, H, W] moved by the pixel maps ``forward`` [N, 2, 3] (bilinear; outside = ``fill``,
    a float or per-channel [C] value)."""
    n, c, h, w = images.shape
    full = torch.cat([forward, torch.tensor([0.0, 0.0, 1.0], device=images.device).expand(n, 1, 3)], dim=1)
    inverse = torch.linalg.inv(full)  # output pixel → input pixel
    # normalised (align_corners=False) ↔ pixel edges: x_pix = (x_norm + 1) * W / 2
    to_pix = torch.tensor([[w / 2, 0, w / 2], [0, h / 2, h / 2], [0, 0, 1]], device=images.device)
    to_norm = torch.linalg.inv(to_pix)
    theta = (to_norm @ inverse @ to_pix)[:, :2]
    grid = F.affine_grid(theta.to(images.dtype), [n, c, h, w], align_corners=False)
    fill_t = torch.as_tensor(fill, device=images.device, dtype=images.dtype).reshape(1, -1, 1, 1)
    return F.grid_sample(images - fill_t, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill_t


def visible_extent(corners: Tensor, size: tuple[int, int], eps: float = 1e-4) -> tuple[Tensor, Tensor]:
    """The bounding box [M, 4] of the part of each convex quadrilateral ``corners`` [M, 4, 2] (in
    order around it) inside the image, and whether any part is [M]. Exact, not the clipped bounding
    box of the corners (which, for a rotated box cut by the border, keeps a corner that lies outside):
    the extremes of a convex polygon cut by a rectangle lie among its corners inside the image, the
    image corners inside it, and the crossings of its sides with the image's sides."""
    h, w = size
    m = len(corners)
    p, q = corners, corners.roll(-1, dims=1)  # sides p → q, [M, 4, 2]
    candidates, valid = [p], [_in_image(p, size, eps)]
    for axis, limit in ((0, 0.0), (0, float(w)), (1, 0.0), (1, float(h))):  # crossings with x = 0, W, y = 0, H
        d = q[..., axis] - p[..., axis]
        t = (limit - p[..., axis]) / torch.where(d.abs() > eps, d, torch.ones_like(d))
        point = p + t[..., None] * (q - p)
        point[..., axis] = limit
        candidates.append(point)
        valid.append((d.abs() > eps) & (t >= -eps) & (t <= 1 + eps) & _in_image(point, size, eps))
    image_corners = torch.tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]], dtype=corners.dtype, device=corners.device)
    cross = (q - p)[:, None, :, 0] * (image_corners[None, :, None, 1] - p[:, None, :, 1]) - (q - p)[:, None, :, 1] * (
        image_corners[None, :, None, 0] - p[:, None, :, 0]
    )  # [M, 4 image corners, 4 sides]
    inside = (cross >= -eps).all(-1) | (cross <= eps).all(-1)
    candidates.append(image_corners.expand(m, 4, 2))
    valid.append(inside)
    points, ok = torch.cat(candidates, dim=1), torch.cat(valid, dim=1)  # [M, 24, 2], [M, 24]
    big = torch.finfo(corners.dtype).max
    lo = torch.where(ok[..., None], points, torch.full_like(points, big)).amin(dim=1)
    hi = torch.where(ok[..., None], points, torch.full_like(points, -big)).amax(dim=1)
    box = torch.cat([lo, hi], dim=1)
    return torch.where(ok.any(1, keepdim=True), box, torch.zeros_like(box)), ok.any(1)


def _in_image(points: Tensor, size: tuple[int, int], eps: float) -> Tensor:
    h, w = size
    x, y = points[..., 0], points[..., 1]
    return (x >= -eps) & (x <= w + eps) & (y >= -eps) & (y <= h + eps)


def warp_boxes(
    boxes: list[Tensor], labels: list[Tensor], forward: Tensor, size: tuple[int, int], min_visible: float = MIN_VISIBLE
) -> tuple[list[Tensor], list[Tensor]]:
    """Each image's boxes under its map: the bounding box of the moved box's part inside the image
    (:func:`visible_extent`), kept when that is at least ``min_visible`` of the moved box's bounding box."""
    n, (h, w) = len(boxes), size
    device = forward.device
    flat, flat_labels, owner, _ = _ragged(boxes, labels, device)
    x1, y1, x2, y2 = flat.unbind(1)
    corners = torch.stack([torch.stack([x1, y1]), torch.stack([x2, y1]), torch.stack([x2, y2]), torch.stack([x1, y2])])
    corners = corners.permute(2, 0, 1)  # [M, 4 corners in order around the box, (x, y)]
    m = forward[owner].to(flat.dtype)  # [M, 2, 3]
    moved = corners @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
    whole = torch.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=1)
    area = (whole[:, 2] - whole[:, 0]) * (whole[:, 3] - whole[:, 1])
    seen, _ = visible_extent(moved, size)
    rects = torch.tensor([0.0, 0.0, w, h], device=device, dtype=flat.dtype).expand(len(seen), 4)
    clipped, keep = _clip_and_keep(seen, rects, area, min_visible)
    return _split(clipped[keep], flat_labels[keep], owner[keep], n)


def random_affine(
    batch: Batch, scale: tuple[float, float] | None = None, translate: float = 0.0, degrees: float = 0.0,
    fill: Tensor | float = 0.0, generator: torch.Generator | None = None, min_visible: float = MIN_VISIBLE,
) -> Batch:  # fmt: skip
    """Every image zoomed, shifted and rotated about its centre (:func:`affine_matrices`), its boxes alike."""
    images = batch[IMAGE]
    n, _, h, w = images.shape
    if MASK in batch:
        raise InvalidDatasetError("random affine is implemented for detection batches (boxes), not for masks")
    forward = affine_matrices(n, (h, w), scale, translate, degrees, images.device, generator)
    out = dict(batch)
    out[IMAGE] = warp_images(images, forward, fill)
    if BBOX_XYXY in batch:
        out[BBOX_XYXY], out[BBOX_LABEL] = warp_boxes(batch[BBOX_XYXY], batch[BBOX_LABEL], forward, (h, w), min_visible)
    return out


class MosaicAffineOptions:
    """The detection data modules' ``mosaic`` and ``affine_*`` options, applied to training batches
    after the other augmentation and the normalisation (so the affine fills with black, in
    normalised units). All off by default: nothing changes for configs that do not set them."""

    def __init__(
        self, mosaic: float = 0.0, affine_scale: tuple[float, float] | None = None, affine_translate: float = 0.0,
        affine_degrees: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        """
        Args:
            mosaic: probability that a training image becomes a mosaic of four batch images (YOLO: 1.0).
            affine_scale: zoom range of the random affine, e.g. ``[0.5, 1.5]`` (YOLOv8's); ``None``: none.
            affine_translate: largest shift, as a fraction of the image size (YOLOv8: 0.1).
            affine_degrees: largest rotation in degrees (YOLOv8: 0); boxes become the bounding box
                of their rotated corners.
            **kwargs: every option of the data module.
        """
        super().__init__(**kwargs)
        if not 0.0 <= float(mosaic) <= 1.0:
            raise InvalidDatasetError(f"mosaic is a probability in [0, 1], got {mosaic}")
        if affine_scale is not None and (len(affine_scale) != 2 or not 0 < affine_scale[0] <= affine_scale[1]):
            raise InvalidDatasetError(f"affine_scale must be [low, high] with 0 < low <= high, got {affine_scale}")
        if not 0.0 <= float(affine_translate) < 1.0 or not 0.0 <= float(affine_degrees) <= 180.0:
            raise InvalidDatasetError(
                f"affine_translate must be in [0, 1) and affine_degrees in [0, 180], got {affine_translate}, {affine_degrees}"
            )
        self.mosaic_p = float(mosaic)
        self.affine_scale = tuple(affine_scale) if affine_scale is not None else None
        self.affine_translate, self.affine_degrees = float(affine_translate), float(affine_degrees)

    @property
    def affine_on(self) -> bool:
        return (self.affine_scale not in (None, (1.0, 1.0))) or self.affine_translate > 0 or self.affine_degrees > 0

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        out = super().transform_batch(batch, train)  # type: ignore[misc]
        if not (train and self.augment):  # type: ignore[attr-defined]
            return out
        if self.mosaic_p > 0:
            out = mosaic(out, self.mosaic_p)
        if self.affine_on:
            out = random_affine(out, self.affine_scale, self.affine_translate, self.affine_degrees, fill=self._black())
        return out

    def _black(self) -> Tensor | float:
        """A black pixel in the batch's units (normalised when the data module normalises)."""
        if not self.normalize:  # type: ignore[attr-defined]
            return 0.0
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)  # type: ignore[attr-defined]
        return -mean / std

    def augmentation_summary(self) -> str:
        line = super().augmentation_summary()  # type: ignore[misc]
        extra = []
        if self.augment and self.mosaic_p > 0:  # type: ignore[attr-defined]
            extra.append(f"mosaic p={self.mosaic_p:g}")
        if self.augment and self.affine_on:  # type: ignore[attr-defined]
            lo, hi = self.affine_scale or (1.0, 1.0)
            extra.append(f"affine scale {lo:g}-{hi:g} shift {self.affine_translate:g} rot {self.affine_degrees:g}°")
        if not extra:
            return line
        head, rest = line.split(": ", 1)
        ops, norm = rest.split("; ", 1)
        joined = ", ".join(extra) if ops == "none" else f"{ops}, {', '.join(extra)}"
        return f"{head}: {joined}; {norm}"
