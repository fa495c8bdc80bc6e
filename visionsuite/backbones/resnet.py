"""ResNet-18/34/50 (He, Zhang, Ren & Sun, 2016) with the ImageNet or the CIFAR stem.

The paper's point: each block learns a residual F(x) added to an identity shortcut, so depth
stops hurting optimisation. ResNet-18/34 stack basic blocks (two 3x3 convs), ResNet-50
bottlenecks (1x1 reduce, 3x3, 1x1 expand x4); shortcuts that change shape are 1x1 projections
(the paper's option B). As torchvision ("ResNet v1.5"), a bottleneck strides in its 3x3 conv
rather than its first 1x1: same parameters, slightly better accuracy.

* ImageNet stem (``resnet18`` …): 7x7/2 conv → BN → ReLU (stage ``stem``, stride 2), then a
  3x3/2 max-pool (stage ``maxpool``, its own stage so that the stride-2 map is an encoder output);
  stages ``layer1`` … ``layer4`` with strides 4, 8, 16, 32. Parameter counts equal torchvision's.
* CIFAR stem (``resnet18_cifar`` …; ``stem="cifar"``): one 3x3/1 conv and no pooling, the usual
  adaptation to 32x32 images; strides 1, 1, 2, 4, 8 (``pooling`` is validated but has no pool
  to act on).

Module names inside the stages are torchvision's (``stem.conv1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` …; the classifier is ``head.fc``) so its state dicts map by prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import Tensor, nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import (
    ClassifierHead,
    activation_factory,
    build_with_options,
    check_choice,
    check_padding_mode,
    he_init,
    init_weights,
    make_norm,
    make_pool,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()

STEMS = ("imagenet", "cifar")


class _ConvFactory:
    """Builds the convs and norms of one network with its shared options."""

    def __init__(self, norm: str, padding_mode: str) -> None:
        self.norm = norm
        self.padding_mode = check_padding_mode(padding_mode)

    def conv(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=self.norm == "none",  # a bias before batch norm is redundant
            padding_mode=self.padding_mode if kernel_size > 1 else "zeros",
        )

    def bn(self, channels: int) -> nn.Module:
        return make_norm(self.norm, channels)


class _ResidualBlock(nn.Module):
    """relu(F(x) + shortcut(x)); subclasses build ``residual`` F and ``downsample``."""

    expansion = 1
    downsample: nn.Module | None
    relu: nn.Module

    def residual(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def last_norm(self) -> nn.Module:
        """The norm closing F, zeroed by ``zero_init_residual`` so the block starts as identity."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions plus the shortcut (ResNet-18/34)."""

    def __init__(self, in_ch: int, width: int, stride: int, f: _ConvFactory, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.conv1 = f.conv(in_ch, width, 3, stride)
        self.bn1 = f.bn(width)
        self.relu = act()
        self.conv2 = f.conv(width, width, 3)
        self.bn2 = f.bn(width)
        self.downsample = _shortcut(in_ch, width, stride, f)

    def residual(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(_ResidualBlock):
    """1x1 reduce → 3x3 (strided) → 1x1 expand by 4, plus the shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, f: _ConvFactory, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = f.conv(in_ch, width, 1)
        self.bn1 = f.bn(width)
        self.conv2 = f.conv(width, width, 3, stride)
        self.bn2 = f.bn(width)
        self.conv3 = f.conv(width, out_ch, 1)
        self.bn3 = f.bn(out_ch)
        self.relu = act()
        self.downsample = _shortcut(in_ch, out_ch, stride, f)

    def residual(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def last_norm(self) -> nn.Module:
        return self.bn3


def _shortcut(in_ch: int, out_ch: int, stride: int, f: _ConvFactory) -> nn.Module | None:
    """Identity (``None``) when shapes match, else a 1x1 projection (the paper's option B)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(f.conv(in_ch, out_ch, 1, stride), f.bn(out_ch))


BLOCKS: dict[str, type[_ResidualBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


class ResNet(Backbone):
    """Stem, four residual stages, global average pooling and a linear classifier."""

    def __init__(
        self,
        *,
        depth: int = 50,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        activation: str = "relu",
        negative_slope: float = 0.01,
        norm: str = "batch",
        pooling: str = "max",
        padding_mode: str = "zeros",
        dropout: float = 0.0,
        init: str = "default",
        zero_init_residual: bool = False,
        base_width: int = 64,
    ) -> None:
        """``base_width`` is the stem's and first stage's width; the stages are 1x, 2x, 4x, 8x of it
        (64 is the paper's ResNet; 32 gives the 32-64-128-256 body that small-image detectors use)."""
        super().__init__()
        check_choice("ResNet depth", depth, DEPTHS)
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"ResNet base_width must be a positive integer, got {base_width!r}")
        check_choice("ResNet stem", stem, STEMS)
        check_choice("pooling", pooling, ("max", "avg"))  # validated even where the CIFAR stem has no pool
        block_name, counts = DEPTHS[depth]
        block = BLOCKS[block_name]
        act = activation_factory(activation, negative_slope=negative_slope)
        f = _ConvFactory(norm, padding_mode)
        self.stages["stem"] = self._stem(in_chans, f, act, stride=2 if stem == "imagenet" else 1, width=base_width)
        stride = 1
        if stem == "imagenet":
            self.feature_info.append(FeatureInfo("stem", 2, base_width))
            self.stages["maxpool"] = make_pool(pooling, 3, 2, 1)
            stride = 4
        in_ch = base_width
        widths = tuple(base_width * m for m in (1, 2, 4, 8))
        for i, (n_blocks, width) in enumerate(zip(counts, widths, strict=True), start=1):
            first_stride = 1 if i == 1 else 2
            stride *= first_stride
            blocks = []
            for j in range(n_blocks):
                blocks.append(block(in_ch, width, first_stride if j == 0 else 1, f, act))
                in_ch = width * block.expansion
            self.stages[f"layer{i}"] = nn.Sequential(*blocks)
            self.feature_info.append(FeatureInfo(f"layer{i}", stride, in_ch))
        self.head = ClassifierHead(in_ch, num_classes, dropout=dropout)
        self.default_input_size = (in_chans, 224, 224) if stem == "imagenet" else (in_chans, 32, 32)
        self.num_features = in_ch
        self.num_classes = num_classes
        he_init(self, linear_std=None)
        if zero_init_residual and norm == "batch":  # each block starts as the identity (Goyal et al., 2017)
            for m in self.modules():
                if isinstance(m, _ResidualBlock):
                    nn.init.zeros_(m.last_norm().weight)
        init_weights(self, init)

    @staticmethod
    def _stem(in_chans: int, f: _ConvFactory, act: Callable[[], nn.Module], *, stride: int, width: int) -> nn.Sequential:
        conv1 = f.conv(in_chans, width, 7, 2) if stride == 2 else f.conv(in_chans, width, 3)
        return nn.Sequential(OrderedDict(conv1=conv1, bn1=f.bn(width), relu=act()))


def _register(depth: int, stem: str) -> None:
    name = f"resnet{depth}{'_cifar' if stem == 'cifar' else ''}"
    default_classes = 10 if stem == "cifar" else 1000

    def builder(*, num_classes: int = default_classes, in_chans: int = 3, **options) -> ResNet:
        options = {"num_classes": num_classes, "in_chans": in_chans, **options}
        return build_with_options(ResNet, options, depth=depth, stem=stem)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"ResNet-{depth} with the {stem} stem (see ``visionsuite.backbones.resnet``)."
    BACKBONES.add(name)(builder)


for _depth in DEPTHS:
    for _stem in STEMS:
        _register(_depth, _stem)
