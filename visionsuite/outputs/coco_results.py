"""Detections → the COCO results format (what COCO's ``loadRes`` and evaluation servers read).

One JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``; category ids
are the *dataset's own* (COCO: 1..90 with gaps), mapped back from the contiguous ``0..K-1``
indices the models use, so the file evaluates against the original annotations unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor


def coco_results(
    detections: Sequence[dict[str, Tensor]], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO result entries for ``detections[i]`` (xyxy pixels, labels 0..K-1) of ``image_ids[i]``."""
    if len(detections) != len(image_ids):
        raise ValueError(f"{len(detections)} detections for {len(image_ids)} image ids")
    out = []
    for det, image_id in zip(detections, image_ids):
        for (x1, y1, x2, y2), cls, score in zip(det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist()):
            out.append({
                "image_id": int(image_id),
                "category_id": int(category_ids[cls]),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(score), 5),
            })  # fmt: skip
    return out


def write_coco_results(
    path: str | Path, detections: Sequence[dict[str, Tensor]], image_ids: Sequence[int], category_ids: Sequence[int]
) -> Path:
    """Write :func:`coco_results` to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(coco_results(detections, image_ids, category_ids))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
