"""The one figure module: every picture a user opens (sample grids, confusion matrices, mask
overlays with their class legend, explanations, generative grids) is drawn here.

Drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas directly: no pyplot, so no
global backend state is changed and nothing is kept alive by pyplot's figure manager. Text stays
readable whatever the image size because the figure is scaled to the images (a 28-pixel image
gets a cell of :data:`MIN_CELL` inches), never the font.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

#: rendering resolution of saved figures (``write_png`` saves at this dpi).
DPI = 100
#: smallest and largest cell width, in inches: small images are enlarged, large ones shown whole.
MIN_CELL, MAX_CELL = 1.6, 6.0


def new_figure(width: float, height: float) -> Figure:
    """A figure rendered by Agg, independent of pyplot."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def sample_grid(images: Tensor, labels: Tensor, probs: Tensor, names: Sequence[str]) -> Figure:
    """Test images each titled with its prediction and that class's probability (``✓ Coat 0.93``);
    a wrong one is marked ``✗`` in red with the true class under it, so right and wrong differ in
    greyscale print too, not by colour only.

    ``probs`` is [N, K] class probabilities (or [N] predicted indices, drawn without a score).
    """
    n = len(images)
    cols = max(1, min(8, n))
    rows = max(1, math.ceil(n / cols))
    h, w = images.shape[-2:] if n else (1, 1)
    cw, ch = _cell_inches(int(h), int(w))
    title_h = 0.42  # two lines of 7-pt text over each cell
    fig = new_figure(cols * (cw + 0.1), rows * (ch + title_h) + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if probs.ndim == 2:
        scores, preds = probs.detach().cpu().max(1)
        score_list: list[float | None] = scores.tolist()
    else:
        preds, score_list = probs.detach().cpu(), [None] * n

    def name(k: int) -> str:
        return str(names[k]) if k < len(names) else f"class{k}"

    for ax, img, y, p, score in zip(axes.flat, images.detach().cpu(), labels.tolist(), preds.tolist(), score_list, strict=False):
        _show(ax, img)
        ax.axis("on")
        shown = name(p) + (f" {score:.2f}" if score is not None else "")
        title = f"\u2713 {shown}" if p == y else f"\u2717 {shown}\ntrue: {name(y)}"
        ax.set_title(title, fontsize=7, color="#1a7f37" if p == y else "#cf222e")
    right = sum(int(p == y) for p, y in zip(preds.tolist(), labels.tolist(), strict=False))
    fig.suptitle(f"test samples: prediction and its probability ({right}/{n} right; \u2717 wrong, with the truth)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def confusion_figure(matrix: Tensor, names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (rows: truth) with raw counts written in each cell."""
    counts = matrix.detach().cpu().float()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(names)
    size = max(4.0, 0.55 * k)
    fig = new_figure(size, size)
    ax = fig.subplots()
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), [str(n) for n in names], rotation=90, fontsize=7)
    ax.set_yticks(range(k), [str(n) for n in names], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    accuracy = counts.diag().sum() / counts.sum().clamp(min=1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.2%})", fontsize=9)
    return fig


def denormalize(images: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """Undo the data module's normalisation, for display (unchanged when it has none)."""
    if mean is None or std is None:
        return images
    mean_t = torch.as_tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return images * std_t + mean_t


#: the colour map of saliency and Grad-CAM maps: perceptually uniform with a luminance that rises
#: with the value (unlike ``jet``), so a map printed in greyscale still reads dark = low, bright = high.
HEAT_MAP = "inferno"


def overlay_maps(images: Tensor, maps: Tensor) -> Tensor:
    """Each image (grey or RGB, [0, 1]) beside its map coloured by :data:`HEAT_MAP`: [N, 2, 3, H, W]."""
    from matplotlib import colormaps

    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    heat = torch.from_numpy(colormaps[HEAT_MAP](maps.numpy())[..., :3]).permute(0, 3, 1, 2).float()
    return torch.stack([rgb, 0.5 * rgb + 0.5 * heat], dim=1)




def _cell_inches(height: int, width: int, min_cell: float = MIN_CELL) -> tuple[float, float]:
    """Width and height in inches of one image cell: its pixel size at :data:`DPI`, enlarged to at
    least ``min_cell`` and shrunk to at most :data:`MAX_CELL` wide, aspect kept."""
    w = min(max(MAX_CELL, min_cell), max(min_cell, width / DPI))
    return w, w * height / max(width, 1)


def _show(ax: Any, image: Tensor) -> None:
    """One [C, H, W] image in [0, 1] (C = 1 or 3) or a [H, W] map, without ticks or frame."""
    pic = image.detach().float().cpu()
    if pic.ndim == 3:
        pic = pic.permute(1, 2, 0).clamp(0, 1)
        gray = pic.shape[-1] == 1
        ax.imshow(pic[..., 0].numpy() if gray else pic.numpy(), cmap="gray" if gray else None, vmin=0, vmax=1,
                  interpolation="nearest")  # fmt: skip
    else:
        ax.imshow(pic.numpy(), cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def labelled_grid(
    rows: Sequence[Sequence[Tensor]],
    column_titles: Sequence[str] = (),
    row_titles: Sequence[str] = (),
    *,
    title: str | None = None,
    legend: Sequence[tuple[str, Sequence[int]]] = (),
    min_cell: float = MIN_CELL,
) -> Figure:
    """A grid of images (``rows[i][j]``: [C, H, W] in [0, 1]) with a title over each column, a
    label beside each row, an overall title and a legend of ``(name, rgb)`` swatches below.

    The one layout of every labelled picture: panels are titled (image / ground truth /
    prediction, input / reconstruction, the method shown), so a figure explains itself.
    """
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=1)
    h, w = rows[0][0].shape[-2:] if n_rows else (1, 1)
    cw, ch = _cell_inches(int(h), int(w), min_cell)
    label_w = 1.3 if row_titles else 0.0
    legend_rows = math.ceil(len(legend) / max(1, int(n_cols * cw / 1.5))) if legend else 0
    head = 0.3 * bool(column_titles) + 0.35 * bool(title) + 0.05
    foot = 0.3 * legend_rows + 0.05
    gap = 0.06  # inches between cells
    fig_w, fig_h = label_w + n_cols * (cw + gap), head + n_rows * (ch + gap) + foot
    fig = new_figure(fig_w, fig_h)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={
        "left": label_w / fig_w, "right": 1 - 0.02 / fig_w, "top": 1 - head / fig_h, "bottom": foot / fig_h,
        "wspace": gap / cw, "hspace": gap / ch})  # fmt: skip
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            if j < len(row):
                _show(ax, row[j])
            else:
                ax.axis("off")
            if i == 0 and j < len(column_titles):
                ax.set_title(column_titles[j], fontsize=9)
        if i < len(row_titles):
            axes[i][0].set_ylabel(row_titles[i], fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    if title:
        fig.suptitle(title, fontsize=10)
    if legend:
        handles = [Patch(facecolor=[c / 255 for c in rgb], edgecolor="black", linewidth=0.4, label=name)
                   for name, rgb in legend]  # fmt: skip
        fig.legend(handles=handles, loc="lower center", ncol=max(1, math.ceil(len(legend) / legend_rows)),
                   fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    return fig


def titled_picture(image: Tensor, title: str, *, min_width: float = 5.0) -> Figure:
    """One picture (a grid of samples, a manifold) under a title, at least ``min_width`` inches
    wide so the small images in a grid stay visible."""
    return labelled_grid([[image]], title=title, min_cell=min_width)


def class_legend(names: Sequence[str], palette: Sequence[Sequence[int]], masks: Sequence[Tensor]) -> list[tuple[str, Sequence[int]]]:
    """``(name, colour)`` of each class that occurs in ``masks`` (classes absent from the picture
    are left out, so the legend names what is drawn)."""
    present: set[int] = set()
    for m in masks:
        present |= {int(v) for v in torch.unique(m.cpu()).tolist()}
    return [(str(names[k]) if k < len(names) else f"class{k}", palette[k]) for k in sorted(present) if 0 <= k < len(palette)]


def explanation_figure(images: Tensor, maps: dict[str, Tensor], captions: Sequence[str], *, title: str | None = None) -> Figure:
    """Each image beside its maps (saliency, Grad-CAM …), one row per image labelled with its
    predicted class and score (``captions``); maps are drawn with :data:`HEAT_MAP` over the image
    (bright = where the class score responds most). ``title`` goes above the column titles."""
    rows = []
    for i in range(len(images)):
        rows.append([images[i], *(overlay_maps(images[i : i + 1], m[i : i + 1].cpu())[0, 1] for m in maps.values())])
    return labelled_grid(rows, ["image", *(f"{name} (bright = high)" for name in maps)], captions, title=title)


def predicted_captions(probs: Tensor, names: list[str]) -> list[str]:
    """Per image its predicted class and that class's probability, on two lines (``coat`` / ``0.93``)."""
    score, index = probs.max(-1)
    return [f"{names[i] if i < len(names) else i}\n{s:.2f}" for i, s in zip(index.tolist(), score.tolist())]
