"""Write ``predict`` results of a detector: each image with its boxes drawn, and one COCO-results JSON.

The boxes in the JSON are in the *original* image's pixels (the letterbox the data module applied
is undone with the placement it recorded) and carry the dataset's own category ids, so the file
evaluates against the source annotations unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from visionsuite.core.atomic import atomic_path
from visionsuite.data.geometry import boxes_to_source
from visionsuite.data.images import load_image
from visionsuite.outputs.coco_results import write_coco_results
from visionsuite.outputs.detection_pictures import draw_detections
from visionsuite.outputs.output_names import prediction_path


class DetectionPredictionWriter(BasePredictionWriter):
    """PNG per image (``<root>/predictions/``) as batches come; ``<root>/predictions_coco.json`` at the end.

    A ``predict_dir`` image – or a split image of a file-based data set (COCO, VOC, YOLO), whose
    original the data module finds with ``source_file(path)`` – is drawn at its original size with
    the boxes mapped back through the letterbox, and its PNG is named after the file
    (``street/0001.jpg`` → ``predictions/street/0001.png``; see :mod:`~visionsuite.outputs.output_names`).

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
        self._taken: set[Path] = set()

    def _root(self, trainer: Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir)

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Any,
        batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:  # fmt: skip
        dm = trainer.datamodule
        names = list(getattr(dm, "class_names", None) or [])
        folder = self._root(trainer) / "predictions"
        root = getattr(dm, "predict_dir", None)
        for path, det, image in zip(prediction["paths"], prediction["detections"], prediction["images"], strict=True):
            placement = dm.source_placement(path) if hasattr(dm, "source_placement") else None
            boxes = boxes_to_source(det["boxes"], placement) if placement is not None else det["boxes"]
            canvas, drawn = image, det["boxes"]
            source = dm.source_file(path) if hasattr(dm, "source_file") else (Path(path) if Path(path).is_file() else None)
            if placement is not None and source is not None:  # the original photo, at its own size (a tiny one enlarged)
                canvas, drawn = torch.from_numpy(load_image(source, 3, None)), boxes
            shown = det["scores"] >= self.min_score
            labels = det["labels"][shown]
            names = names or [str(i) for i in range(int(labels.max()) + 1 if shown.any() else 0)]
            picture = draw_detections(canvas, drawn[shown], labels, names, det["scores"][shown])
            target = prediction_path(folder, path, root, self._taken)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                Image.fromarray(picture.permute(1, 2, 0).numpy()).save(tmp)
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

