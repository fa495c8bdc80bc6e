"""The batch format every loader yields and every task reads: a dict with named parts.

Why a dict of named parts (not tuples): a classification batch, a segmentation batch and a
detection batch differ only in which targets they carry, so the data layer, the on-device
augmentation and every task read the same keys, and a part that is absent is simply not
there (a tuple's positions would mean different things per task). Keys:

* ``image``: uint8 [B, C, H, W] out of the loader; float [B, C, H, W] (normalised) after
  ``on_after_batch_transfer``;
* ``label``: int64 [B], one class per image (classification);
* ``mask``: one class index per pixel (segmentation): uint8 [B, H, W] out of the loader (as
  cached), int64 [B, H, W] after transfer; void pixels hold the data module's ``ignore_index``
  (also what augmentation pads with);
* ``bbox_xyxy``: list of B float32 tensors [Mi, 4], pixel ``x1, y1, x2, y2`` in the image as it
  is in the batch (after resizing and augmentation);
* ``bbox_label``: list of B int64 tensors [Mi], the class of each box (detection);
* ``path``: list of B str, the source of each image (predict batches: ``image`` and ``path``);
* ``index``: int64 [B], each image's row in its split's cache, only in training batches of a
  data module whose augmentation is a function of the image (``flip_mode: alternating``).
"""

from __future__ import annotations

from typing import Any

IMAGE = "image"
LABEL = "label"
MASK = "mask"
BBOX_XYXY = "bbox_xyxy"
BBOX_LABEL = "bbox_label"
PATH = "path"
INDEX = "index"

#: a batch: the keys above (only those the data has) to tensors or lists.
Batch = dict[str, Any]
