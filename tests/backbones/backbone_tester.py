"""The checks every backbone must pass, written once (smp-style).

A family's test file subclasses :class:`BackboneTester`, says which registered names it covers
(``patterns``), which options it supports, its exact parameter counts and its torchvision twins;
``conftest.py`` parametrises each ``name`` test over those names. Inputs stay small (batch 2,
CIFAR sizes, 64x64 or the smallest valid size for ImageNet nets) so the suite runs in seconds.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import torch
import torchvision
from torch import Tensor, nn

from visionsuite.backbones import Backbone, NoEncoderError, create_backbone, list_backbones
from visionsuite.backbones._base import _global_pool

BATCH = 2


def build(name: str, **options: Any) -> Backbone:
    model = create_backbone(name, **options)
    assert isinstance(model, Backbone)
    return model


def test_size(model: Backbone) -> int:
    """Side of the test input: the design size when small (CIFAR, MNIST), else 32 or the minimum."""
    _, h, w = model.default_input_size
    return h if h <= 64 else max(32, *model.min_input_size)


test_size.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def batch_for(model: Backbone, side: int | None = None) -> Tensor:
    side = test_size(model) if side is None else side
    return torch.randn(BATCH, model.default_input_size[0], side, side)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(fn: Callable[[], nn.Module]) -> nn.Module:
    """Build without allocating or initialising weights: parameter counts in milliseconds."""
    with torch.device("meta"):
        return fn()


def load_by_position(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy ``theirs``' state dict into ``ours`` entry by entry; same architecture ⇒ same order and shapes."""
    mine, other = ours.state_dict(), theirs.state_dict()
    assert len(mine) == len(other), f"{len(mine)} vs {len(other)} state entries"
    for (ka, va), (kb, vb) in zip(mine.items(), other.items(), strict=True):
        assert va.shape == vb.shape, f"{ka} {tuple(va.shape)} vs {kb} {tuple(vb.shape)}"
    ours.load_state_dict(dict(zip(mine, other.values(), strict=True)))


def modules_of(model: nn.Module, kind: type | tuple[type, ...]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


class BackboneTester:
    """Subclass per family; override the class attributes below."""

    patterns: ClassVar[tuple[str, ...]] = ()
    #: names only built under ``-m slow`` (ImageNet-size classifiers too heavy for the quick suite).
    slow_names: ClassVar[tuple[str, ...]] = ()
    #: the name the option tests build (a small member of the family).
    option_model: ClassVar[str] = ""
    #: options among activation, norm, padding_mode, pooling, dropout, init the family supports.
    options: ClassVar[tuple[str, ...]] = ("activation", "norm", "padding_mode", "pooling", "dropout", "init")
    #: exact parameter counts for the default build (1000 classes unless the name says otherwise).
    param_counts: ClassVar[dict[str, int]] = {}
    #: torchvision builders with the same architecture: equal counts, and equal outputs once our
    #: model holds their weights (skipped for ``slow_names``).
    torchvision_twins: ClassVar[dict[str, Callable[[], nn.Module]]] = {}
    #: encoder outputs have size input/stride exactly (no valid convolutions).
    exact_pyramid: ClassVar[bool] = True
    #: the strides ``feature_info`` must list (stride 2, and 1 for CIFAR stems, included).
    expected_strides: ClassVar[dict[str, list[int]]] = {}
    #: names without an encoder (pixel-space models): ``encoder()`` must refuse, clearly.
    no_encoder: ClassVar[tuple[str, ...]] = ()
    #: the unknown-option error lists the valid options; ``num_classes=0`` gives features.
    strict_options: ClassVar[bool] = True
    #: input side for ``padding_mode="reflect"``, which needs every padded map wider than its padding.
    reflect_side: ClassVar[int | None] = None

    @classmethod
    def backbone_names(cls) -> list[str]:
        return sorted({n for p in cls.patterns for n in list_backbones(p)})

    # -- every name --------------------------------------------------------------------------
    def test_forward_backward(self, name: str) -> None:
        model = build(name, num_classes=3).train()
        out = model(batch_for(model))
        assert out.shape == (BATCH, 3)
        out.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient for {missing[:5]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    def test_encoder(self, name: str) -> None:
        """The encoder returns exactly the strides and channels that ``feature_info`` claims, the
        strides measured from the input and map sizes."""
        model = build(name).eval()
        if name in self.no_encoder:
            assert model.feature_info == []
            with pytest.raises(NoEncoderError, match="cannot be an encoder"):
                model.encoder()
            return
        strides = [f.stride for f in model.feature_info]
        assert strides and strides == sorted(set(strides)), "feature_info: one entry per stride, shallow to deep"
        if name in self.expected_strides:
            assert strides == self.expected_strides[name]
        encoder = model.encoder()
        assert encoder.strides == strides and encoder.out_channels == [f.channels for f in model.feature_info]
        x = batch_for(model)
        with torch.no_grad():
            feats = encoder(x)
            assert isinstance(feats, OrderedDict) and list(feats) == [f"stride{s}" for s in strides]
            assert [f.shape[1] for f in feats.values()] == encoder.out_channels
            torch.testing.assert_close(feats[f"stride{strides[-1]}"], model.forward_features(x))
            side = x.shape[-1]
            if self.exact_pyramid:
                assert [f.shape[-1] for f in feats.values()] == [math.ceil(side / s) for s in strides]
            else:  # valid convolutions: growing the input by 64 grows each map by exactly 64/stride
                bigger = encoder(batch_for(model, side + 64))
                grown = [b.shape[-1] - f.shape[-1] for f, b in zip(feats.values(), bigger.values())]
                assert grown == [64 // s for s in strides]

    def test_encoder_selects_strides_and_holds_only_what_it_runs(self, name: str) -> None:
        model = build(name).eval()
        if name in self.no_encoder:
            return  # test_encoder checks the refusal
        strides = [f.stride for f in model.feature_info]
        shallow = model.encoder(out_strides=[strides[0]])
        assert shallow.strides == [strides[0]] and len(shallow.out_channels) == 1
        trunk = sum(p.numel() for p in model.stages.parameters())
        assert param_count(shallow) < trunk or len(strides) == 1, "the encoder holds stages it never runs"
        head = {id(p) for p in model.head.parameters()}
        assert head and not head & {id(p) for p in model.encoder().parameters()}, "the encoder holds the classifier"
        with pytest.raises(ValueError, match=f"its strides are {', '.join(map(str, strides))}"):
            model.encoder(out_strides=[3])

    def test_features_and_pre_logits(self, name: str) -> None:
        model = build(name).eval()
        x = batch_for(model)
        with torch.no_grad():
            feats = model.forward_features(x)
            if feats.dim() == 4:
                assert feats.shape[1] == model.num_features
            pre = model.forward_head(feats, pre_logits=True)
            assert pre.dim() == 2 and pre.shape[0] == BATCH
            if self.strict_options:  # num_classes=0: no classifier layer at all, pooled features out
                headless = build(name, num_classes=0).eval()
                assert not modules_of(headless.head, nn.Linear), "num_classes=0 kept classifier layers"
                headless.load_state_dict(model.state_dict(), strict=False)
                torch.testing.assert_close(headless(x), _global_pool(feats))

    def test_reset_classifier(self, name: str) -> None:
        model = build(name, num_classes=3).eval()
        x = batch_for(model)
        model.reset_classifier(5)
        assert model.num_classes == 5 and model(x).shape == (BATCH, 5)
        if self.strict_options:  # 0 → features, then back to a classifier
            model.reset_classifier(0)
            features = model(x)
            torch.testing.assert_close(features, model.forward_head(model.forward_features(x), pre_logits=True))
            model.reset_classifier(7)
            assert model(x).shape == (BATCH, 7)

    def test_freeze_trains_only_the_head(self, name: str) -> None:
        model = build(name, num_classes=3).train()
        model.freeze()
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(n.startswith("head.") for n in trainable)
        stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        model(batch_for(model)).sum().backward()
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items()), "frozen BN stats moved"
        model.unfreeze()
        assert all(p.requires_grad for p in model.parameters())

    def test_too_small_input(self, name: str) -> None:
        model = build(name).eval()
        h, w = model.min_input_size
        if (h, w) == (1, 1):
            return  # any size works
        channels = model.default_input_size[0]
        with pytest.raises(ValueError, match=f"at least {h}x{w}"):
            model(torch.randn(1, channels, h - 1, w - 1))
        with torch.no_grad():
            model(torch.randn(1, channels, h, w))  # the minimum works …
            model.min_input_size = (1, 1)
            with pytest.raises(RuntimeError):  # … and is the true minimum
                model(torch.randn(1, channels, h - 1, w - 1))

    # -- counts and torchvision equivalence ------------------------------------------------------
    def test_param_counts(self) -> None:
        for name, expected in self.param_counts.items():
            assert param_count(on_meta(lambda: build(name))) == expected, name

    def test_torchvision_twins(self) -> None:
        for name, tv in self.torchvision_twins.items():
            assert param_count(on_meta(lambda: build(name))) == param_count(on_meta(tv)), name
            if name not in self.slow_names:
                self._check_same_outputs(name, tv)

    @pytest.mark.slow
    def test_torchvision_twins_heavy(self) -> None:
        for name, tv in self.torchvision_twins.items():
            if name in self.slow_names:
                self._check_same_outputs(name, tv)

    @staticmethod
    def _check_same_outputs(name: str, tv: Callable[[], nn.Module]) -> None:
        ours, theirs = build(name).eval(), tv().eval()
        for m in modules_of(theirs, nn.BatchNorm2d):  # non-trivial statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        load_by_position(ours, theirs)
        x = batch_for(ours)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")

    # -- options ----------------------------------------------------------------------------------
    def _needs(self, option: str) -> None:
        if option not in self.options:
            pytest.skip(f"{option!r} is not an option of this family")

    def _runs(self, model: Backbone) -> None:
        with torch.no_grad():
            assert model.eval()(batch_for(model)).shape[0] == BATCH

    def test_activation_option(self) -> None:
        self._needs("activation")
        model = build(self.option_model, activation="leaky_relu", negative_slope=0.2)
        leaky = modules_of(model, nn.LeakyReLU)
        assert leaky and all(m.negative_slope == 0.2 for m in leaky)
        assert not modules_of(model, (nn.ReLU, nn.ReLU6, nn.Hardswish))
        self._runs(model)

    def test_norm_option(self) -> None:
        self._needs("norm")
        bare = build(self.option_model, norm="none")
        assert not modules_of(bare, nn.BatchNorm2d)
        assert all(c.bias is not None for c in modules_of(bare, nn.Conv2d)), "a conv has neither norm nor bias"
        self._runs(bare)
        assert modules_of(build(self.option_model, norm="batch"), nn.BatchNorm2d)

    def test_padding_mode_option(self) -> None:
        self._needs("padding_mode")
        model = build(self.option_model, padding_mode="reflect")
        padded = [c for c in modules_of(model, nn.Conv2d) if any(p > 0 for p in c.padding)]
        assert padded and all(c.padding_mode == "reflect" for c in padded)
        with torch.no_grad():
            model.eval()(batch_for(model, self.reflect_side)[:1])

    def test_pooling_option(self) -> None:
        self._needs("pooling")
        model = build(self.option_model, pooling="avg")
        assert not modules_of(model.stages, nn.MaxPool2d) and modules_of(model.stages, nn.AvgPool2d)
        self._runs(model)

    def test_dropout_option(self) -> None:
        self._needs("dropout")
        model = build(self.option_model, dropout=0.3)
        assert any(m.p == 0.3 for m in modules_of(model, nn.Dropout))

    def test_init_option(self) -> None:
        self._needs("init")
        torch.manual_seed(0)
        default = build(self.option_model)
        torch.manual_seed(0)
        xavier = build(self.option_model, init="xavier_uniform")
        conv_d, conv_x = modules_of(default, nn.Conv2d)[0], modules_of(xavier, nn.Conv2d)[0]
        assert not torch.equal(conv_d.weight, conv_x.weight)
        with pytest.raises(ValueError, match="xavier_uniform"):
            build(self.option_model, init="nope")

    @pytest.mark.parametrize(
        ("option", "listed"),
        [("activation", "leaky_relu"), ("norm", "batch"), ("padding_mode", "reflect"), ("pooling", "avg")],
    )
    def test_bad_option_value_lists_choices(self, option: str, listed: str) -> None:
        self._needs(option)
        with pytest.raises(ValueError, match=listed):
            build(self.option_model, **{option: "nope"})

    def test_unknown_option(self) -> None:
        with pytest.raises(TypeError) as err:
            build(self.option_model, actvation="relu")
        if self.strict_options:
            message = str(err.value)
            assert "actvation" in message and "valid options" in message
            assert all(o in message for o in self.options), message

    def test_in_chans(self) -> None:
        model = build(self.option_model, in_chans=1)
        x = torch.randn(BATCH, 1, *batch_for(model).shape[-2:])
        with torch.no_grad():
            assert model.eval()(x).shape[0] == BATCH
