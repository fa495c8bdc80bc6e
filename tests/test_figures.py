"""One figures hook: the task returns its pictures, one callback writes and logs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from visionsuite.data import FashionMNISTDataModule
from visionsuite.outputs import FigureLogger
from visionsuite.tasks import ClassificationTask


class _ValPicture(ClassificationTask):
    """Returns the first validation image as a tensor after every validation."""

    def figures(self, stage: str) -> dict[str, Any]:
        if stage != "val":
            return super().figures(stage)
        batch, _ = self.first_batches["val"]
        return {"val/first": batch["image"][0] * 0 + torch.linspace(0, 1, 28).view(1, 1, 28)}


def _fit_and_test(task: ClassificationTask, data_root: Path, root: Path) -> Path:
    dm = FashionMNISTDataModule(data_dir=str(data_root), batch_size=32, train_subset=64, val_subset=32,
                                test_subset=40, augment=False)
    logger = CSVLogger(str(root), name="csv")
    trainer = Trainer(accelerator="cpu", max_epochs=2, logger=logger, callbacks=[FigureLogger()],
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
                      default_root_dir=str(root))
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return Path(logger.log_dir) / "images"


def test_figures_hook_writes_pngs_for_val_and_test(data_root: Path, mirror: Path, tmp_path: Path) -> None:
    task = _ValPicture(backbone="lenet5", num_classes=10, in_chans=1, num_sample_images=16)
    images = _fit_and_test(task, data_root, tmp_path)
    names = sorted(p.name for p in images.glob("*.png"))
    # one picture per validation (the sanity check's is skipped), named by step; test's once; the run's curves
    assert names == ["curves.png", "test_confusion_matrix.png", "test_samples.png", "val_first_step0000002.png",
                     "val_first_step0000004.png"]
    ramp = np.asarray(Image.open(images / "val_first_step0000004.png"))
    assert ramp.shape == (28, 28) and ramp[0, 0] == 0 and ramp[0, -1] == 255  # the tensor, pixel for pixel
    for name in ("test_confusion_matrix.png", "test_samples.png"):
        assert np.asarray(Image.open(images / name)).std() > 10  # a drawing, not a blank canvas


def test_drawing_leaves_matplotlib_global_state_alone() -> None:
    """Importing the callback and drawing and saving a figure select no backend (pyplot itself is
    imported by torchmetrics, but picks its backend only when first used)."""
    code = (
        "import matplotlib, torch, tempfile, pathlib\n"
        "import visionsuite.outputs, visionsuite.outputs.figures as f\n"
        "from visionsuite.outputs.images import write_png\n"
        "fig = f.confusion_figure(torch.eye(3) * 5, ['a', 'b', 'c'])\n"
        "write_png(fig, pathlib.Path(tempfile.mkdtemp()) / 'c.png')\n"
        "print(matplotlib.rcParams._get_backend_or_none())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "None"
