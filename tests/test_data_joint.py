"""Images, masks and boxes move together: geometry, joint augmentation, cache, dense data modules.

Real data: a CamVid frame with its label map and COCO128 images with their boxes, extracted
from the mirror's archives into a temporary folder.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.data import augment as aug
from visionsuite.data.batch import BBOX_LABEL, BBOX_XYXY, IMAGE, LABEL, MASK
from visionsuite.data.cache import DecodedSplit, load_split, save_split
from visionsuite.data.datasets import RaggedBoxes, TensorImageDataset
from visionsuite.data.dense import DenseTargetDataModule, Sample, load_mask
from visionsuite.data.geometry import fit_sample
from visionsuite.data.images import load_image

CAMVID = ["0001TP_006690", "0001TP_006720", "0001TP_006750", "0001TP_006780"]
COCO = ["000000000009", "000000000025"]
IGNORE = 11  # CamVid's void class; 0 (Sky) is a real class


@pytest.fixture(scope="module")
def files(mirror: Path, tmp_path_factory) -> Path:
    """The few CamVid and COCO128 files these tests use, safely extracted from the mirror."""
    root = tmp_path_factory.mktemp("joint")
    wanted = {f"CamVid/train/{n}.jpg" for n in CAMVID} | {f"CamVid/trainannot/{n}.png" for n in CAMVID}
    wanted |= {f"coco128/images/train2017/{n}.jpg" for n in COCO} | {f"coco128/labels/train2017/{n}.txt" for n in COCO}
    for archive in (mirror / "camvid" / "camvid.tar.gz", mirror / "coco128" / "coco128.tar.gz"):
        with tarfile.open(archive) as tar:
            members = [m for m in tar if m.name in wanted]
            tar.extractall(root, members=members, filter="data")
    assert all((root / w).is_file() for w in wanted)
    return root


def camvid(files: Path, name: str = CAMVID[0]) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(load_image(files / f"CamVid/train/{name}.jpg", 3, None))
    return image, load_mask(files / f"CamVid/trainannot/{name}.png")


def coco(files: Path, name: str = COCO[0]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image uint8 [3, H, W], boxes pixel xyxy from the YOLO file (normalised cx cy w h), labels."""
    image = torch.from_numpy(load_image(files / f"coco128/images/train2017/{name}.jpg", 3, None))
    rows = np.loadtxt(files / f"coco128/labels/train2017/{name}.txt", ndmin=2)
    h, w = image.shape[-2:]
    cx, cy, bw, bh = (torch.tensor(rows[:, i], dtype=torch.float32) for i in range(1, 5))
    boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], dim=1)
    return image, boxes, torch.tensor(rows[:, 0], dtype=torch.int64)


def region(image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = (int(v) for v in box.floor().tolist())
    return image[..., y1:y2, x1:x2]


# -- geometry ---------------------------------------------------------------------------------------
def test_letterbox_keeps_mask_classes_and_pads_with_the_ignore_value(files: Path) -> None:
    image, mask = camvid(files)
    assert tuple(image.shape) == (3, 360, 480) and tuple(mask.shape) == (360, 480)
    out = fit_sample(image, (256, 256), "letterbox", mask=mask, mask_fill=IGNORE)
    p = out.placement
    assert (p.scale_y, p.scale_x, p.offset_y, p.offset_x) == (192 / 360, 256 / 480, 32.0, 0.0)
    assert out.image.shape == (3, 256, 256) and out.mask.shape == (256, 256) and out.mask.dtype == torch.uint8
    assert set(out.mask.unique().tolist()) <= set(mask.unique().tolist()) | {IGNORE}  # nearest: no new class
    assert (out.mask[:32] == IGNORE).all() and (out.mask[-32:] == IGNORE).all()
    assert (out.image[:, :32] == 0).all()
    # the mask stays on its image: PIL's nearest resize of the label map, placed at the same offset
    ref = np.asarray(Image.open(files / f"CamVid/trainannot/{CAMVID[0]}.png").resize((256, 192), Image.NEAREST))
    assert (out.mask[32:224].numpy() == ref).mean() > 0.97
    # and the image is an antialiased resize: close to PIL's bilinear
    ref_img = np.asarray(Image.open(files / f"CamVid/train/{CAMVID[0]}.jpg").resize((256, 192), Image.BILINEAR))
    diff = np.abs(out.image[:, 32:224].permute(1, 2, 0).numpy().astype(int) - ref_img.astype(int))
    assert diff.mean() < 2.0


def test_boxes_follow_the_letterbox_and_keep_their_pixels(files: Path) -> None:
    image, boxes, labels = coco(files)
    h, w = image.shape[-2:]
    out = fit_sample(image, (320, 320), "letterbox", boxes=boxes, box_labels=labels)
    s = 320 / max(h, w)
    top, left = (320 - round(h * s)) // 2, (320 - round(w * s)) // 2
    expected = boxes * torch.tensor([round(w * s) / w, round(h * s) / h] * 2) + torch.tensor([left, top] * 2)
    assert out.dropped_boxes == 0 and torch.equal(out.box_labels, labels)
    assert torch.allclose(out.boxes, expected.clamp(min=0), atol=1e-3)
    for before, after in zip(boxes, out.boxes):  # same content: mean colour of the box region
        a, b = region(image, before).float().mean((1, 2)), region(out.image, after).float().mean((1, 2))
        assert (a - b).abs().max() < 6, (before, after, a, b)


def test_centre_crop_drops_and_counts_boxes_that_leave_the_image(files: Path) -> None:
    image, boxes, labels = coco(files)
    h, w = image.shape[-2:]
    out = fit_sample(image, (100, 30), "crop", boxes=boxes, box_labels=labels)  # keeps a tall centre strip
    s = max(100 / h, 30 / w)
    left = (30 - round(w * s)) // 2
    x1, x2 = boxes[:, 0] * round(w * s) / w + left, boxes[:, 2] * round(w * s) / w + left
    outside = ((x2.clamp(0, 30) - x1.clamp(0, 30)) < 1).numpy()
    assert 0 < outside.sum() < len(boxes)
    assert out.dropped_boxes == outside.sum() and torch.equal(out.box_labels, labels[~outside])
    assert (out.boxes[:, 0::2] >= 0).all() and (out.boxes[:, 0::2] <= 30).all()


# -- joint augmentation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed(files: Path) -> dict:
    """A batch of 2 at 192x256: a CamVid frame with its mask, a COCO image with its boxes."""
    image, mask = camvid(files)
    a = fit_sample(image, (192, 256), "letterbox", mask=mask, mask_fill=IGNORE)
    image, boxes, labels = coco(files)
    b = fit_sample(image, (192, 256), "letterbox", boxes=boxes, box_labels=labels)
    return {
        IMAGE: torch.stack([a.image, b.image]).float() / 255,
        MASK: torch.stack([a.mask, torch.full((192, 256), IGNORE, dtype=torch.uint8)]).long(),
        BBOX_XYXY: [torch.zeros(0, 4), b.boxes.round()],  # whole pixels: regions compare exactly
        BBOX_LABEL: [torch.zeros(0, dtype=torch.int64), b.box_labels],
    }


def _same(x: dict, y: dict) -> bool:
    return (
        torch.equal(x[IMAGE], y[IMAGE]) and torch.equal(x[MASK], y[MASK])
        and all(torch.allclose(a, b) for a, b in zip(x[BBOX_XYXY], y[BBOX_XYXY], strict=True))
        and all(torch.equal(a, b) for a, b in zip(x[BBOX_LABEL], y[BBOX_LABEL], strict=True))
    )  # fmt: skip


def test_flip_twice_is_the_identity_and_once_mirrors_every_part(mixed: dict) -> None:
    d = aug.Draws(flip=torch.tensor([True, True]))
    once = aug.augment_batch(mixed, d, ignore_index=IGNORE)
    assert torch.equal(once[IMAGE], mixed[IMAGE].flip(-1)) and torch.equal(once[MASK], mixed[MASK].flip(-1))
    b, f = mixed[BBOX_XYXY][1], once[BBOX_XYXY][1]
    assert torch.allclose(f[:, 0], 256 - b[:, 2]) and torch.allclose(f[:, 2], 256 - b[:, 0])
    assert torch.equal(f[:, 1::2], b[:, 1::2])
    for before, after in zip(b, f):  # the box still frames the same (mirrored) pixels
        assert torch.equal(region(once[IMAGE][1], after), region(mixed[IMAGE][1], before).flip(-1))
    assert _same(aug.augment_batch(once, d, ignore_index=IGNORE), mixed)
    assert not _same(once, mixed)


def test_random_crop_moves_image_mask_and_boxes_by_the_same_draw(mixed: dict) -> None:
    p = 24
    d = aug.draw(2, "cpu", padding=p, flip_p=0.5, generator=torch.Generator().manual_seed(3))
    out = aug.augment_batch(mixed, d, ignore_index=IGNORE)
    for i in range(2):
        ty, tx = (p - d.offsets[i]).tolist()
        img, mask = out[IMAGE][i], out[MASK][i]
        if d.flip[i]:
            img, mask = img.flip(-1), mask.flip(-1)
        # interior: the original shifted by the drawn offset, image and mask alike
        ys, xs = slice(max(ty, 0), 192 + min(ty, 0)), slice(max(tx, 0), 256 + min(tx, 0))
        ys0, xs0 = slice(max(-ty, 0), 192 + min(-ty, 0)), slice(max(-tx, 0), 256 + min(-tx, 0))
        assert torch.equal(img[:, ys, xs], mixed[IMAGE][i][:, ys0, xs0])
        assert torch.equal(mask[ys, xs], mixed[MASK][i][ys0, xs0])
    # a crop keeps the pixels under each box (boxes the crop did not clip)
    before, after, flip = mixed[BBOX_XYXY][1], out[BBOX_XYXY][1], bool(d.flip[1])
    ty, tx = (p - d.offsets[1]).tolist()
    shifted = before + torch.tensor([tx, ty, tx, ty])
    inside = (shifted[:, 0] >= 0) & (shifted[:, 1] >= 0) & (shifted[:, 2] <= 256) & (shifted[:, 3] <= 192)
    assert inside.sum() >= 2 and len(after) == len(before)
    unflipped = out[IMAGE][1].flip(-1) if flip else out[IMAGE][1]
    for box, new in zip(before[inside], after[inside]):
        if flip:
            new = torch.stack([256 - new[2], new[1], 256 - new[0], new[3]])
        assert torch.equal(region(unflipped, new), region(mixed[IMAGE][1], box))


def test_mask_padding_is_the_ignore_value_never_zero(mixed: dict) -> None:
    p = 16
    d = aug.Draws(padding=p, offsets=torch.tensor([[0, 0], [2 * p, 2 * p]]))  # shift down-right / up-left
    out = aug.augment_batch(mixed, d, ignore_index=IGNORE)
    assert (mixed[MASK][0] == 0).any()  # Sky (class 0) is in this frame: padding with 0 would invent sky
    assert (out[MASK][0, :p] == IGNORE).all() and (out[MASK][0, :, :p] == IGNORE).all()
    assert (out[MASK][1, -p:] == IGNORE).all()
    assert (out[IMAGE][0, :, :p] == 0).all()
    zoom = aug.Draws(scale=torch.tensor([0.5, 0.5]))  # shrink: a border of padding all round
    small = aug.augment_batch(mixed, zoom, ignore_index=IGNORE)
    assert (small[MASK][0, :40] == IGNORE).all() and (small[MASK][0, :, :60] == IGNORE).all()
    assert set(small[MASK][0].unique().tolist()) <= set(mixed[MASK][0].unique().tolist())


def test_zoom_moves_boxes_with_their_content(mixed: dict) -> None:
    d = aug.Draws(scale=torch.tensor([1.0, 1.25]))
    out = aug.augment_batch(mixed, d, ignore_index=IGNORE)
    b = mixed[BBOX_XYXY][1]
    centre = torch.tensor([128.0, 96.0, 128.0, 96.0])
    expected = ((b - centre) * 1.25 + centre).clamp(min=0)
    expected[:, 0::2], expected[:, 1::2] = expected[:, 0::2].clamp(max=256), expected[:, 1::2].clamp(max=192)
    keep = ((expected[:, 2] - expected[:, 0]) >= 1) & ((expected[:, 3] - expected[:, 1]) >= 1)
    assert torch.allclose(out[BBOX_XYXY][1], expected[keep], atol=1e-4)
    unclipped = ((b - centre) * 1.25 + centre)[keep]
    unclipped = (unclipped[:, :2] >= 0).all(1) & (unclipped[:, 2] <= 256) & (unclipped[:, 3] <= 192)
    big = [(bx, nb) for bx, nb, u in zip(b[keep], out[BBOX_XYXY][1], unclipped) if u and (nb[2] - nb[0]) > 20]
    assert big
    for box, new in big:  # same mean colour under the box before and after the zoom
        a = region(mixed[IMAGE][1], box).mean((1, 2))
        c = region(out[IMAGE][1], new).mean((1, 2))
        assert (a - c).abs().max() < 0.05


# -- cache and datasets with masks and ragged boxes -------------------------------------------------
def _split(files: Path) -> DecodedSplit:
    samples = [Sample(files / f"CamVid/train/{n}.jpg", mask=files / f"CamVid/trainannot/{n}.png") for n in CAMVID[:2]]
    for n in COCO:
        image, boxes, labels = coco(files, n)
        samples.append(Sample(files / f"coco128/images/train2017/{n}.jpg", boxes=boxes, box_labels=labels))
    from visionsuite.data.dense import decode_samples

    split, dropped = decode_samples(samples, files, 3, (96, 128), "letterbox", IGNORE, ["a", "b"])
    assert dropped == 0
    return split


def test_cache_with_masks_and_ragged_boxes_round_trips(files: Path, tmp_path: Path) -> None:
    split = _split(files)
    assert split.labels is None and split.masks.shape == (4, 96, 128) and split.sizes.tolist()[0] == [360, 480]
    n_boxes = [len(np.loadtxt(files / f"coco128/labels/train2017/{n}.txt", ndmin=2)) for n in COCO]
    assert split.box_offsets.tolist() == [0, 0, 0, n_boxes[0], sum(n_boxes)]
    assert (split.masks[2:] == IGNORE).all()  # images without a mask: all void
    save_split(split, tmp_path / "s.pt")
    back = load_split(tmp_path / "s.pt")
    for name in ("images", "masks", "boxes", "box_labels", "box_offsets", "sizes"):
        assert torch.equal(getattr(back, name), getattr(split, name)), name
    assert back.labels is None and back.files == split.files
    ds = TensorImageDataset(
        back.images, None, torch.tensor([3, 0, 2]), masks=back.masks,
        boxes=RaggedBoxes(back.boxes, back.box_labels, back.box_offsets),
    )  # fmt: skip
    batch = ds[[0, 1, 2]]  # rows 3, 0, 2
    assert set(batch) == {IMAGE, MASK, BBOX_XYXY, BBOX_LABEL}
    off = back.box_offsets
    assert torch.equal(batch[BBOX_XYXY][0], back.boxes[off[3] : off[4]]) and len(batch[BBOX_XYXY][1]) == 0
    assert torch.equal(batch[BBOX_XYXY][2], back.boxes[off[2] : off[3]])
    assert torch.equal(batch[BBOX_LABEL][2], back.box_labels[off[2] : off[3]])
    assert torch.equal(batch[MASK][1], back.masks[0])
    with pytest.raises(ValueError, match="box_offsets"):
        DecodedSplit(images=back.images, boxes=back.boxes, box_labels=back.box_labels, box_offsets=off.flip(0))


class _TinyCamVid(DenseTargetDataModule):
    """What a segmentation data module needs to write: constants and the sample list."""

    dataset_name = "tiny_camvid"
    CLASSES = tuple(f"c{i}" for i in range(11))
    MEAN, STD = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)
    IMAGE_SIZE, IN_CHANS, IGNORE_INDEX = (96, 128), 3, IGNORE

    def __init__(self, files: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.files = Path(files)

    def cache_splits(self) -> tuple[str, ...]:
        return ("train",)

    def samples(self, split: str) -> tuple[Path, list[Sample]]:
        return self.files, [
            Sample(self.files / f"CamVid/train/{n}.jpg", mask=self.files / f"CamVid/trainannot/{n}.png") for n in CAMVID
        ]


def test_dense_module_yields_mask_batches_and_augments_them_jointly(files: Path, tmp_path: Path) -> None:
    dm = _TinyCamVid(
        str(files), data_dir=str(tmp_path), val_size=1, test_size=1, batch_size=2, crop_padding=8, hflip=True
    )
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (2, 1, 1)  # sized by image count
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {IMAGE, MASK} and batch[MASK].dtype == torch.uint8 and batch[MASK].shape == (2, 96, 128)
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out[IMAGE].dtype == torch.float32 and out[MASK].dtype == torch.int64
    torch.manual_seed(0)
    d = aug.draw(2, "cpu", padding=8, flip_p=0.5)  # the draws the module made
    expected = aug.augment_batch({IMAGE: batch[IMAGE].float() / 255, MASK: batch[MASK].long()}, d, IGNORE)
    assert torch.equal(out[MASK], expected[MASK])
    assert LABEL not in out
    assert "random crop pad 8, hflip p=0.5" in dm.augmentation_summary()


def test_train_window_cuts_image_mask_and_boxes_at_one_position_per_image(mixed: dict) -> None:
    gen = torch.Generator().manual_seed(4)
    out = aug.random_window(mixed, (128, 160), generator=gen)
    gen = torch.Generator().manual_seed(4)  # the same draws, to know where each window is
    tops, lefts = torch.randint(0, 65, (2,), generator=gen), torch.randint(0, 97, (2,), generator=gen)
    assert out[IMAGE].shape == (2, 3, 128, 160) and out[MASK].shape == (2, 128, 160)
    assert (tops[0], lefts[0]) != (tops[1], lefts[1])  # positions are drawn per image
    for i in range(2):
        ys, xs = slice(int(tops[i]), int(tops[i]) + 128), slice(int(lefts[i]), int(lefts[i]) + 160)
        assert torch.equal(out[IMAGE][i], mixed[IMAGE][i][:, ys, xs])
        assert torch.equal(out[MASK][i], mixed[MASK][i][ys, xs])
    # boxes: shifted into the window, clipped to it, dropped (with their labels) when nothing is left
    shift = torch.stack([lefts[1], tops[1], lefts[1], tops[1]]).float()
    moved = mixed[BBOX_XYXY][1] - shift
    clipped = torch.stack([moved[:, 0].clamp(0, 160), moved[:, 1].clamp(0, 128),
                           moved[:, 2].clamp(0, 160), moved[:, 3].clamp(0, 128)], dim=1)  # fmt: skip
    keep = ((clipped[:, 2] - clipped[:, 0]) >= 1) & ((clipped[:, 3] - clipped[:, 1]) >= 1)
    assert 0 < keep.sum() < len(keep)  # this window keeps some boxes and drops others
    assert torch.equal(out[BBOX_XYXY][1], clipped[keep]) and torch.equal(out[BBOX_LABEL][1], mixed[BBOX_LABEL][1][keep])
    whole = keep & (moved[:, :2] >= 0).all(1) & (moved[:, 2] <= 160) & (moved[:, 3] <= 128)
    assert whole.any()
    for box, source in zip(moved[whole], mixed[BBOX_XYXY][1][whole]):  # boxes inside the window frame the same pixels
        assert torch.equal(region(out[IMAGE][1], box), region(mixed[IMAGE][1], source))
    with pytest.raises(ValueError, match="larger than the images"):
        aug.random_window(mixed, (200, 128))
