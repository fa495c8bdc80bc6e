"""Fashion-MNIST scenes on the real Fashion-MNIST cache: determinism, tight boxes, no overlaps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionsuite.data.cache import load_split
from visionsuite.data.scenes import make_scenes, tight_extents


@pytest.fixture(scope="module")
def fashion(data_root: Path, mirror: Path):
    from visionsuite.data import FashionMNISTDataModule

    dm = FashionMNISTDataModule(data_dir=str(data_root))
    dm.prepare_data()
    return load_split(dm.cache_path("train")), load_split(dm.cache_path("test"))


def _pixel_box(img: torch.Tensor, threshold: int) -> list[float]:
    ys, xs = torch.nonzero(img > threshold, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_scenes_are_deterministic_under_the_seed(fashion) -> None:
    train, _ = fashion
    a = make_scenes(train.images[:500], train.labels[:500], 50, seed=3)
    b = make_scenes(train.images[:500], train.labels[:500], 50, seed=3)
    c = make_scenes(train.images[:500], train.labels[:500], 50, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes) and torch.equal(a.offsets, b.offsets)
    assert not torch.equal(a.images, c.images)


def test_ragged_layout_and_counts(fashion) -> None:
    _, test = fashion
    s = make_scenes(test.images, test.labels, 200, items_per_image=(1, 4), seed=0)
    assert s.images.shape == (200, 1, 96, 96) and s.images.dtype == torch.uint8
    assert s.offsets.shape == (201,) and s.offsets[0] == 0 and s.offsets[-1] == len(s.boxes) == len(s.labels)
    per = s.offsets.diff()
    assert per.min() >= 1 and per.max() <= 4 and s.dropped == 0
    assert s.boxes.dtype == torch.float32 and s.labels.dtype == torch.int64


def test_boxes_are_tight_on_the_composited_image_and_disjoint(fashion) -> None:
    train, _ = fashion
    s = make_scenes(train.images[:2000], train.labels[:2000], 150, canvas_size=(96, 128), seed=1)
    for i in range(150):
        boxes, _ = s.targets(i)
        img = s.images[i, 0]
        covered = torch.zeros_like(img, dtype=torch.bool)
        for b in boxes.long().tolist():
            x1, y1, x2, y2 = b
            covered[y1:y2, x1:x2] = True
            crop = img[y1:y2, x1:x2] > 10
            # tight: every edge row/column of the box holds a pixel above the threshold
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
        assert not (img[~covered] > 10).any()  # no item pixel lies outside every box
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
        assert covered.sum() == area  # boxes are disjoint: their union is the sum of their areas
    # tight, not the 28x28 cell: most Fashion-MNIST items are narrower than their cell
    widths = s.boxes[:, 2] - s.boxes[:, 0]
    assert (widths < 28).float().mean() > 0.5 and widths.max() <= 28


def test_scaled_items_and_labels_match_the_source(fashion) -> None:
    train, _ = fashion
    items, labels = train.images[:1], train.labels[:1]  # one item: every scene shows it
    s = make_scenes(items, labels, 20, items_per_image=(1, 1), scale_range=(20, 56), seed=2)
    assert (s.labels == labels[0]).all()
    sides = (s.boxes[:, 2:] - s.boxes[:, :2]).amax(dim=1)
    assert sides.min() < 28 < sides.max()  # sizes vary across the range
    for i in range(20):
        assert s.targets(i)[0][0].tolist() == _pixel_box(s.images[i, 0], 10)


def test_tight_extents_vectorised_matches_a_loop(fashion) -> None:
    train, _ = fashion
    items = train.images[:64, 0]
    boxes = tight_extents(items, 10)
    assert boxes.tolist() == [_pixel_box(im, 10) for im in items]


def test_overlap_allowed_and_crowded_canvas_counts_drops(fashion) -> None:
    train, _ = fashion
    s = make_scenes(train.images[:100], train.labels[:100], 20, canvas_size=(40, 40), items_per_image=(3, 3), seed=0)
    assert s.dropped > 0 and s.dropped + len(s.labels) == 60  # 40x40 holds one 28 px cell
    t = make_scenes(
        train.images[:100], train.labels[:100], 20, canvas_size=(40, 40), items_per_image=(3, 3), non_overlapping=False
    )
    assert t.dropped == 0 and len(t.labels) == 60
    for i in range(20):  # overlapping items blend (max): a later item never erases an earlier one
        for x1, y1, x2, y2 in t.targets(i)[0].long().tolist():
            crop = t.images[i, 0, y1:y2, x1:x2] > 10
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()

