"""The two summary figures of a detection test: precision-recall curves per class at IoU 0.5,
and the detection confusion matrix (drawn by :func:`visionsuite.outputs.figures.confusion_figure`,
the classification task's, with a "background" class added on both axes).

Their data come from :mod:`visionsuite.models.detection.confusion`; here they are only drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from visionsuite.outputs.figures import confusion_figure, new_figure

#: most classes drawn in the precision-recall figure (the ones with the most test boxes).
MAX_CURVES = 10
BACKGROUND = "background"
#: line styles and markers cycled over the curves, so classes differ in greyscale print too, not by
#: colour only: the markers alone tell :data:`MAX_CURVES` classes apart, the styles add a second cue.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def top_classes(support: Mapping[int, int], classes: Sequence[int], top: int = MAX_CURVES) -> list[int]:
    """The ``top`` of ``classes`` with the most true boxes (``support``), ties by class index."""
    return sorted(classes, key=lambda c: (-support.get(c, 0), c))[:top]


def pr_curves_figure(
    curves: Mapping[int, tuple[Tensor, float]],
    names: Sequence[str],
    support: Mapping[int, int],
    top: int = MAX_CURVES,
) -> Figure:
    """Precision against recall at IoU 0.5, one curve per class with the most test boxes (at most
    ``top``), each labelled with its AP@.5 and box count, and the mean curve of every class with
    test boxes in bold (its area is mAP@.5). Each curve has its own line style and marker as well as
    colour. ``curves``: class → (precision at 101 recall points, AP@.5)."""
    fig = new_figure(8.0, 5.0)
    ax = fig.subplots()
    shown = top_classes(support, list(curves), top)
    for rank, cls in enumerate(shown):
        precision, ap = curves[cls]
        recall = torch.linspace(0, 1, len(precision))
        name = names[cls] if cls < len(names) else f"class{cls}"
        label = f"{name}  AP@.5 {ap:.3f} ({support.get(cls, 0)} boxes)"
        style, marker = LINE_STYLES[rank % len(LINE_STYLES)], MARKERS[rank % len(MARKERS)]
        ax.plot(recall.numpy(), precision.cpu().numpy(), linewidth=1.2, label=label, linestyle=style, marker=marker,
                markevery=(rank % 5 * 2, 10), markersize=4)  # fmt: skip  staggered, so markers of equal curves show
    if curves:
        mean = torch.stack([p.cpu() for p, _ in curves.values()]).mean(0)
        ax.plot(torch.linspace(0, 1, len(mean)).numpy(), mean.numpy(), linewidth=3, color="black",
                label=f"all {len(curves)} classes  mAP@.5 {float(mean.mean()):.3f}")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    more = f" (the {len(shown)} of {len(curves)} classes with the most test boxes)" if len(shown) < len(curves) else ""
    ax.set_title(f"precision-recall at IoU 0.5, COCO's 101-point interpolation{more}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.62, bottom=0.11, top=0.92)
    return fig


def detection_confusion_figure(
    matrix: Tensor, names: Sequence[str], score_thresh: float, iou_thresh: float = 0.5
) -> Figure:
    """The ``[K + 1, K + 1]`` matrix of :class:`~visionsuite.models.detection.confusion.DetectionConfusionMatrix`
    with names on the axes and counts in the cells; classes with no count in their row or column
    are left out (COCO's 80 would not be readable), the background kept."""
    counts = matrix.detach().cpu()
    k = counts.shape[0] - 1
    used = (counts[:k].sum(1) + counts[:, :k].sum(0)) > 0
    keep = [i for i in range(k) if used[i]] or list(range(k))
    index = torch.tensor([*keep, k])
    labels = [names[i] if i < len(names) else f"class{i}" for i in keep] + [BACKGROUND]
    fig = confusion_figure(counts[index][:, index], labels)
    ax = fig.axes[0]
    ax.set_ylabel(f"true ({BACKGROUND}: false positives)")
    ax.set_xlabel(f"predicted ({BACKGROUND}: missed boxes)")
    matched = int(counts[:k, :k].diag().sum())
    boxes = int(counts[:k].sum())
    ax.set_title(
        f"detections scoring > {score_thresh:g}, matched at IoU ≥ {iou_thresh:g}: "
        f"{matched} of {boxes} boxes found with their class, {int(counts[k].sum())} false positives", fontsize=8,
    )  # fmt: skip
    return fig


def test_summary_figures(results: Mapping[str, Tensor], names: Sequence[str], score_thresh: float) -> dict[str, Figure]:
    """``test/confusion_matrix`` and ``test/pr_curves`` from a detection task's test
    ``stage_results`` (the confusion counts, ``test/precision_50`` and ``test/classes``); the
    curves' classes are ranked by their true boxes, the confusion matrix's row sums."""
    from visionsuite.models.detection.confusion import class_curves

    pictures: dict[str, Figure] = {}
    confusion = results.get("test/confusion_matrix")
    if confusion is None:
        return pictures
    pictures["test/confusion_matrix"] = detection_confusion_figure(confusion, names, score_thresh)
    support = dict(enumerate(int(n) for n in confusion[:-1].sum(1).tolist()))
    curves = class_curves(results.get("test/precision_50"), results.get("test/classes"))
    if curves:
        pictures["test/pr_curves"] = pr_curves_figure(curves, names, support)
    return pictures
