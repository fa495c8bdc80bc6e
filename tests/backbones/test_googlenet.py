"""GoogLeNet: torchvision's BN layout, the paper's layout, auxiliary classifiers."""

from __future__ import annotations

import torch
import torchvision
from backbone_tester import BackboneTester, build, modules_of
from torch import nn


class TestGoogLeNet(BackboneTester):
    patterns = ("googlenet",)
    expected_strides = {"googlenet": [2, 4, 8, 16, 32]}
    option_model = "googlenet"
    options = ("activation", "norm", "padding_mode", "dropout", "init")
    param_counts = {"googlenet": 6_624_904}
    torchvision_twins = {"googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True)}
    reflect_side = 64  # the 3x3 convs at stride 32 need 2x2 maps

    def test_aux_logits_in_training_only(self) -> None:
        model = build("googlenet", num_classes=4, aux_logits=True).train()
        x = torch.randn(2, 3, 64, 64)
        logits, aux1, aux2 = model(x)
        assert logits.shape == aux1.shape == aux2.shape == (2, 4)
        (logits.sum() + 0.3 * (aux1.sum() + aux2.sum())).backward()
        assert model.eval()(x).shape == (2, 4)
        model.reset_classifier(6)
        assert all(o.shape == (2, 6) for o in model.train()(x))

    def test_paper_layout(self) -> None:
        model = build("googlenet", layout="paper")
        assert not modules_of(model, nn.BatchNorm2d)
        assert len(modules_of(model, nn.LocalResponseNorm)) == 2
        assert model.stages["stage3"].inception3a.branch3[1][0].kernel_size == (5, 5)
        assert model.min_input_size == (31, 31)
        model.eval()(torch.randn(1, 3, 31, 31))

    def test_aux_trained_file_loads_without_aux_heads(self, tmp_path) -> None:
        from visionsuite.backbones import load_pretrained

        torch.save(build("googlenet", num_classes=4, aux_logits=True).state_dict(), tmp_path / "aux.pth")
        report = load_pretrained(build("googlenet", num_classes=4), tmp_path / "aux.pth")
        assert report.dropped and all(k.startswith(("aux1.", "aux2.")) for k in report.dropped)
        assert not report.fresh  # the main classifier had the right size and loaded
