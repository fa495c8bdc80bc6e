"""Test-time augmentation for classifiers: the logits averaged over mirrored and shifted views.

airbench's recipe (Jordan 2024), worth ~0.5 points of CIFAR-10 accuracy for 2x (flip) or 6x
(flip + translate) the evaluation cost:

* ``flip``: ``(f(x) + f(mirror(x))) / 2``;
* ``flip_translate``: ``flip`` at the image itself (weight 1/2) and at the image shifted one
  pixel down-right and one pixel up-left (weight 1/4 each), the shifted border filled by
  reflection, as airbench does.

Only for outputs that do not move with the image (class scores). Segmentation masks and
detection boxes move with it; detection has its own flip fusion
(:mod:`visionsuite.models.detection.flip`), and the option is not offered where no inverse exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

TestTimeAugmentation = Literal["none", "flip", "flip_translate"]
TTA_MODES = get_args(TestTimeAugmentation)


def shift(images: Tensor, dy: int, dx: int) -> Tensor:
    """``images`` moved ``dy`` pixels down and ``dx`` right, the uncovered border reflected."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return images
    padded = F.pad(images, (p, p, p, p), mode="reflect")
    h, w = images.shape[-2:]
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def flip_mean(model: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """The mean of the logits of ``images`` and of their mirror images (one batched pass)."""
    n = images.shape[0]
    logits = model(torch.cat([images, images.flip(-1)]))
    return 0.5 * (logits[:n] + logits[n:])


def tta_logits(model: Callable[[Tensor], Tensor], images: Tensor, mode: TestTimeAugmentation) -> Tensor:
    """The logits of ``images`` under test-time augmentation ``mode`` (see the module docstring)."""
    if mode == "none":
        return model(images)
    if mode == "flip":
        return flip_mean(model, images)
    if mode == "flip_translate":
        centre = flip_mean(model, images)
        down_right = flip_mean(model, shift(images, 1, 1))
        up_left = flip_mean(model, shift(images, -1, -1))
        return 0.5 * centre + 0.25 * (down_right + up_left)
    raise ValueError(f"test_time_augmentation must be one of {', '.join(TTA_MODES)}, got {mode!r}")
