"""Sample-prediction grid and confusion matrix, as PNG files and as images in the logger.

Each figure is saved under ``<log_dir>/images/`` (works with any logger, or none) and sent to
W&B (``log_image``) or TensorBoard (``add_figure``) when one of those loggers is active.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger  # noqa: E402
from torch import Tensor  # noqa: E402


class ClassificationImageLogger(Callback):
    """At the end of ``test``, draw the task's ``sample_batch`` and ``confusion_matrix`` (rank 0 only)."""

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "images"  # a collective call under DDP
        if not trainer.is_global_zero:
            return
        names = _class_names(trainer, pl_module)
        figures = {}
        sample = getattr(pl_module, "sample_batch", None)
        if sample is not None:
            figures["test/samples"] = sample_grid(_denormalize(trainer, sample["images"]), sample["labels"], sample["preds"], names)
        confusion = getattr(pl_module, "confusion_matrix", None)
        if confusion is not None:
            figures["test/confusion_matrix"] = confusion_figure(confusion, names)
        out_dir.mkdir(parents=True, exist_ok=True)
        for key, fig in figures.items():
            path = out_dir / f"{key.replace('/', '_')}.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image(key=key, images=[str(path)])
                elif isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure(key, fig, global_step=trainer.global_step)
            plt.close(fig)


def sample_grid(images: Tensor, labels: Tensor, preds: Tensor, names: list[str]) -> plt.Figure:
    """Images with ``pred (true)`` titles, green when right and red when wrong."""
    n = len(images)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, y, p in zip(axes.flat, images.cpu(), labels.tolist(), preds.tolist(), strict=False):
        pic = img.permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(pic.squeeze(-1) if pic.shape[-1] == 1 else pic, cmap="gray" if pic.shape[-1] == 1 else None)
        ax.set_title(f"{names[p]}\n({names[y]})", fontsize=7, color="green" if p == y else "red")
    fig.suptitle("prediction (truth)", fontsize=9)
    return fig


def confusion_figure(matrix: Tensor, names: list[str]) -> plt.Figure:
    """Row-normalised confusion matrix (rows: truth) with raw counts written in each cell."""
    counts = matrix.float()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(names)
    size = max(4.0, 0.55 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
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


def _class_names(trainer: Trainer, pl_module: LightningModule) -> list[str]:
    names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
    return list(names) if names else [str(i) for i in range(pl_module.hparams.num_classes)]


def _denormalize(trainer: Trainer, images: Tensor) -> Tensor:
    dm = trainer.datamodule
    mean, std = getattr(dm, "mean", None), getattr(dm, "std", None)
    if mean is None or std is None:
        return images
    mean_t = torch.as_tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=images.device).view(1, -1, 1, 1)
    return images * std_t + mean_t
