"""Median-frequency class balancing (Eigen & Fergus, 2015; used by the SegNet paper on CamVid).

``w_c = median_k(freq_k) / freq_c`` with ``freq_c`` = pixels of class c / total non-void pixels
of the images in which c appears. Void pixels count nowhere. A class that never appears gets
weight 0 (nothing to weigh; its frequency is undefined) and is left out of the median.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionsuite.errors import ConfigError

#: images per bincount: bounds the int64 copy (CamVid at 480x360: 64 images ≈ 90 MB).
_CHUNK = 64


def class_pixel_counts(masks: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """Pixels of each class in each image, int64 [N, num_classes], void excluded (one bincount per chunk)."""
    if masks.ndim != 3:
        raise ConfigError(f"masks must be [N, H, W], got shape {tuple(masks.shape)}")
    counts = []
    for chunk in masks.split(_CHUNK):
        flat = chunk.reshape(chunk.shape[0], -1).long()
        valid = flat != ignore_index
        bad = flat[valid & ((flat < 0) | (flat >= num_classes))]
        if bad.numel():
            raise ConfigError(
                f"mask values {sorted(set(bad.unique().tolist()))} are outside [0, {num_classes}) "
                f"and are not the ignore value {ignore_index}"
            )
        image = torch.arange(chunk.shape[0]).unsqueeze(1).expand_as(flat)
        index = (image * num_classes + flat)[valid]
        counts.append(torch.bincount(index, minlength=chunk.shape[0] * num_classes).view(-1, num_classes))
    return torch.cat(counts)


def median_frequency_weights(masks: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """float32 [num_classes] weights for a class-weighted loss (see the module docstring)."""
    counts = class_pixel_counts(masks, num_classes, ignore_index)
    pixels = counts.sum(0).double()
    image_pixels = counts.sum(1, keepdim=True).double()  # non-void pixels of each image
    exposure = ((counts > 0) * image_pixels).sum(0)
    present = pixels > 0
    if not present.any():
        raise ConfigError("no labelled pixel in the masks: class weights cannot be computed")
    freq = torch.where(present, pixels / exposure.clamp_min(1), torch.zeros_like(pixels))
    median = freq[present].quantile(0.5)  # the mean of the two middle values for an even count
    return torch.where(present, median / freq.clamp_min(1e-300), torch.zeros_like(freq)).float()
