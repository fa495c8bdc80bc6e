"""A YOLO-style (YOLOv8) detection head on the library's backbones, registered as head ``yolo``.

The pieces, one module each: :mod:`.neck` (PAN bottom-up path over the FPN), :mod:`.head` (the
decoupled head with distributional box sides), :mod:`.assigner` (task-aligned assignment),
:mod:`.loss` (BCE + CIoU + DFL), :mod:`.boxes` (points, distances, CIoU), :mod:`.model` (the
detector and its inference).

How it differs from the original YOLO (Redmon et al., 2016, "v1"): v1 divides the image into
one S x S grid (7 x 7); each cell regresses B = 2 boxes (centre offsets within the cell and
square-rooted width/height relative to the image) with a confidence each, and one class
distribution per cell, all from fully connected layers, trained with sum-squared errors; the
cell holding an object's centre is responsible for it, and its predictor with the highest IoU
learns the box. Here, as in YOLOv8: several scales (the FPN + PAN levels at strides 8/16/32),
every cell centre a point that predicts one box as four distances to its sides, fully
convolutional; separate (decoupled) classification and box branches; each side a distribution
over ``reg_max`` bins (distribution focal loss) decoded by its expectation; positives chosen
per object by the network's own predictions (task-aligned assignment, top-10 points inside the
box by ``s^0.5 * IoU^6``) instead of by the centre cell; per-class sigmoid scores trained by BCE
against IoU-aware soft targets (no separate objectness); CIoU for the box; NMS per class.
"""

from .assigner import Assignment, TaskAlignedAssigner
from .boxes import anchor_points, ciou
from .loss import YOLOLoss, distribution_focal_loss, expected_distances
from .model import YOLODetector

__all__ = [
    "Assignment",
    "TaskAlignedAssigner",
    "YOLODetector",
    "YOLOLoss",
    "anchor_points",
    "ciou",
    "distribution_focal_loss",
    "expected_distances",
]
