"""Batch-indexed datasets over uint8 tensors, and the loaders that read them a batch at a time.

A per-sample ``Dataset`` + collate costs a Python call, a PIL transform and a ``torch.stack``
per image; here the sampler hands the dataset a whole *list* of indices and one fancy-indexing
op returns the batch, still uint8 (4x less to copy to the device than float). Augmentation and
normalisation happen later, on the device, in the DataModule's ``on_after_batch_transfer``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

Index = int | Sequence[int] | Tensor


class TensorImageDataset(Dataset):
    """``images`` uint8 [N, C, H, W] with per-item ``targets``, viewed through ``indices``.

    ``targets`` is an int64 label tensor, or a list (e.g. file paths for prediction).
    ``ds[[i, j, k]]`` returns ``(images[[…]], targets[[…]])`` in one op; ``ds[i]`` one item.
    """

    def __init__(self, images: Tensor, targets: Tensor | list, indices: Tensor | None = None) -> None:
        if len(targets) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(targets)} targets")
        self.images = images
        self.targets = targets
        self.indices = torch.arange(images.shape[0]) if indices is None else indices.to(torch.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: Index) -> tuple[Tensor, Tensor | list]:
        rows = self.indices[torch.as_tensor(idx, dtype=torch.int64)]
        if isinstance(self.targets, Tensor):
            return self.images[rows], self.targets[rows]
        if rows.ndim == 0:
            return self.images[rows], self.targets[int(rows)]
        return self.images[rows], [self.targets[i] for i in rows.tolist()]


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader that yields whole batches from ``dataset[list_of_indices]`` (no collate).

    ``batch_size=None`` turns off auto-collation; the ``BatchSampler`` passed as ``sampler``
    makes each "sample" a list of indices. Shuffling draws from torch's global RNG, so
    ``seed_everything`` makes it reproducible.
    """
    base = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=BatchSampler(base, batch_size=batch_size, drop_last=drop_last),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
