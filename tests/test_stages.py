"""One freezing and per-stage learning-rate mechanism for every task (``frozen_stages``,
``backbone_lr_mult``, ``stage_lr_decay``, ``unfreeze_at`` of :class:`BaseTask`): the first stages
keep their weights and batch-norm statistics through training, the backward stops above them,
and classification, segmentation and detection freeze and rate the same backbone identically."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn

from visionsuite.errors import ConfigError
from visionsuite.tasks import (
    AutoencoderTask,
    ClassificationTask,
    DetectionTask,
    SegmentationTask,
)

MODELS = [
    ("smp:Unet", {"encoder": "tu-tf_efficientnet_lite0", "decoder_channels": [32, 16, 16, 8, 8]}),
    ("unet:resnet18", {}),
    ("segnet", {"encoder": "vgg11_bn"}),
    ("unet", {"depth": 2, "base_width": 8}),
]


def _seg(model: str, options: dict, frozen: int, **more: Any) -> SegmentationTask:
    return SegmentationTask(model=model, num_classes=3, ignore_index=3, model_options=options, optimizer="adamw",
                            lr=0.01, frozen_stages=frozen, **more)  # fmt: skip


def _ids(modules: list[nn.Module]) -> set[int]:
    return {id(t) for m in modules for t in [*m.parameters(), *m.buffers()]}


def test_lite0_stages_end_at_its_feature_maps() -> None:
    """smp's tu- encoder is cut after each timm feature module: stem + blocks.0 at stride 2, …"""
    task = _seg(*MODELS[0], frozen=0)
    groups, timm_model = task.stage_groups(), task.trunk().model
    assert list(groups) == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert groups["stage1"] == [timm_model.conv_stem, timm_model.bn1, timm_model.blocks[0]]
    assert [g[-1] for g in groups.values()] == [timm_model.blocks[i] for i in (0, 1, 2, 4, 6)]


@pytest.mark.parametrize(("model", "options"), MODELS, ids=[m for m, _ in MODELS])
def test_frozen_stages_keep_weights_and_statistics_and_stop_the_backward(model: str, options: dict) -> None:
    frozen = 2
    task = _seg(model, options, frozen)
    groups = list(task.stage_groups().values())
    frozen_ids, following_ids = _ids([m for g in groups[:frozen] for m in g]), _ids(groups[frozen])
    # the mechanism: the last frozen stage's output needs no gradient, so nothing below it runs backward
    # (every layer of the last frozen stage: SegNet's encoder calls its blocks' layers, not the blocks)
    needs_grad: list[bool] = []
    for layer in groups[frozen - 1][-1].modules():
        layer.register_forward_hook(
            lambda _m, _i, out: needs_grad.append(out.requires_grad) if isinstance(out, torch.Tensor) else None
        )
    optimizer = task.make_optimizer(task.optimizer_params())
    tensors = {id(t): t for t in [*task.parameters(), *task.buffers()]}
    before = {i: t.clone() for i, t in tensors.items()}
    norms = [m for g in groups[:frozen] for mod in g for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in norms)  # frozen as built, before any train() call
    task.train()  # and frozen norms stay in eval mode through it
    assert all(not m.training for m in norms)
    gen = torch.Generator().manual_seed(0)
    image, mask = torch.randn(2, 3, 64, 64, generator=gen), torch.randint(0, 3, (2, 64, 64), generator=gen)
    task.criterion(task(image), mask).backward()
    optimizer.step()
    changed = {i for i, t in tensors.items() if not torch.equal(before[i], t)}
    assert needs_grad and not any(needs_grad)
    assert not changed & frozen_ids, "a frozen stage changed"
    assert changed & following_ids, "the first trained stage did not change"


def test_a_frozen_task_reloads_its_own_state_dict_strictly() -> None:
    """The frozen batch norms' statistics travel in the checkpoint (random ones here, so a
    checkpoint without them would give another output)."""
    task = _seg(*MODELS[0], frozen=3)
    gen = torch.Generator().manual_seed(0)
    for name, buffer in task.model.encoder.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
    again = _seg(*MODELS[0], frozen=3)
    again.load_state_dict(task.state_dict(), strict=True)
    task.eval(), again.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(task(x), again(x))


def test_a_checkpoint_of_the_earlier_frozen_batch_norm_modules_loads_strictly() -> None:
    """Segmentation froze with timm's FrozenBatchNorm2d before (no ``num_batches_tracked``):
    its checkpoints still load, statistics included."""
    old = _seg(*MODELS[0], frozen=0)
    timm_model = old.trunk().model
    timm_model.bn1 = freeze_batch_norm_2d(timm_model.bn1)
    timm_model.bn1.running_var.fill_(2.5)
    new = _seg(*MODELS[0], frozen=0, frozen_encoder_stages=1)  # the old option name is still read
    assert new.hparams.frozen_stages == 1 and not new.trunk().model.conv_stem.weight.requires_grad
    new.load_state_dict(old.state_dict(), strict=True)
    assert torch.equal(new.trunk().model.bn1.running_var, timm_model.bn1.running_var)


def test_the_frozen_flag_trains_exactly_as_frozen_batch_norm_modules_would() -> None:
    """Why the flag replaced ``FrozenBatchNorm2d`` without changing a recipe's numbers: the same
    model frozen both ways gives the same training-mode outputs and, after two AdamW steps, the
    same weights (the time per step is in ``benchmarks/results/frozen_norms.md``)."""

    def trained(convert: bool) -> tuple[SegmentationTask, list[torch.Tensor]]:
        torch.manual_seed(0)
        task = _seg(*MODELS[0], frozen=3)
        if convert:
            for name, child in list(task.named_modules()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm) and getattr(child, "_vs_frozen", False):
                    parent, _, attr = name.rpartition(".")
                    setattr(task.get_submodule(parent), attr, freeze_batch_norm_2d(child))
        task.train()
        optimizer = task.make_optimizer(task.optimizer_params())
        gen, outputs = torch.Generator().manual_seed(1), []
        for _ in range(2):
            image, mask = torch.randn(2, 3, 64, 64, generator=gen), torch.randint(0, 3, (2, 64, 64), generator=gen)
            out = task(image)
            task.criterion(out, mask).backward()
            optimizer.step()
            optimizer.zero_grad()
            outputs.append(out.detach())
        return task, outputs

    flagged, flag_out = trained(False)
    converted, frozen_out = trained(True)
    assert any("FrozenBatchNorm" in type(m).__name__ for m in converted.modules())  # two different mechanisms
    assert not any("FrozenBatchNorm" in type(m).__name__ for m in flagged.modules())
    for a, b in zip(flag_out, frozen_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    ours, theirs = flagged.state_dict(), converted.state_dict()  # weights and statistics, by the same names
    assert set(theirs) <= set(ours) and len(theirs) > 100
    for name, value in theirs.items():
        torch.testing.assert_close(ours[name], value, rtol=1e-5, atol=1e-6, msg=name)


def _backbone_view(task: Any) -> nn.Module:
    """The resnet18 stages a task holds: the backbone's, the encoder's, the FPN body's."""
    return task.trunk().stages


@pytest.mark.parametrize("head", ["fcos", "fasterrcnn", "yolo"])
def test_detection_freezes_and_rates_the_same_parameters_as_classification_and_segmentation(head: str) -> None:
    options = {"frozen_stages": 2, "backbone_lr_mult": 0.1, "stage_lr_decay": 0.5, "lr": 0.01}
    tasks = {
        "classification": ClassificationTask(backbone="resnet18", num_classes=10, **options),
        "segmentation": SegmentationTask(model="unet:resnet18", num_classes=3, **options),
        "detection": DetectionTask(head=head, backbone="resnet18", num_classes=3, image_size=64, **options),
    }
    frozen, groups = {}, {}
    for family, task in tasks.items():
        named = dict(_backbone_view(task).named_parameters())
        frozen[family] = {n: p.requires_grad for n, p in named.items()}
        name_of = {id(p): n for n, p in named.items()}
        groups[family] = [(g["name"], g["lr"], sorted(name_of[id(p)] for p in g["params"]))
                          for g in task.optimizer_params() if g["name"] != "head"]  # fmt: skip
    assert frozen["detection"] == frozen["classification"] == frozen["segmentation"]
    assert sorted(n for n, trains in frozen["detection"].items() if not trains) == sorted(
        n for n in frozen["detection"] if n.startswith(("stem.", "layer1.")))
    assert groups["detection"] == groups["classification"] == groups["segmentation"]
    assert [(name, lr) for name, lr, _ in groups["detection"]] == [
        ("stem", pytest.approx(0.01 * 0.1 * 0.5**4)), ("layer1", pytest.approx(0.01 * 0.1 * 0.5**3)),
        ("layer2", pytest.approx(0.01 * 0.1 * 0.5**2)), ("layer3", pytest.approx(0.01 * 0.1 * 0.5)),
        ("layer4", pytest.approx(0.01 * 0.1)),
    ]  # fmt: skip
    detector = tasks["detection"]
    head_group = next(g for g in detector.optimizer_params() if g["name"] == "head")
    trunk = {id(p) for p in detector.trunk().parameters()}
    assert head_group["lr"] == 0.01 and not any(id(p) in trunk for p in head_group["params"])
    assert sum(len(g["params"]) for g in detector.optimizer_params()) == len(list(detector.parameters()))


def test_scheduled_unfreezing_of_a_detector_backbone_and_what_it_leaves_alone() -> None:
    task = DetectionTask(head="fcos", backbone="resnet18", num_classes=3, image_size=64, frozen_stages=2,
                         unfreeze_at={1: ["layer1"]})  # fmt: skip
    groups = task.stage_groups()
    trains = lambda name: all(p.requires_grad for m in groups[name] for p in m.parameters())  # noqa: E731
    assert not trains("stem") and not trains("layer1") and trains("layer2")
    task.stage_schedule.apply(groups, 1, training=True)
    assert not trains("stem") and trains("layer1")
    bn = next(m for m in groups["layer1"][0].modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.training


def test_a_whole_torchvision_detector_names_its_resnet_stages() -> None:
    """The ``IntermediateLayerGetter`` body is cut after each returned layer; torchvision's own
    freezing (with weights) is never undone, ``frozen_stages`` freezes on top of it."""
    task = DetectionTask(detector="fasterrcnn_resnet50_fpn", num_classes=3, frozen_stages=2)
    body = task.trunk()
    assert list(task.stage_groups()) == ["layer1", "layer2", "layer3", "layer4"]
    assert task.stage_groups()["layer1"] == [body.conv1, body.bn1, body.relu, body.maxpool, body.layer1]
    trains = {n.split(".")[0] for n, p in body.named_parameters() if p.requires_grad}
    assert trains == {"layer3", "layer4"}


def test_a_task_without_a_trunk_refuses_the_fine_tuning_options() -> None:
    for option in ({"frozen_stages": 1}, {"backbone_lr_mult": 0.1}):
        with pytest.raises(ConfigError, match="AutoencoderTask has no pretrained trunk") as info:
            AutoencoderTask(in_chans=1, img_size=28, latent_dim=8, widths=[8, 16], **option)
        assert "\n" not in str(info.value)


def test_an_encoder_without_stages_and_too_many_stages_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="ResNetEncoder trunk names no stages"):
        _seg("smp:Unet", {"encoder": "resnet18"}, frozen=1)
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\] for this trunk .*got 6"):
        _seg(*MODELS[0], frozen=6)
    with pytest.raises(ConfigError, match=r"frozen_stages must be an integer >= 0, got -1"):
        _seg(*MODELS[0], frozen=-1)
    with pytest.raises(ConfigError, match="give frozen_stages only"):
        _seg(*MODELS[0], frozen=2, frozen_encoder_stages=1)
