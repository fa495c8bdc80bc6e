"""Mosaic and random affine on the tensor path (:mod:`visionsuite.data.mosaic`): boxes stay on their
objects (white rectangles on black), boxes left outside or as slivers are dropped, and the detection
data modules apply them to training batches only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionsuite.data import FashionMNISTScenesDataModule
from visionsuite.data.batch import BBOX_LABEL, BBOX_XYXY, IMAGE
from visionsuite.data.dense import DenseTargetDataModule
from visionsuite.data.errors import InvalidDatasetError
from visionsuite.data.mosaic import (
    MIN_VISIBLE,
    compose_mosaic,
    mosaic,
    random_affine,
    visible_extent,
    warp_boxes,
    warp_images,
)

SIZE = 64


def _rect_batch(rects: list[tuple[int, int, int, int]]) -> dict:
    """One black 1-channel image per rect, the rect filled white, its box the rect, its label its index."""
    images = torch.zeros(len(rects), 1, SIZE, SIZE)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        images[i, 0, y1:y2, x1:x2] = 1.0
    boxes = [torch.tensor([r], dtype=torch.float32) for r in rects]
    return {IMAGE: images, BBOX_XYXY: boxes, BBOX_LABEL: [torch.tensor([i]) for i in range(len(rects))]}


def test_mosaic_of_known_placements_keeps_boxes_on_their_objects() -> None:
    """Centre (32, 32), sources 0, 1, 2, 3 in the TL, TR, BL, BR quadrants, each shifted so its corner
    opposite the quadrant sits at the centre: image 0's rect (40, 40, 60, 60) lands whole at
    (8, 8, 28, 28); image 1's (10, 10, 30, 30) at y -22..-2, fully outside: dropped; image 2's
    (20, 5, 44, 40) at (-12, 37, 12, 72), clipped to (0, 37, 12, 64), 324 of 840 px (39%) left:
    kept; image 3's (28, 2, 60, 20) at (60, 34, 92, 52), 72 of 576 px (12.5%) left: dropped as a
    sliver, though its pixels show. Images 1-3 (centre (0, 0)) are left exactly as they were."""
    batch = _rect_batch([(40, 40, 60, 60), (10, 10, 30, 30), (20, 5, 44, 40), (28, 2, 60, 20)])
    src = torch.tensor([[0, 1, 2, 3], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]])
    out = compose_mosaic(batch, src, torch.tensor([32, 0, 0, 0]), torch.tensor([32, 0, 0, 0]))
    expected = torch.zeros(SIZE, SIZE)
    expected[8:28, 8:28] = expected[37:64, 0:12] = expected[34:52, 60:64] = 1.0
    assert torch.equal(out[IMAGE][0, 0], expected)
    torch.testing.assert_close(out[BBOX_XYXY][0], torch.tensor([[8.0, 8.0, 28.0, 28.0], [0.0, 37.0, 12.0, 64.0]]))
    assert out[BBOX_LABEL][0].tolist() == [0, 2]
    assert torch.equal(out[IMAGE][1:], batch[IMAGE][1:])
    for i in (1, 2, 3):
        assert torch.equal(out[BBOX_XYXY][i], batch[BBOX_XYXY][i]) and out[BBOX_LABEL][i].tolist() == [i]


def _reference_mosaic_boxes(rects, src, cx, cy) -> list[list[tuple[float, ...]]]:
    """The expected (box, label) of each output, one rect and one quadrant at a time in plain Python."""
    out = []
    for i in range(len(src)):
        kept = []
        for q in range(4):
            x1, y1, x2, y2 = rects[src[i][q]]
            dx = cx[i] - SIZE if q in (0, 2) else cx[i]
            dy = cy[i] - SIZE if q in (0, 1) else cy[i]
            qx1, qx2 = (0, cx[i]) if q in (0, 2) else (cx[i], SIZE)
            qy1, qy2 = (0, cy[i]) if q in (0, 1) else (cy[i], SIZE)
            bx1, bx2 = min(max(x1 + dx, qx1), qx2), min(max(x2 + dx, qx1), qx2)
            by1, by2 = min(max(y1 + dy, qy1), qy2), min(max(y2 + dy, qy1), qy2)
            w, h = bx2 - bx1, by2 - by1
            if w >= 1 and h >= 1 and w * h >= MIN_VISIBLE * (x2 - x1) * (y2 - y1):
                kept.append((float(bx1), float(by1), float(bx2), float(by2), src[i][q]))
        out.append(kept)
    return out


def test_random_mosaic_boxes_are_exactly_the_visible_white_pieces() -> None:
    """Random rects, sources and centres: every box is all white inside and has no white pixel of its
    quadrant on the ring just outside it (the box is the object's visible piece, to the pixel), and
    the boxes are those a plain per-quadrant computation expects (slivers and outsiders dropped)."""
    g = torch.Generator().manual_seed(3)
    n = 8
    xy = torch.randint(0, 40, (n, 2), generator=g)
    wh = torch.randint(6, 24, (n, 2), generator=g)
    rects = [(int(x), int(y), int(x + w), int(y + h)) for (x, y), (w, h) in zip(xy.tolist(), wh.tolist())]
    rects = [(x1, y1, min(x2, SIZE), min(y2, SIZE)) for x1, y1, x2, y2 in rects]
    batch = _rect_batch(rects)
    src = torch.randint(0, n, (n, 4), generator=g)
    cx, cy = torch.randint(16, 49, (n,), generator=g), torch.randint(16, 49, (n,), generator=g)
    out = compose_mosaic(batch, src, cx, cy)
    expected = _reference_mosaic_boxes(rects, src.tolist(), cx.tolist(), cy.tolist())
    dropped = 0
    for i in range(n):
        got = [(*b, label) for b, label in zip(out[BBOX_XYXY][i].tolist(), out[BBOX_LABEL][i].tolist())]
        assert sorted(got) == sorted(expected[i])
        image = out[IMAGE][i, 0]
        for x1, y1, x2, y2 in (map(int, b[:4]) for b in got):
            assert image[y1:y2, x1:x2].min() == 1.0
            qx = (0, int(cx[i])) if x2 <= cx[i] else (int(cx[i]), SIZE)
            qy = (0, int(cy[i])) if y2 <= cy[i] else (int(cy[i]), SIZE)
            ring = torch.zeros(SIZE, SIZE, dtype=torch.bool)
            ring[max(y1 - 1, qy[0]) : min(y2 + 1, qy[1]), max(x1 - 1, qx[0]) : min(x2 + 1, qx[1])] = True
            ring[y1:y2, x1:x2] = False
            assert not (image[ring] > 0).any()
        dropped += 4 - len(got)
    assert dropped > 0, "the draw must leave some rect outside its quadrant or as a sliver"


def test_mosaic_probability_zero_and_one() -> None:
    batch = _rect_batch([(5, 5, 20, 20), (30, 30, 50, 60), (0, 40, 10, 64), (40, 0, 64, 12)])
    same = mosaic(batch, 0.0)
    assert torch.equal(same[IMAGE], batch[IMAGE]) and all(torch.equal(a, b) for a, b in zip(same[BBOX_XYXY], batch[BBOX_XYXY]))
    mixed = mosaic(batch, 1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(mixed[IMAGE], batch[IMAGE])
    for i in range(4):  # every box still lies on white
        for x1, y1, x2, y2 in mixed[BBOX_XYXY][i].round().long().tolist():
            assert mixed[IMAGE][i, 0, y1:y2, x1:x2].min() == 1.0


def test_quarter_turn_moves_box_and_pixels_alike() -> None:
    """``out = R(90°)(in - c) + c`` about the centre (32, 32): x' = 64 - y, y' = x. The rect
    (10, 20, 30, 26) becomes the white block cols 38-43, rows 10-29, and its box (38, 10, 44, 30)."""
    batch = _rect_batch([(10, 20, 30, 26)])
    forward = torch.tensor([[[0.0, -1.0, 64.0], [1.0, 0.0, 0.0]]])
    image = warp_images(batch[IMAGE], forward)[0, 0]
    expected = torch.zeros(SIZE, SIZE)
    expected[10:30, 38:44] = 1.0
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)
    boxes, labels = warp_boxes(batch[BBOX_XYXY], batch[BBOX_LABEL], forward, (SIZE, SIZE))
    torch.testing.assert_close(boxes[0], torch.tensor([[38.0, 10.0, 44.0, 30.0]]))
    shifted = torch.tensor([[[1.0, 0.0, 64.0], [0.0, 1.0, 0.0]]])  # a whole image width to the right: gone
    boxes, labels = warp_boxes(batch[BBOX_XYXY], batch[BBOX_LABEL], shifted, (SIZE, SIZE))
    assert boxes[0].shape == (0, 4) and labels[0].numel() == 0
    assert warp_images(batch[IMAGE], shifted).abs().max() == 0


def test_a_rotated_box_cut_by_the_border_keeps_only_its_visible_part() -> None:
    """A diamond (a square turned 45°) centred at (68, 32), half-diagonal 10, in a 64-wide image:
    corners (58, 32), (68, 22), (78, 32), (68, 42). Its sides cross x = 64 at y = 26 and y = 38, so
    the visible part spans (58, 26, 64, 38); clipping the corners' box would give (58, 22, 64, 42)."""
    diamond = torch.tensor([[[58.0, 32.0], [68.0, 22.0], [78.0, 32.0], [68.0, 42.0]]])
    box, seen = visible_extent(diamond, (SIZE, SIZE))
    torch.testing.assert_close(box, torch.tensor([[58.0, 26.0, 64.0, 38.0]]))
    assert seen.tolist() == [True]
    around = torch.tensor([[[-10.0, -10.0], [80.0, -10.0], [80.0, 80.0], [-10.0, 80.0]]])  # holds the whole image
    torch.testing.assert_close(visible_extent(around, (SIZE, SIZE))[0], torch.tensor([[0.0, 0.0, 64.0, 64.0]]))
    outside = diamond + 40
    assert visible_extent(outside, (SIZE, SIZE))[1].tolist() == [False]


def test_random_affine_box_covers_the_moved_white_region_within_a_pixel() -> None:
    """Zoom 0.6-1.4, shift ±15%, rotation ±30°: each kept box is the white region's extent (pixels
    above 0.5, bilinear) within a pixel on every side, also for the rects the border cuts (three
    of the twelve here; the worst side measured 0.72 px off); the black fill stays black."""
    g = torch.Generator().manual_seed(1)
    rects = [(4 * i, 3 * i + 5, 4 * i + 18, 3 * i + 25) for i in range(12)]  # the last ones near the border
    batch = _rect_batch(rects)
    out = random_affine(batch, scale=(0.6, 1.4), translate=0.15, degrees=30.0, generator=g)
    checked = cut = 0
    for i in range(len(rects)):
        white = out[IMAGE][i, 0] > 0.5
        if not len(out[BBOX_XYXY][i]):
            continue
        rows, cols = white.any(1).nonzero().flatten(), white.any(0).nonzero().flatten()
        extent = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
        assert (out[BBOX_XYXY][i][0] - extent).abs().max() <= 1.0, (i, out[BBOX_XYXY][i], extent)
        checked += 1
        cut += bool(white[0].any() or white[-1].any() or white[:, 0].any() or white[:, -1].any())
    assert checked >= 10 and cut >= 2, (checked, cut)
    assert out[IMAGE].min() >= -1e-6 and out[IMAGE].max() <= 1 + 1e-6


@pytest.fixture(scope="module")
def scenes_batch(data_root: Path, mirror: Path) -> tuple[dict, dict]:
    """A training batch (uint8, as the loader yields it) of small real scenes, and the module's options."""
    options = {"data_dir": str(data_root), "num_train_scenes": 48, "num_test_scenes": 8, "val_size": 8,
               "canvas_size": 64, "items_per_image": (2, 3), "batch_size": 8}  # fmt: skip
    dm = FashionMNISTScenesDataModule(**options)
    dm.setup("fit")
    return next(iter(dm.train_dataloader())), options


def test_scenes_module_applies_mosaic_and_affine_to_training_batches_only(scenes_batch) -> None:
    batch, options = scenes_batch
    dm = FashionMNISTScenesDataModule(**options, mosaic=1.0, affine_scale=[0.8, 1.2], affine_translate=0.1)
    dm.setup("fit")
    assert "mosaic p=1, affine scale 0.8-1.2 shift 0.1 rot 0°" in dm.augmentation_summary()
    torch.manual_seed(0)
    train = dm.transform_batch(batch, train=True)
    pixels = train[IMAGE] * 0.2 + 0.06  # back to [0, 1]
    for i in range(len(pixels)):  # every box holds its item's pixels
        for x1, y1, x2, y2 in train[BBOX_XYXY][i].tolist():
            inside = pixels[i, 0, int(y1) : max(int(y1) + 1, round(y2)), int(x1) : max(int(x1) + 1, round(x2))]
            assert inside.max() > 0.3
    shrunk = FashionMNISTScenesDataModule(**options, affine_scale=[0.5, 0.5], affine_translate=0.1)
    corners = (shrunk.transform_batch(batch, train=True)[IMAGE] * 0.2 + 0.06)[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.abs().max() < 1e-5, "the affine's fill must be black (0 before normalisation, -mean/std after)"
    evaluation = dm.transform_batch(batch, train=False)
    assert all(torch.equal(a, b.float()) for a, b in zip(evaluation[BBOX_XYXY], batch[BBOX_XYXY]))


def test_default_off_changes_nothing(scenes_batch) -> None:
    batch, options = scenes_batch
    dm = FashionMNISTScenesDataModule(**options, hflip=True, scale_range=[0.9, 1.1])
    torch.manual_seed(0)
    ours = dm.transform_batch(batch, train=True)
    torch.manual_seed(0)
    plain = DenseTargetDataModule.transform_batch(dm, batch, train=True)
    assert torch.equal(ours[IMAGE], plain[IMAGE])
    assert all(torch.equal(a, b) for a, b in zip(ours[BBOX_XYXY], plain[BBOX_XYXY]))
    assert "mosaic" not in dm.augmentation_summary() and "affine" not in dm.augmentation_summary()


@pytest.mark.parametrize("option", [{"mosaic": 1.5}, {"affine_scale": [1.2, 0.8]}, {"affine_translate": 1.0}])
def test_bad_options_are_one_line_errors(option: dict, tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError):
        FashionMNISTScenesDataModule(data_dir=str(tmp_path), **option)
