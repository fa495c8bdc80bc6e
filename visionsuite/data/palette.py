"""Palette PNG masks: the file format ``predict`` and ``predict-exported`` write for segmentation.

A mode ``P`` PNG stores class indices as pixel values and the class colours as its palette, so it
opens in colour in any viewer and reads back as indices with ``np.array(Image.open(path))``.
Kept free of Lightning so that ``predict-exported`` runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def palette_image(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """A mode ``P`` image of the index ``mask`` [H, W] with ``palette`` (unused entries black)."""
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [v for colour in palette for v in colour]
    img.putpalette(flat + [0] * (768 - len(flat)))
    return img
