"""GoogLeNet / Inception v1 (Szegedy et al., 2015).

The paper's point: an Inception module runs 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool
side by side and concatenates them, with 1x1 "reduce" convolutions before the expensive branches
to keep the cost down; nine modules deep, global average pooling replaces big FC layers, and two
auxiliary classifiers (on inception 4a and 4d) add gradient to the middle of the network.

Two layouts (``layout=``):

* ``"torchvision"`` (default): torchvision's "GoogLeNet with BN" — batch norm (eps 1e-3) after
  every conv, the "5x5" branch with a 3x3 kernel (a known quirk of the ported weights), a 2x2 last
  max-pool, dropout 0.2. Same parameter count as ``torchvision.models.googlenet(aux_logits=False)``.
* ``"paper"``: the original — true 5x5 branches, local response normalisation in the stem, no batch
  norm (``norm`` defaults to ``"none"``; pass ``norm="batch"`` to add it), a 3x3 last max-pool,
  dropout 0.4.

Auxiliary classifiers (``aux_logits=True``, 1x1 conv 128 → FC 1024 → dropout 0.7 → FC classes):
in training mode ``forward`` returns ``(logits, aux1, aux2)``; in eval mode only ``logits``, so
inference code never sees them. The paper weights their losses by 0.3.

Stages are named by stride, ``stage{k}`` having stride 2**k: ``stage1`` (conv1, 64 channels),
``stage2`` (max-pool, conv2, conv3, 192 channels), ``stage3`` (inception 3a-3b, 480), ``stage4`` (4a-4e, 832), ``stage5`` (5a-5b, 1024).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import (
    ClassifierHead,
    GridAvgPool,
    activation_factory,
    build_with_options,
    check_choice,
    conv_norm_act,
    init_weights,
    smallest_input,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()

#: in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (the paper's Table 1).
INCEPTIONS: dict[str, tuple[int, ...]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
LAYOUTS = {
    "torchvision": {"kernel5": 3, "last_pool": 2, "lrn": False, "norm": "batch", "dropout": 0.2},
    "paper": {"kernel5": 5, "last_pool": 3, "lrn": True, "norm": "none", "dropout": 0.4},
}
AUX_TAPS = {"inception4a": "aux1", "inception4d": "aux2"}


def _caffe_lrn() -> nn.LocalResponseNorm:
    """The reference Caffe model's LRN (the paper gives no constants); Caffe and PyTorch both
    divide α by the window size, so the numbers carry over unchanged."""
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


def _pool(kernel: int = 3, stride: int = 2) -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel, stride, ceil_mode=True)  # ceil, as the paper's Caffe model


class Inception(nn.Module):
    """Four parallel branches concatenated along channels."""

    def __init__(self, cfg: tuple[int, ...], conv: Callable[..., nn.Module], kernel5: int) -> None:
        super().__init__()
        in_ch, c1, c3r, c3, c5r, c5, pool_proj = cfg
        self.branch1 = conv(in_ch, c1, 1)
        self.branch2 = nn.Sequential(conv(in_ch, c3r, 1), conv(c3r, c3, 3))
        self.branch3 = nn.Sequential(conv(in_ch, c5r, 1), conv(c5r, c5, kernel5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(in_ch, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool → 1x1 conv 128 → FC 1024 → dropout 0.7 → FC."""

    def __init__(
        self, in_ch: int, num_classes: int, conv: Callable[..., nn.Module], act: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.pool = GridAvgPool(4)
        self.conv = conv(in_ch, 128, 1)
        self.head = ClassifierHead(128 * 16, num_classes, hidden=(1024,), pool_size=None, dropout=0.7, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(self.pool(x)))


class GoogLeNet(Backbone):
    """Stem, nine Inception modules in three stages, global pooling, dropout, linear classifier."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        layout: str = "torchvision",
        aux_logits: bool = False,
        activation: str = "relu",
        negative_slope: float = 0.01,
        norm: str | None = None,
        padding_mode: str = "zeros",
        dropout: float | None = None,
        init: str = "default",
    ) -> None:
        super().__init__()
        spec = LAYOUTS[check_choice("GoogLeNet layout", layout, LAYOUTS)]
        norm = spec["norm"] if norm is None else norm
        dropout = spec["dropout"] if dropout is None else dropout
        if aux_logits and num_classes <= 0:
            raise ValueError("aux_logits=True needs num_classes > 0")
        act = activation_factory(activation, negative_slope=negative_slope)
        norm_kwargs = {"eps": 1e-3} if layout == "torchvision" else None
        conv = partial(conv_norm_act, norm=norm, act=act, padding_mode=padding_mode, norm_kwargs=norm_kwargs)
        self.stages["stage1"] = nn.Sequential(OrderedDict(conv1=conv(in_chans, 64, 7, stride=2)))
        self.stages["stage2"] = self._stem(conv, lrn=spec["lrn"])
        for k, pool in ((3, _pool()), (4, _pool()), (5, _pool(spec["last_pool"]))):
            modules: OrderedDict[str, nn.Module] = OrderedDict([(f"maxpool{k - 1}", pool)])
            for name, cfg in INCEPTIONS.items():
                if name.startswith(f"inception{k}"):
                    modules[name] = Inception(cfg, conv, spec["kernel5"])
            self.stages[f"stage{k}"] = nn.Sequential(modules)
        self.feature_info = [
            FeatureInfo("stage1", 2, 64),
            FeatureInfo("stage2", 4, 192),
            FeatureInfo("stage3", 8, 480),
            FeatureInfo("stage4", 16, 832),
            FeatureInfo("stage5", 32, 1024),
        ]
        geometry = [(7, 2, 3), (3, 2, 0, True), (3, 2, 0, True), (3, 2, 0, True), (spec["last_pool"], 2, 0, True)]
        self.min_input_size = (smallest_input(geometry),) * 2  # 15x15 (torchvision layout), 31x31 (paper)
        self.head = ClassifierHead(1024, num_classes, dropout=dropout)
        self.default_input_size = (in_chans, 224, 224)
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, conv, act)
            self.aux2 = InceptionAux(528, num_classes, conv, act)
        self.num_features = 1024
        self.num_classes = num_classes
        _init_truncated_normal(self)
        init_weights(self, init)

    @staticmethod
    def _stem(conv: Callable[..., nn.Module], *, lrn: bool) -> nn.Sequential:
        """(after conv 7x7/2) max-pool → [LRN] → conv 1x1 → conv 3x3 → [LRN]; the pool follows in stage3."""
        layers: list[tuple[str, nn.Module]] = [("maxpool1", _pool())]
        if lrn:
            layers.append(("lrn1", _caffe_lrn()))
        layers += [("conv2", conv(64, 64, 1)), ("conv3", conv(64, 192, 3))]
        if lrn:
            layers.append(("lrn2", _caffe_lrn()))
        return nn.Sequential(OrderedDict(layers))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        if not (self.training and self.aux_logits):
            return super().forward(x)
        self._check_input(x)
        aux: dict[str, Tensor] = {}
        for stage in self.stages.values():
            for name, layer in stage.named_children():
                x = layer(x)
                if name in AUX_TAPS:
                    aux[AUX_TAPS[name]] = getattr(self, AUX_TAPS[name])(x)
        return self.forward_head(x), aux["aux1"], aux["aux2"]

    def classifier_prefixes(self) -> tuple[str, ...]:
        """The auxiliary classifiers too: a file trained with them loads into a model without."""
        return ("head.", "aux1.", "aux2.")

    def reset_classifier(self, num_classes: int) -> None:
        if self.aux_logits and num_classes <= 0:
            raise ValueError("aux_logits=True needs num_classes > 0")
        super().reset_classifier(num_classes)
        if self.aux_logits:
            for aux in (self.aux1, self.aux2):
                aux.head.reset_classifier(num_classes)


def _init_truncated_normal(module: nn.Module) -> None:
    """torchvision's initialisation: N(0, 0.01) truncated at ±2 for conv and linear weights."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@BACKBONES.add("googlenet")
def googlenet(*, num_classes: int = 1000, in_chans: int = 3, **options) -> GoogLeNet:
    """Inception v1; ``layout="paper"`` for the original, ``aux_logits=True`` for the side heads."""
    return build_with_options(GoogLeNet, {"num_classes": num_classes, "in_chans": in_chans, **options})
