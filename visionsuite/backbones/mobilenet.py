"""MobileNetV2 (Sandler et al., 2018) and MobileNetV3 small/large (Howard et al., 2019).

The papers' point: a depthwise-separable *inverted residual* — expand the channels with a 1x1
conv, filter each channel alone with a depthwise k×k conv, project back with a *linear* 1x1 conv
(no activation, which would destroy information in the narrow tensor), and add a shortcut
between the narrow ends. V3 adds squeeze-and-excitation in some blocks, hard-swish activations
and a lighter last stage, all found by architecture search. One block class serves both.

Layouts, channel rounding (``width_mult``, multiples of 8), initialisation and parameter counts
follow torchvision: ``mobilenet_v2`` 3,504,872, ``mobilenet_v3_small`` 2,542,856,
``mobilenet_v3_large`` 5,483,032 for 1000 classes.

Stages are named by stride, ``stage{k}`` having stride 2**k (``stage1`` … ``stage5``); the last
1x1 conv (1280 channels for V2, 576/960 for V3) closes ``stage5``, as torchvision's ``features``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from torch import Tensor, nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import (
    ClassifierHead,
    GridAvgPool,
    activation_factory,
    build_with_options,
    check_choice,
    conv_norm_act,
    he_init,
    init_weights,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never more than 10 % down (as the papers' code)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class BlockSpec(NamedTuple):
    """One inverted residual: kernel, expanded (hidden) channels, output channels, SE, activation, stride."""

    kernel: int
    hidden: int
    out: int
    se: bool
    act: str
    stride: int


@dataclass(frozen=True)
class MobileNetConfig:
    """Everything that differs between the versions, channels already scaled by ``width_mult``."""

    stem: int
    stem_act: str
    blocks: list[BlockSpec]
    last: int
    last_act: str
    head_hidden: tuple[int, ...]
    norm_kwargs: dict[str, float]


def _v2(width_mult: float) -> MobileNetConfig:
    """MobileNetV2's Table 2: (expansion t, channels c, repeats n, first stride s)."""
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    in_ch = stem = make_divisible(32 * width_mult)
    blocks = []
    for t, c, n, s in table:
        out = make_divisible(c * width_mult)
        for i in range(n):
            blocks.append(BlockSpec(3, int(round(in_ch * t)), out, False, "relu6", s if i == 0 else 1))
            in_ch = out
    last = make_divisible(1280 * max(1.0, width_mult))
    return MobileNetConfig(stem, "relu6", blocks, last, "relu6", (), {})


# MobileNetV3's Tables 1 and 2: kernel, expanded, out, SE, activation (relu / hard-swish), stride.
_V3_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2), (5, 240, 40, True, "hardswish", 1), (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1), (5, 144, 48, True, "hardswish", 1), (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1), (5, 576, 96, True, "hardswish", 1),
]  # fmt: skip
_V3_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1), (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1), (5, 960, 160, True, "hardswish", 1),
]  # fmt: skip


def _v3(table: list[tuple], head_hidden: int, width_mult: float) -> MobileNetConfig:
    scale = lambda c: make_divisible(c * width_mult)  # noqa: E731
    blocks = [BlockSpec(k, scale(e), scale(o), se, act, s) for k, e, o, se, act, s in table]
    last = 6 * blocks[-1].out
    eps = {"eps": 0.001, "momentum": 0.01}
    return MobileNetConfig(scale(16), "hardswish", blocks, last, "hardswish", (scale(head_hidden),), eps)


VERSIONS: dict[str, Callable[[float], MobileNetConfig]] = {
    "v2": _v2,
    "v3_small": partial(_v3, _V3_SMALL, 1024),
    "v3_large": partial(_v3, _V3_LARGE, 1280),
}


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al., 2018): global pool → 1x1 reduce → act → 1x1 → hard-sigmoid gate."""

    def __init__(self, channels: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        squeeze = make_divisible(channels // 4)
        self.pool = GridAvgPool(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """[1x1 expand → act] → k×k depthwise → act → [SE] → 1x1 linear projection, + x when shapes match."""

    def __init__(
        self,
        in_ch: int,
        spec: BlockSpec,
        conv: Callable[..., nn.Sequential],
        act: Callable[[], nn.Module],
        se_act: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if spec.hidden != in_ch:
            layers.append(conv(in_ch, spec.hidden, 1, act=act))
        layers.append(conv(spec.hidden, spec.hidden, spec.kernel, stride=spec.stride, groups=spec.hidden, act=act))
        if spec.se:
            layers.append(SqueezeExcite(spec.hidden, se_act))
        layers.append(conv(spec.hidden, spec.out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_shortcut = spec.stride == 1 and in_ch == spec.out

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_shortcut else self.block(x)


class MobileNet(Backbone):
    """Stem conv, inverted residual blocks grouped by stride, last 1x1 conv, pooled classifier."""

    def __init__(
        self,
        *,
        version: str = "v2",
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        activation: str | None = None,
        negative_slope: float = 0.01,
        norm: str = "batch",
        padding_mode: str = "zeros",
        dropout: float = 0.2,
        init: str = "default",
    ) -> None:
        super().__init__()
        cfg = VERSIONS[check_choice("MobileNet version", version, VERSIONS)](width_mult)

        def act(name: str) -> Callable[[], nn.Module]:  # ``activation`` replaces the paper's everywhere
            return activation_factory(activation or name, negative_slope=negative_slope)

        conv = partial(conv_norm_act, norm=norm, padding_mode=padding_mode, norm_kwargs=cfg.norm_kwargs)
        stem = conv(in_chans, cfg.stem, 3, stride=2, act=act(cfg.stem_act))
        layers: list[tuple[nn.Module, int, int]] = [(stem, 2, cfg.stem)]
        in_ch = cfg.stem
        for spec in cfg.blocks:
            block = InvertedResidual(in_ch, spec, conv, act(spec.act), se_act=act("relu"))
            layers.append((block, spec.stride, spec.out))
            in_ch = spec.out
        layers.append((conv(in_ch, cfg.last, 1, act=act(cfg.last_act)), 1, cfg.last))
        self._group_by_stride(layers)
        head_act = act(cfg.last_act)
        self.head = ClassifierHead(cfg.last, num_classes, hidden=cfg.head_hidden, dropout=dropout, act=head_act)
        self.default_input_size = (in_chans, 224, 224)
        self.num_features = cfg.last
        self.num_classes = num_classes
        he_init(self, linear_std=0.01)
        init_weights(self, init)

    def _group_by_stride(self, layers: list[tuple[nn.Module, int, int]]) -> None:
        """Put each (layer, stride, out channels) into ``stage{log2 of the running stride}``."""
        stride = 1
        groups: dict[int, list[nn.Module]] = {}
        channels: dict[int, int] = {}
        for layer, s, out in layers:
            stride *= s
            groups.setdefault(stride, []).append(layer)
            channels[stride] = out
        for stride, group in groups.items():
            self.stages[f"stage{stride.bit_length() - 1}"] = nn.Sequential(*group)
        self.feature_info = [
            FeatureInfo(f"stage{stride.bit_length() - 1}", stride, channels[stride]) for stride in groups
        ]


@BACKBONES.add("mobilenet_v2")
def mobilenet_v2(*, num_classes: int = 1000, in_chans: int = 3, **options) -> MobileNet:
    """MobileNetV2 (ReLU6, 1280-channel last conv); ``width_mult`` scales every width."""
    return build_with_options(MobileNet, {"num_classes": num_classes, "in_chans": in_chans, **options}, version="v2")


@BACKBONES.add("mobilenet_v3_small")
def mobilenet_v3_small(*, num_classes: int = 1000, in_chans: int = 3, **options) -> MobileNet:
    """MobileNetV3-Small (SE, hard-swish, 576-channel last conv, 1024-wide head layer)."""
    options = {"num_classes": num_classes, "in_chans": in_chans, **options}
    return build_with_options(MobileNet, options, version="v3_small")


@BACKBONES.add("mobilenet_v3_large")
def mobilenet_v3_large(*, num_classes: int = 1000, in_chans: int = 3, **options) -> MobileNet:
    """MobileNetV3-Large (960-channel last conv, 1280-wide head layer)."""
    options = {"num_classes": num_classes, "in_chans": in_chans, **options}
    return build_with_options(MobileNet, options, version="v3_large")
