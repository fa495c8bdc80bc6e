"""VGG-11/13/16/19 (± batch norm), ImageNet and CIFAR forms, and SegNet's pooling indices."""

from __future__ import annotations

import pytest
import torch
import torchvision
from backbone_tester import BackboneTester, build, on_meta, param_count
from torch.nn import functional as F

IMAGENET = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


class TestVGG(BackboneTester):
    patterns = ("vgg*",)
    slow_names = tuple(IMAGENET)  # 130M+ parameters each; the CIFAR forms share their conv blocks
    option_model = "vgg11_cifar"
    param_counts = {"vgg16": 138_357_544}
    torchvision_twins = {n: getattr(torchvision.models, n) for n in IMAGENET}

    def test_imagenet_head(self) -> None:
        model = build("vgg11", num_classes=3)
        x = torch.randn(2, 3, 32, 32)
        assert model(x).shape == (2, 3)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 4096)

    @pytest.mark.parametrize(("fc", "expected"), [(None, 512 * 512 + 512 + 5130), ((), 5130)])
    def test_cifar_classifier(self, fc: tuple[int, ...] | None, expected: int) -> None:
        model = on_meta(lambda: build("vgg16_bn_cifar", **({} if fc is None else {"fc": fc})))
        assert param_count(model.head) == expected

    def test_pooling_indices_unpool(self) -> None:
        model = build("vgg11_bn_cifar").eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            pooled = model.forward_pyramid_with_indices(x)
            assert [p.features.shape[-1] for p in pooled] == [16, 8, 4, 2, 1]
            torch.testing.assert_close(pooled[-1].features, model.forward_features(x))
            up = F.max_unpool2d(pooled[0].features, pooled[0].indices, 2, output_size=pooled[0].unpooled_size)
        assert up.shape[-2:] == (32, 32)

    def test_indices_need_max_pooling(self) -> None:
        with pytest.raises(ValueError, match="pooling='max'"):
            build("vgg11_cifar", pooling="avg").forward_pyramid_with_indices(torch.randn(1, 3, 32, 32))
