"""``SegmentationTask.frozen_encoder_stages``: the first stages keep their weights and batch-norm
statistics through training, and the backward stops above them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import encoder_stages
from visionsuite.tasks import SegmentationTask

MODELS = [
    ("smp:Unet", {"encoder": "tu-tf_efficientnet_lite0", "decoder_channels": [32, 16, 16, 8, 8]}),
    ("unet:resnet18", {}),
    ("segnet", {"encoder": "vgg11_bn"}),
    ("unet", {"depth": 2, "base_width": 8}),
]


def _task(model: str, options: dict, frozen: int) -> SegmentationTask:
    return SegmentationTask(model=model, num_classes=3, ignore_index=3, model_options=options, optimizer="adamw",
                            lr=0.01, frozen_encoder_stages=frozen)  # fmt: skip


def test_lite0_stages_end_at_its_feature_maps() -> None:
    """smp's tu- encoder is cut after each timm feature module: stem + blocks.0 at stride 2, …"""
    groups = encoder_stages(_task(*MODELS[0], frozen=0).model.encoder)
    assert groups[0] == ["model.conv_stem", "model.bn1", "model.blocks.0"]
    assert [g[-1] for g in groups] == [f"model.blocks.{i}" for i in (0, 1, 2, 4, 6)]


@pytest.mark.parametrize(("model", "options"), MODELS, ids=[m for m, _ in MODELS])
def test_frozen_stages_keep_weights_and_statistics_and_stop_the_backward(model: str, options: dict) -> None:
    frozen = 2
    task = _task(model, options, frozen)
    encoder = task.model.encoder
    groups = encoder_stages(encoder)
    names = tuple(f"{n}." for g in groups[:frozen] for n in g)
    # the mechanism: the last frozen stage's output needs no gradient, so nothing below it runs backward
    # (every layer of the last frozen stage: SegNet's encoder calls its blocks' layers, not the blocks)
    needs_grad: list[bool] = []
    for layer in encoder.get_submodule(groups[frozen - 1][-1]).modules():
        layer.register_forward_hook(
            lambda _m, _i, out: needs_grad.append(out.requires_grad) if isinstance(out, torch.Tensor) else None
        )
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for n, m in encoder.named_modules() if n.startswith(names))  # fmt: skip
    optimizer = task.make_optimizer(task.optimizer_params())
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    task.train()
    gen = torch.Generator().manual_seed(0)
    image, mask = torch.randn(2, 3, 64, 64, generator=gen), torch.randint(0, 3, (2, 64, 64), generator=gen)
    task.criterion(task(image), mask).backward()
    optimizer.step()
    after = encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert needs_grad and not any(needs_grad)
    assert not [k for k in changed if k.startswith(names)], "a frozen stage changed"
    following = tuple(f"{n}." for n in groups[frozen])
    assert [k for k in changed if k.startswith(following)], "the first trained stage did not change"


def test_a_frozen_task_reloads_its_own_state_dict_strictly() -> None:
    """The frozen batch norms' statistics travel in the checkpoint (random ones here, so a
    checkpoint without them would give another output)."""
    task = _task(*MODELS[0], frozen=3)
    gen = torch.Generator().manual_seed(0)
    for name, buffer in task.model.encoder.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
    again = _task(*MODELS[0], frozen=3)
    again.load_state_dict(task.state_dict(), strict=True)
    task.eval(), again.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(task(x), again(x))


def test_an_encoder_without_stages_and_too_many_stages_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="ResNetEncoder encoder exposes no stages"):
        _task("smp:Unet", {"encoder": "resnet18"}, frozen=1)
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\] for this encoder, got 6"):
        _task(*MODELS[0], frozen=6)
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\] for this encoder, got -1"):
        _task(*MODELS[0], frozen=-1)
