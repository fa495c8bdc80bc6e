"""Batch-indexed datasets over uint8 tensors, and the loaders that read them a batch at a time.

A per-sample ``Dataset`` + collate costs a Python call, a PIL transform and a ``torch.stack``
per image; here the sampler hands the dataset a whole *list* of indices and one fancy-indexing
op returns the batch (a dict of named parts, :mod:`visionsuite.data.batch`), still uint8 (4x less to copy to the device than float). Augmentation and
normalisation happen later, on the device, in the DataModule's ``on_after_batch_transfer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    Sampler,
    SequentialSampler,
)

from .batch import BBOX_LABEL, BBOX_XYXY, IMAGE, INDEX, LABEL, MASK, PATH, Batch

Index = int | Sequence[int] | Tensor


@dataclass
class RaggedBoxes:
    """Boxes of N images as flat tensors: ``boxes`` [M, 4], ``labels`` [M], ``offsets`` [N + 1]."""

    boxes: Tensor
    labels: Tensor
    offsets: Tensor

    def select(self, rows: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Per-image box and label tensors of ``rows`` (1-D), gathered with one index op."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        counts = ends - starts
        flat = torch.repeat_interleave(starts - torch.cumsum(counts, 0) + counts, counts)
        flat = flat + torch.arange(int(counts.sum()))
        sizes = counts.tolist()
        return list(self.boxes[flat].split(sizes)), list(self.labels[flat].split(sizes))


class TensorImageDataset(Dataset):
    """uint8 ``images`` [N, C, H, W] and their targets, viewed through ``indices``.

    ``ds[[i, j, k]]`` returns a whole batch dict (keys of :mod:`visionsuite.data.batch`) with one
    fancy-indexing op per part; ``ds[i]`` one item. ``labels`` int64 [N], ``masks`` uint8
    [N, H, W], ``boxes`` (ragged), ``paths`` (list of str, for prediction) are each optional.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        indices: Tensor | None = None,
        *,
        masks: Tensor | None = None,
        boxes: RaggedBoxes | None = None,
        paths: list[str] | None = None,
    ) -> None:
        n = images.shape[0]
        for name, part in (("labels", labels), ("masks", masks), ("paths", paths)):
            if part is not None and len(part) != n:
                raise ValueError(f"{n} images but {len(part)} {name}")
        if boxes is not None and len(boxes.offsets) != n + 1:
            raise ValueError(f"{n} images but box offsets for {len(boxes.offsets) - 1}")
        self.images, self.labels, self.masks, self.boxes, self.paths = images, labels, masks, boxes, paths
        self.indices = torch.arange(n) if indices is None else indices.to(torch.int64)
        #: whether batches carry ``index`` (each image's row): set by a data module whose
        #: augmentation follows the image (alternating flips).
        self.with_index = False

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: Index) -> Batch:
        rows = self.indices[torch.as_tensor(idx, dtype=torch.int64)]
        batch: Batch = {IMAGE: self.images[rows]}
        if self.labels is not None:
            batch[LABEL] = self.labels[rows]
        if self.masks is not None:
            batch[MASK] = self.masks[rows]
        if self.boxes is not None:
            boxes, labels = self.boxes.select(rows.reshape(-1))
            batch[BBOX_XYXY], batch[BBOX_LABEL] = (boxes[0], labels[0]) if rows.ndim == 0 else (boxes, labels)
        if self.paths is not None:
            batch[PATH] = self.paths[int(rows)] if rows.ndim == 0 else [self.paths[i] for i in rows.tolist()]
        if self.with_index:
            batch[INDEX] = rows
        return batch


#: where a training pass starts: (epoch, batches of that epoch already trained on).
Position = Callable[[], tuple[int, int]]


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled index batches whose order is a function of ``(seed, epoch)`` alone.

    Why: a run killed mid-epoch must, when resumed, see exactly the batches the uninterrupted run
    would have seen next. A ``RandomSampler`` draws each epoch's order from the global RNG, which a
    new process does not have, and restarts at the first batch. Here ``seed`` is drawn once from the
    global RNG (so ``seed_everything`` still sets it) and saved with the loader's state;
    ``position`` says which epoch a pass belongs to and how many of its batches to skip (the
    trainer's restored progress). Without ``position`` passes count epochs from 0 and skip nothing.
    """

    def __init__(self, n: int, batch_size: int, *, drop_last: bool, position: Position | None = None) -> None:
        self.n, self.batch_size, self.drop_last, self.position = n, batch_size, drop_last, position
        self.seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self._passes = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = self.position() if self.position is not None else (self._passes, 0)
        self._passes += 1
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
        batches = order.split(self.batch_size)
        if self.drop_last and self.n % self.batch_size:
            batches = batches[:-1]
        for batch in batches[skip:]:
            yield batch.tolist()


class ResumableLoader(DataLoader):
    """A DataLoader whose shuffling seed travels with the checkpoint (Lightning saves and restores
    loaders that have ``state_dict``/``load_state_dict``), so a resumed run replays the same order."""

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.sampler.seed} if isinstance(self.sampler, EpochBatchSampler) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(self.sampler, EpochBatchSampler) and "seed" in state:
            self.sampler.seed = int(state["seed"])


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    position: Position | None = None,
) -> DataLoader:
    """A DataLoader that yields whole batches from ``dataset[list_of_indices]`` (no collate).

    ``batch_size=None`` turns off auto-collation; the batch sampler passed as ``sampler`` makes
    each "sample" a list of indices. Training order: :class:`EpochBatchSampler` (resumable).
    """
    if shuffle:
        sampler: Sampler = EpochBatchSampler(len(dataset), batch_size, drop_last=drop_last, position=position)
    else:
        sampler = BatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last)
    return ResumableLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
