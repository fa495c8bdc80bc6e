"""The encoder view as other libraries consume it: torchvision's FPN and detectors, tracing, export.

Per-family stride/channel checks live in ``backbone_tester.py`` (every registered name).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.ops import FeaturePyramidNetwork

from visionsuite.backbones import create_backbone, create_encoder
from visionsuite.backbones.fpn import BackboneWithFPN, backbone_with_fpn


def test_torchvision_fpn_runs_on_the_ordered_dict() -> None:
    encoder = create_encoder("resnet18", out_strides=(4, 8, 16, 32)).eval()
    fpn = FeaturePyramidNetwork(encoder.out_channels, 32)
    with torch.no_grad():
        levels = fpn(encoder(torch.randn(1, 3, 64, 64)))
    assert list(levels) == ["stride4", "stride8", "stride16", "stride32"]
    assert [tuple(t.shape[1:]) for t in levels.values()] == [(32, 64 // s, 64 // s) for s in encoder.strides]


@pytest.mark.parametrize(
    ("detector", "name", "strides", "extra"),
    [(FasterRCNN, "resnet18", (4, 8, 16, 32), "maxpool"), (RetinaNet, "mobilenet_v2", (8, 16, 32), "p6p7")],
)
def test_torchvision_detectors_take_the_backbone_as_is(detector, name: str, strides, extra: str) -> None:
    backbone = backbone_with_fpn(name, out_strides=strides, out_channels=64, extra_blocks=extra)
    assert isinstance(backbone, BackboneWithFPN) and backbone.out_channels == 64
    model = detector(backbone, num_classes=3, min_size=96, max_size=96).eval()
    with torch.no_grad():
        levels = backbone(torch.randn(1, 3, 96, 96))
        (found,) = model([torch.rand(3, 96, 96)])
    assert len(levels) == 5  # the anchor generators' default: five levels
    assert set(found) == {"boxes", "scores", "labels"} and found["boxes"].shape[-1] == 4


def test_encoder_options_are_family_specific() -> None:
    with pytest.raises(TypeError, match="return_indices"):
        create_encoder("resnet18_cifar", return_indices=True)
    pooled = create_encoder("vgg11_cifar", out_strides=(2, 4), return_indices=True)
    assert list(pooled(torch.randn(1, 3, 32, 32))) == ["stride2", "stride4"]


def test_create_encoder_has_no_classifier_and_stops_at_the_deepest_stride() -> None:
    full = create_backbone("vgg11_cifar")
    encoder = create_encoder("vgg11_cifar", out_strides=(2, 4, 8))
    assert not [m for m in encoder.modules() if isinstance(m, nn.Linear)]
    assert list(encoder.stages) == ["stage1", "stage2", "stage3"]
    expected = sum(p.numel() for n in ("stage1", "stage2", "stage3") for p in full.stages[n].parameters())
    assert sum(p.numel() for p in encoder.parameters()) == expected


def test_timm_encoder_is_pruned_after_its_deepest_stride() -> None:
    encoder = create_encoder("timm/resnet18", out_strides=(2, 4, 8)).eval()
    full = create_backbone("timm/resnet18").model
    assert not [*encoder.model.layer3.parameters(), *encoder.model.layer4.parameters()]  # timm emptied them
    assert sum(p.numel() for p in encoder.parameters()) < sum(p.numel() for p in full.parameters()) / 5
    with torch.no_grad():
        maps = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(t.shape[1:]) for t in maps.values()] == [(64, 32, 32), (64, 16, 16), (128, 8, 8)]


@pytest.mark.parametrize("name", ["lenet5", "resnet18_cifar", "tv/resnet18"])
def test_tracing_skips_the_input_check(name: str) -> None:
    """The minimum-size check branches in Python on the input's shape; while tracing it must not
    run (the tracer warns that the branch is baked into the graph), yet eager calls still check."""
    model = create_backbone(name, num_classes=3).eval()
    x = torch.randn(2, model.default_input_size[0], 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*is deprecated", category=FutureWarning)
        traced = torch.jit.trace(model, x)
        traced_encoder = torch.jit.trace(model.encoder(), x, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
        eager = model.encoder()(x)
        assert all(torch.equal(t, eager[k]) for k, t in traced_encoder(x).items()) and len(eager) > 1
    if model.min_input_size != (1, 1):
        with pytest.raises(ValueError, match="needs inputs of at least"):
            model(torch.randn(1, x.shape[1], 4, 4))


@pytest.mark.parametrize("name", ["lenet5", "mobilenet_v3_small"])
def test_export_runs_with_the_input_check_present(name: str) -> None:
    model = create_backbone(name, num_classes=3).eval()
    x = torch.randn(2, model.default_input_size[0], 32, 32)
    program = torch.export.export(model, (x,))
    encoder_program = torch.export.export(model.encoder(), (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))
        out = encoder_program.module()(x)
        assert list(out) == [f"stride{s}" for s in model.encoder().strides]
