"""The font of text drawn into pixels (box labels, the captions of GIF frames): DejaVu Sans, which
matplotlib ships, so its size can follow the picture's; PIL's own font where it is missing."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=32)
def label_font(size: int) -> Any:
    """A PIL font of ``size`` pixels."""
    from PIL import ImageFont

    path = _font_file()
    if path:
        return ImageFont.truetype(path, size=size)
    try:
        return ImageFont.load_default(size)  # scalable since Pillow 10.1
    except TypeError:
        return ImageFont.load_default()


@functools.cache
def _font_file() -> str | None:
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except (ImportError, ValueError):
        return None
