"""ClassificationTask paths the CLI tests do not reach: auxiliary heads, linear probing."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer

from visionsuite.data import CIFAR10DataModule
from visionsuite.tasks import ClassificationTask


def _trainer(tmp_path: Path) -> Trainer:
    return Trainer(accelerator="cpu", max_steps=3, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))


def test_googlenet_auxiliary_losses_train(data_root: Path, tmp_path: Path) -> None:
    """In training GoogLeNet returns (main, aux1, aux2); the task adds the weighted auxiliary losses."""
    task = ClassificationTask(backbone="googlenet", num_classes=10, in_chans=3,
                              backbone_options={"aux_logits": True}, optimizer="sgd", lr=0.01)
    dm = CIFAR10DataModule(data_dir=str(data_root), batch_size=8, train_subset=24, val_subset=8, test_subset=8)
    dm.setup("fit")
    batch = dm.transform_batch(next(iter(dm.train_dataloader())), train=False)
    x, y = batch["image"], batch["label"]
    task.train()
    main, *aux = task.model(x)
    assert len(aux) == 2
    task.eval()
    assert task(x).shape == (8, 10)  # eval: main logits only
    task.train()  # Lightning keeps the mode a module was left in
    before = {k: v.detach().clone() for k, v in task.model.named_parameters() if "aux" in k}
    _trainer(tmp_path).fit(task, datamodule=dm)
    after = dict(task.model.named_parameters())
    assert any(not torch.equal(before[k], after[k]) for k in before), "auxiliary heads received no gradient"


def test_freeze_backbone_trains_only_the_head(data_root: Path, tmp_path: Path) -> None:
    task = ClassificationTask(backbone="resnet18_cifar", num_classes=10, in_chans=3, freeze_backbone=True,
                              optimizer="sgd", lr=0.1)
    dm = CIFAR10DataModule(data_dir=str(data_root), batch_size=8, train_subset=24, val_subset=8, test_subset=8)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    _trainer(tmp_path).fit(task, datamodule=dm)
    after = task.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), changed  # BN statistics stay too
