"""Pictures the tasks return from ``figures()``: a sample-prediction grid and a confusion matrix.

Drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas directly: no pyplot, so no
global backend state is changed and nothing is kept alive by pyplot's figure manager.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor


def new_figure(width: float, height: float) -> Figure:
    """A figure rendered by Agg, independent of pyplot."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def sample_grid(images: Tensor, labels: Tensor, preds: Tensor, names: Sequence[str]) -> Figure:
    """Images with ``pred (true)`` titles, green when right and red when wrong."""
    n = len(images)
    cols = max(1, min(8, n))
    rows = max(1, math.ceil(n / cols))
    fig = new_figure(1.6 * cols, 1.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, y, p in zip(axes.flat, images.detach().cpu(), labels.tolist(), preds.tolist(), strict=False):
        pic = img.permute(1, 2, 0).clamp(0, 1).numpy()
        gray = pic.shape[-1] == 1
        ax.imshow(pic.squeeze(-1) if gray else pic, cmap="gray" if gray else None)
        ax.set_title(f"{names[p]}\n({names[y]})", fontsize=7, color="green" if p == y else "red")
    fig.suptitle("prediction (truth)", fontsize=9)
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


def overlay_maps(images: Tensor, maps: Tensor) -> Tensor:
    """Each image (grey or RGB, [0, 1]) beside its map coloured by matplotlib's ``jet``: [N, 2, 3, H, W]."""
    from matplotlib import colormaps

    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    heat = torch.from_numpy(colormaps["jet"](maps.numpy())[..., :3]).permute(0, 3, 1, 2).float()
    return torch.stack([rgb, 0.5 * rgb + 0.5 * heat], dim=1)


