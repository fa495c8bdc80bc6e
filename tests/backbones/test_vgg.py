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
    expected_strides = {"vgg11_cifar": [2, 4, 8, 16, 32]}
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
            pooled = model.encoder(return_indices=True)(x)
            assert list(pooled) == ["stride2", "stride4", "stride8", "stride16", "stride32"]
            assert [p.features.shape[-1] for p in pooled.values()] == [16, 8, 4, 2, 1]
            torch.testing.assert_close(pooled["stride32"].features, model.forward_features(x))
            first = pooled["stride2"]
            up = F.max_unpool2d(first.features, first.indices, 2, output_size=first.unpooled_size)
            plain = model.encoder()(x)
        assert up.shape[-2:] == (32, 32)
        # each pooled value sits where its index says, in the block's pre-pool map (32x32)
        pre = model.stages["stage1"].convs(x)
        torch.testing.assert_close(pre.flatten(2).gather(2, first.indices.flatten(2)), first.features.flatten(2))
        assert all(torch.equal(plain[k], pooled[k].features) for k in plain)

    def test_indices_need_max_pooling(self) -> None:
        with pytest.raises(ValueError, match="pooling='max'"):
            build("vgg11_cifar", pooling="avg").encoder(return_indices=True)

    def test_no_classes_means_no_classifier_layers(self) -> None:
        """num_classes=0 drops fc6/fc7 (2 x 4096 units, 119.5M parameters): features only."""
        model = on_meta(lambda: build("vgg16", num_classes=0))
        assert not [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert param_count(model) == 14_714_688  # the 13 convolutions alone
        model = build("vgg11_cifar", num_classes=0).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)
        model.reset_classifier(4)  # a classifier again: fresh hidden layers, then the last one
        assert [m.out_features for m in model.head.modules() if isinstance(m, torch.nn.Linear)] == [512, 4]
