"""VGG-11/13/16/19 (Simonyan & Zisserman, 2015), with or without batch norm, ImageNet or CIFAR form.

The paper's point: depth from stacks of 3x3 convolutions (padding 1), halving resolution with
2x2 max-pooling after each of five blocks. Configurations A, B, D, E are VGG-11, -13, -16, -19.

* ImageNet form (``vgg16``, ``vgg16_bn`` …): 224x224 input, adaptive average pool to 7x7 and the
  4096-4096-classes classifier with dropout 0.5, exactly torchvision's layout (same parameter
  counts; convolutions keep their bias even before batch norm, as torchvision's ``*_bn``).
* CIFAR form (``vgg16_cifar``, ``vgg16_bn_cifar`` …; ``variant="cifar"``): the same five blocks on
  32x32 give 1x1x512 features; the classifier is Linear(512, 512) → ReLU → Dropout →
  Linear(512, classes) (``fc=(512,)``, the common CIFAR VGG); ``fc=()`` gives Linear(512, classes).
  VGG-16 in this form with batch norm is the course's 92.26 % CIFAR-10 network.

Stages ``stage1`` … ``stage5`` are the five blocks, pooling included, so ``stage{k}`` has stride
2**k. SegNet reuses the max-pooling indices: ``model.encoder(return_indices=True)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import partial
from typing import NamedTuple

from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.encoder import Encoder, check_input_size
from visionsuite.backbones.layers import (
    ClassifierHead,
    activation_factory,
    build_with_options,
    check_choice,
    conv_norm_act,
    he_init,
    init_weights,
    make_pool,
)
from visionsuite.errors import ConfigError

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()

#: convolutions per block for each depth (configurations A, B, D, E of the paper's Table 1).
DEPTHS: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)
VARIANTS = {"imagenet": {"fc": (4096, 4096), "pool_size": 7}, "cifar": {"fc": (512,), "pool_size": 1}}


class PooledFeatures(NamedTuple):
    """A block's output with what ``max_unpool2d`` needs to undo its pooling (SegNet)."""

    features: Tensor
    indices: Tensor
    unpooled_size: tuple[int, int]


class VGGBlock(nn.Module):
    """``n`` 3x3 conv → [norm] → activation layers, then 2x2 pooling."""

    def __init__(self, convs: list[nn.Module], pool: nn.Module) -> None:
        super().__init__()
        self.convs = nn.Sequential(*convs)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.convs(x))

    def forward_with_indices(self, x: Tensor) -> PooledFeatures:
        """Same output as ``forward`` plus the argmax indices of the max-pooling (``pool`` must be max)."""
        x = self.convs(x)
        p = self.pool
        out, idx = F.max_pool2d(x, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode, return_indices=True)
        return PooledFeatures(out, idx, (x.shape[-2], x.shape[-1]))


class VGG(Backbone):
    """Five VGG blocks and a fully connected classifier; see the module docstring."""

    min_input_size = (32, 32)  # five 2x2 poolings

    def __init__(
        self,
        *,
        depth: int = 16,
        variant: str = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        activation: str = "relu",
        negative_slope: float = 0.01,
        norm: str = "none",
        pooling: str = "max",
        padding_mode: str = "zeros",
        dropout: float = 0.5,
        fc: tuple[int, ...] | None = None,
        init: str = "default",
    ) -> None:
        super().__init__()
        check_choice("VGG depth", depth, DEPTHS)
        check_choice("VGG variant", variant, VARIANTS)
        act = activation_factory(activation, negative_slope=negative_slope)
        conv = partial(conv_norm_act, kernel_size=3, norm=norm, act=act, padding_mode=padding_mode, bias=True)
        in_ch = in_chans
        for k, (n_convs, width) in enumerate(zip(DEPTHS[depth], WIDTHS, strict=True), start=1):
            convs = [conv(in_ch if i == 0 else width, width) for i in range(n_convs)]
            self.stages[f"stage{k}"] = VGGBlock(convs, make_pool(pooling, 2, 2))
            in_ch = width
        self.feature_info = [FeatureInfo(f"stage{k}", 2**k, WIDTHS[k - 1]) for k in range(1, 6)]
        head = VARIANTS[variant]
        fc = head["fc"] if fc is None else tuple(fc)
        self.head = ClassifierHead(512, num_classes, hidden=fc, pool_size=head["pool_size"], dropout=dropout, act=act)
        self.default_input_size = (in_chans, 32, 32) if variant == "cifar" else (in_chans, 224, 224)
        self.num_features = 512
        self.num_classes = num_classes
        he_init(self, linear_std=0.01)
        init_weights(self, init)

    def encoder(self, out_strides: Iterable[int] | None = None, *, return_indices: bool = False) -> Encoder:
        """The encoder view; ``return_indices=True`` makes it return, per stride, the pooled
        features with their max-pooling indices (:class:`PooledFeatures`) for SegNet's decoder
        (Badrinarayanan et al., 2017), which unpools with them instead of learning to."""
        plain = super().encoder(out_strides)
        if not return_indices:
            return plain
        return PoolingIndicesEncoder(plain)


class PoolingIndicesEncoder(Encoder):
    """A VGG encoder whose values are :class:`PooledFeatures` (features, indices, unpooled size).

    A separate class, so the plain encoder's forward pays nothing for the option."""

    def __init__(self, plain: Encoder) -> None:
        taps = {i.stage: i.stride for i in plain.feature_info}
        super().__init__(plain.stages, taps, plain.out_channels, min_input_size=plain.min_input_size, label=plain.label)
        if not all(isinstance(block.pool, nn.MaxPool2d) for block in self.stages.values()):
            raise ConfigError("pooling indices need pooling='max' (SegNet unpools with them)")

    def forward(self, x: Tensor) -> OrderedDict[str, PooledFeatures]:  # type: ignore[override]
        check_input_size(x, self.min_input_size, self.label)
        out: OrderedDict[str, PooledFeatures] = OrderedDict()
        for name, block in self.stages.items():
            pooled = block.forward_with_indices(x)
            x = pooled.features
            if name in self._taps:
                out[self._taps[name]] = pooled
        return out


def _register(depth: int, bn: bool, variant: str) -> None:
    name = f"vgg{depth}{'_bn' if bn else ''}{'_cifar' if variant == 'cifar' else ''}"
    default_classes = 10 if variant == "cifar" else 1000

    def builder(*, num_classes: int = default_classes, in_chans: int = 3, **options) -> VGG:
        options = {"num_classes": num_classes, "in_chans": in_chans, "norm": "batch" if bn else "none", **options}
        return build_with_options(VGG, options, depth=depth, variant=variant)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"VGG-{depth}{' with batch norm' if bn else ''}, {variant} form (see the module docstring)."
    BACKBONES.add(name)(builder)


for _depth in DEPTHS:
    for _bn in (False, True):
        for _variant in VARIANTS:
            _register(_depth, _bn, _variant)
