"""ResNet-18/34/50 with the ImageNet and the CIFAR stem."""

from __future__ import annotations

import torch
import torchvision
from backbone_tester import BackboneTester, build

TWINS = ("resnet18", "resnet34", "resnet50")


class TestResNet(BackboneTester):
    patterns = ("resnet*",)
    expected_strides = {"resnet18": [2, 4, 8, 16, 32], "resnet18_cifar": [1, 2, 4, 8]}
    option_model = "resnet18"
    reflect_side = 64  # 3x3 convs at stride 32 need 2x2 maps
    param_counts = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}
    torchvision_twins = {n: getattr(torchvision.models, n) for n in TWINS}

    def test_cifar_stem_strides(self) -> None:
        model = build("resnet18_cifar")
        assert [f.stride for f in model.feature_info] == [1, 2, 4, 8]
        assert "maxpool" not in dict(model.stages["stem"].named_children())

    def test_torchvision_names(self) -> None:
        keys = build("resnet50").state_dict().keys()
        tv = torchvision.models.resnet50().state_dict().keys()
        ours = {k.removeprefix("stages.").removeprefix("stem.").replace("head.fc", "fc") for k in keys}
        assert ours == set(tv)

    def test_zero_init_residual(self) -> None:
        model = build("resnet18", zero_init_residual=True)
        assert torch.count_nonzero(model.stages["layer1"][0].bn2.weight) == 0

    def test_base_width_scales_every_stage(self) -> None:
        model = build("resnet18", base_width=32, in_chans=1)
        assert [f.channels for f in model.feature_info] == [32, 32, 64, 128, 256]
        assert model.stages["stem"].conv1.out_channels == 32
        assert model(torch.zeros(2, 1, 96, 96)).shape == (2, 1000)
        assert model.stages["layer4"][1].conv2.weight.shape == (256, 256, 3, 3)
