"""Write ``predict`` results of a detector: each image with its boxes drawn, and one COCO-results JSON.

The boxes in the JSON are in the *original* image's pixels (the letterbox the data module applied
is undone with the placement it recorded) and carry the dataset's own category ids, so the file
evaluates against the source annotations unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from visionsuite.core.atomic import atomic_path
from visionsuite.data.geometry import boxes_to_source
from visionsuite.outputs.coco_results import write_coco_results
from visionsuite.outputs.detection_pictures import draw_detections


class DetectionPredictionWriter(BasePredictionWriter):
    """PNG per image (``<root>/predictions/``) as batches come; ``<root>/predictions_coco.json`` at the end.

    The data module supplies ``source_placement(path)`` (how the image was fitted, or ``None``),
    ``image_id(path)`` and ``category_ids`` (index ``0..K-1`` → the dataset's id); without them,
    boxes stay in batch pixels, ids are positions and categories are indices.
    """

    def __init__(self, output_dir: str | None = None, min_score: float = 0.3) -> None:
        super().__init__(write_interval="batch_and_epoch")
        self.output_dir = output_dir
        #: boxes drawn into the PNGs (the JSON keeps every detection, as COCO evaluation wants).
        self.min_score = min_score
        self.results_file: Path | None = None
        self._entries: list[tuple[int, dict[str, Any]]] = []

    def _root(self, trainer: Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir)

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Any,
        batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:  # fmt: skip
        dm = trainer.datamodule
        names = list(getattr(dm, "class_names", None) or [])
        folder = self._root(trainer) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        for path, det, image in zip(prediction["paths"], prediction["detections"], prediction["images"], strict=True):
            shown = det["scores"] >= self.min_score
            labels = det["labels"][shown]
            if shown.any():
                names = names or [str(i) for i in range(int(labels.max()) + 1)]
                picture = draw_detections(image, det["boxes"][shown], labels, names, det["scores"][shown])
            else:  # nothing confident enough: the image as it is
                picture = image.expand(3, -1, -1) if image.shape[0] == 1 else image
            with atomic_path(folder / f"{_file_stem(path)}.png") as tmp:
                Image.fromarray(picture.permute(1, 2, 0).numpy()).save(tmp)
            placement = dm.source_placement(path) if hasattr(dm, "source_placement") else None
            boxes = boxes_to_source(det["boxes"], placement) if placement is not None else det["boxes"]
            image_id = dm.image_id(path) if hasattr(dm, "image_id") else len(self._entries)
            self._entries.append((image_id, {**det, "boxes": boxes}))

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any], batch_indices: Sequence[Any]
    ) -> None:
        dm = trainer.datamodule
        ids = getattr(dm, "category_ids", None)
        num = getattr(pl_module.hparams, "num_classes", 0)
        path = self._root(trainer) / "predictions_coco.json"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        self.results_file = write_coco_results(
            path, [d for _, d in self._entries], [i for i, _ in self._entries], list(ids) if ids else list(range(num))
        )
        self._entries = []
        print(f"Detections written to {path} (images with boxes drawn under {path.parent / 'predictions'})")


def _file_stem(path: str) -> str:
    """A flat, safe file name for an image path (``test/12`` → ``test_12``, ``a/b.jpg`` → ``a_b``)."""
    stem = str(Path(path).with_suffix("")) if Path(path).suffix else str(path)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.strip("/")) or "image"
