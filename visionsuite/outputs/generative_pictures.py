"""What people look at: sample grids, reconstructions, interpolations, the 2-D latent space and an
animated GIF of training. The grids are uint8 image tensors [3, H, W] (what the GIF and W&B take)
from [0, 1] float images; :func:`reconstruction_figure` is a labelled matplotlib figure. Plots use matplotlib's object API
(``Figure`` + ``FigureCanvasAgg``), never pyplot's global state, so they are safe in a training run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from visionsuite.core.atomic import atomic_path

Decode = Callable[[Tensor], Tensor]  # latents [N, D] → images [N, C, H, W] in [0, 1]
#: one marker shape per class beside tab10's colour, so classes stay apart in greyscale print; 11
#: shapes against 10 colours give a distinct (colour, shape) pair to each of 110 classes.
SCATTER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")


def image_grid(images: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """[N, C, H, W] in [0, 1] → one uint8 [3, H', W'] grid, ``nrow`` images per row."""
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)


def reconstruction_figure(inputs: Tensor, recons: Tensor, title: str, *, input_label: str = "input", per_row: int = 8) -> Any:
    """Inputs above their reconstructions, each row labelled (``input`` / ``reconstruction``,
    ``corrupted input`` for a denoising model), under ``title`` (stage and step)."""
    from visionsuite.outputs.figures import labelled_grid

    rows, labels = [], []
    for start in range(0, len(inputs), per_row):
        rows += [list(inputs[start : start + per_row].float().cpu()), list(recons[start : start + per_row].float().cpu())]
        labels += [input_label, "reconstruction"]
    return labelled_grid(rows, row_titles=labels, title=title, min_cell=1.0)


def interpolation_grid(decode: Decode, z_start: Tensor, z_end: Tensor, steps: int = 10) -> Tensor:
    """One row per pair: images decoded along the straight line between latents ``z_start[i]`` and
    ``z_end[i]`` ([P, D] each), endpoints included."""
    t = torch.linspace(0, 1, steps, device=z_start.device).view(1, -1, 1)
    path = z_start[:, None] * (1 - t) + z_end[:, None] * t  # [P, steps, D]
    with torch.no_grad():
        images = decode(path.flatten(0, 1))
    return image_grid(images, nrow=steps)


def manifold_grid(decode: Decode, n: int = 20, *, device: torch.device | str = "cpu") -> Tensor:
    """The learned 2-D manifold (Kingma & Welling 2014, fig. 4): decode an n x n grid of latents
    placed at the N(0, 1) quantiles of evenly spaced probabilities, so equal areas of the picture
    hold equal prior mass. Rows run from high z₂ (top) to low, columns from low z₁ to high."""
    p = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    q = torch.distributions.Normal(0.0, 1.0).icdf(p)
    z1, z2 = torch.meshgrid(q, q.flip(0), indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1).to(device)
    with torch.no_grad():
        images = decode(z)
    return image_grid(images, nrow=n, padding=0)


def latent_scatter(
    z: Tensor, labels: Tensor, class_names: Sequence[str] | None = None, *, size: float = 6.0, dpi: int = 100, alpha: float = 0.7
) -> Tensor:
    """Scatter of 2-D latent means by class (Kingma & Welling's latent picture), as uint8 [3, H, W];
    drawn by :func:`latent_scatter_figure`."""
    fig = latent_scatter_figure(z, labels, class_names, size=size, dpi=dpi, alpha=alpha)
    fig.canvas.draw()  # an Agg canvas, attached where the figure is made
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).contiguous()


def latent_scatter_figure(
    z: Tensor, labels: Tensor, class_names: Sequence[str] | None = None, *, size: float = 6.0, dpi: int = 100, alpha: float = 0.7
) -> Any:
    """The latent scatter as a matplotlib figure: one point set per class, each with its tab10
    colour *and* its own marker shape (:data:`SCATTER_MARKERS`), named in the legend."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if z.shape[1] != 2:
        raise ValueError(f"latent_scatter needs 2-D latents, got {z.shape[1]}-D")
    fig = Figure(figsize=(size, size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points, classes = z.detach().cpu().numpy(), labels.detach().cpu().numpy()
    cmap = matplotlib.colormaps["tab10"]
    for c in np.unique(classes):
        mask = classes == c
        label = class_names[int(c)] if class_names is not None else str(int(c))
        marker = SCATTER_MARKERS[int(c) % len(SCATTER_MARKERS)]
        ax.scatter(points[mask, 0], points[mask, 1], s=9, color=cmap(int(c) % 10), marker=marker, label=label, alpha=alpha,
                   linewidths=0)  # fmt: skip
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.legend(markerscale=3, fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def save_png(image: Tensor, path: str | os.PathLike[str]) -> Path:
    """Write a uint8 [C, H, W] image as PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        _to_pil(image).save(tmp)
    return path


def save_gif(frames: Sequence[Tensor], path: str | os.PathLike[str], *, duration_ms: int = 400,
             labels: Sequence[str] | None = None) -> Path:  # fmt: skip
    """An animated GIF, looping, one frame per uint8 [C, H, W] grid (e.g. the fixed-noise samples
    of each validation), so a run's progress is one file in its folder. ``labels`` (one per frame,
    e.g. ``epoch 3, step 1290``) are written on a white band under each frame."""
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"save_gif: {len(labels)} label(s) for {len(frames)} frame(s)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [_to_pil(f) for f in frames]
    if labels is not None:
        images = [_labelled(image, label) for image, label in zip(images, labels, strict=True)]
    with atomic_path(path) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False)
    return path


def _labelled(image: Image.Image, label: str) -> Image.Image:
    """``image`` (RGB) above a white band holding ``label`` in black, at a size read at any width."""
    from PIL import ImageDraw

    from visionsuite.outputs.fonts import label_font

    size = max(12, image.width // 24)
    font = label_font(size)
    band = Image.new("RGB", (image.width, image.height + size + 8), "white")
    band.paste(image.convert("RGB"), (0, 0))
    ImageDraw.Draw(band).text((4, image.height + 3), label, fill="black", font=font)
    return band


def _to_pil(image: Tensor) -> Image.Image:
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise ValueError(f"expected a uint8 [C, H, W] image, got {image.dtype} {tuple(image.shape)}")
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
