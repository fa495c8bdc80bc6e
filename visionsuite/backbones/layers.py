"""Building blocks shared by the families, each selectable by name from a config.

The names are what users write in YAML (``activation: leaky_relu``, ``padding_mode: reflect``),
so every factory here raises a one-line error listing the valid choices.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.errors import ConfigError

T = TypeVar("T")

ActivationName = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "silu", "relu6", "hardswish"]
NormName = Literal["batch", "none"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
PoolName = Literal["max", "avg"]
InitName = Literal["default", "uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
}


def _choose(kind: str, name: str, choices: dict[str, object] | tuple[str, ...]) -> None:
    if name not in choices:
        raise ConfigError(f"Unknown {kind} {name!r}; choose one of: {', '.join(map(str, choices))}")


def check_choice(kind: str, name: T, choices: Iterable[T]) -> T:
    """``name`` if it is one of ``choices``, else a ConfigError (a ValueError) listing them."""
    _choose(kind, name, tuple(choices))  # type: ignore[arg-type]
    return name


class UnknownOptionError(ConfigError, TypeError):
    """A backbone option its family does not have (a TypeError, like any unexpected keyword)."""


def build_with_options(cls: Callable[..., T], options: Mapping[str, Any], /, **fixed: Any) -> T:
    """``cls(**fixed, **options)``; an unknown option (or one the builder fixes) raises an
    :class:`UnknownOptionError` listing the valid ones, since option names come from YAML."""
    params = inspect.signature(cls).parameters
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    valid = sorted(n for n, p in params.items() if p.kind in keyword and n not in fixed)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownOptionError(
            f"{getattr(cls, '__name__', cls)} got unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(valid)}"
        )
    return cls(**fixed, **options)


def make_activation(name: str = "relu", *, negative_slope: float = 0.01) -> nn.Module:
    """A fresh activation module; ``negative_slope`` applies to ``leaky_relu``."""
    _choose("activation", name, _ACTIVATIONS)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name in ("relu", "relu6", "silu", "hardswish", "elu"):
        return _ACTIVATIONS[name](inplace=True)
    return _ACTIVATIONS[name]()


def activation_factory(name: str = "relu", *, negative_slope: float = 0.01) -> Callable[[], nn.Module]:
    """A zero-argument constructor, validated now rather than at first use."""
    _choose("activation", name, _ACTIVATIONS)
    return partial(make_activation, name, negative_slope=negative_slope)


def make_norm(name: str, channels: int, **kwargs: float) -> nn.Module:
    """Batch norm over ``channels`` (``kwargs``: eps, momentum) or identity (``none``)."""
    _choose("normalisation", name, ("batch", "none"))
    return nn.BatchNorm2d(channels, **kwargs) if name == "batch" else nn.Identity()


def response_norm(*, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """Local response normalisation with the AlexNet paper's constants (Krizhevsky et al., 2012, §3.3).

    The paper's α multiplies the plain sum of squares; PyTorch divides by ``size``, hence ``alpha * size``.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


def make_pool(name: str, kernel_size: int, stride: int | None = None, padding: int = 0, **kwargs: bool) -> nn.Module:
    """Max or average pooling with the same geometry."""
    _choose("pooling", name, ("max", "avg"))
    cls = nn.MaxPool2d if name == "max" else nn.AvgPool2d
    return cls(kernel_size, stride=stride, padding=padding, **kwargs)


def check_padding_mode(name: str) -> str:
    """Validate a convolution ``padding_mode`` (zeros, reflect, replicate, circular)."""
    _choose("padding mode", name, ("zeros", "reflect", "replicate", "circular"))
    return name


def conv_norm_act(
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    groups: int = 1,
    norm: str = "batch",
    act: Callable[[], nn.Module] | None = None,
    padding_mode: str = "zeros",
    bias: bool | None = None,
    norm_kwargs: Mapping[str, float] | None = None,
) -> nn.Sequential:
    """Conv → norm → activation; by default (``bias=None``) the conv has a bias only when there is
    no norm after it. ``norm_kwargs`` (eps, momentum) go to the batch norm."""
    padding = (kernel_size - 1) // 2 if padding is None else padding
    bias = norm == "none" if bias is None else bias
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
            padding_mode=check_padding_mode(padding_mode),
        ),
        make_norm(norm, out_ch, **(norm_kwargs or {})),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def init_weights(module: nn.Module, scheme: str = "default") -> None:
    """Re-initialise every conv and linear layer of ``module`` by ``scheme``; biases to zero.

    ``default`` keeps each family's own initialisation (PyTorch's, or the paper's).
    """
    _choose("weight initialisation", scheme, tuple(InitName.__args__))  # type: ignore[attr-defined]
    if scheme == "default":
        return
    for m in module.modules():
        if not isinstance(m, nn.Conv2d | nn.Linear | nn.ConvTranspose2d):
            continue
        w = m.weight
        if scheme == "uniform":
            bound = 1.0 / math.sqrt(w[0].numel())
            nn.init.uniform_(w, -bound, bound)
        elif scheme == "normal":
            nn.init.normal_(w, 0.0, 0.01)
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w)
        elif scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(w, nonlinearity="relu")
        elif scheme == "kaiming_normal":
            nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def he_init(module: nn.Module, *, linear_std: float | None = 0.01) -> None:
    """torchvision's recipe for VGG, ResNet and MobileNet: He-normal fan-out convs (He et al., 2015)
    with zero biases, unit/zero norms, and N(0, ``linear_std``) linears (``None`` keeps PyTorch's)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def smallest_input(geometry: Sequence[tuple[int, int, int] | tuple[int, int, int, bool]]) -> int:
    """Smallest input side for a chain of (kernel, stride, padding[, ceil_mode]) layers to give a
    non-empty output; families use it to state ``min_input_size`` exactly rather than guess it."""
    need = 1
    for kernel, stride, padding, *ceil in reversed(geometry):
        extra = 1 - stride if ceil and ceil[0] else 0  # a ceil-mode window may hang over the edge
        need = max(1, (need - 1) * stride + kernel + extra - 2 * padding)
    return need


class GridAvgPool(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d(size)`` computed, where the input allows, as the same average by
    deterministic means: a mean (size 1), nothing (input already size x size), a plain average
    pool (a multiple of size). Other inputs use the adaptive op.

    Why: adaptive_avg_pool2d's CUDA backward has no deterministic kernel, so
    ``trainer.deterministic: true`` (``torch.use_deterministic_algorithms``) stopped every GPU run
    through a classifier head at its first backward."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return F.adaptive_avg_pool2d(x, self.output_size)
        if torch.jit.is_tracing():  # the shape tests below would be baked into the trace (and warned about)
            return F.adaptive_avg_pool2d(x, self.output_size)
        return self._grid_pool(x)

    @torch.jit.unused
    def _grid_pool(self, x: Tensor) -> Tensor:
        rows, cols = (self.output_size, self.output_size) if isinstance(self.output_size, int) else self.output_size
        height, width = x.shape[-2:]
        if rows is None or cols is None or height % rows or width % cols:
            return F.adaptive_avg_pool2d(x, self.output_size)
        if rows == cols == 1:
            return x.mean((-2, -1), keepdim=True)
        if height == rows and width == cols:
            return x
        return F.avg_pool2d(x, (height // rows, width // cols))


class ClassifierHead(nn.Module):
    """Pool → flatten → hidden fully connected layers → classifier, with a pre-logits exit.

    Hidden layers are Linear → activation → Dropout, the fc6/fc7 order of AlexNet and VGG
    (Krizhevsky et al., 2012; Simonyan & Zisserman, 2015); without hidden layers, dropout comes
    right before the classifier (GoogLeNet, MobileNet). ``pool_size`` is the adaptive-average-pool
    grid (7 for VGG, 6 for AlexNet, 1 = global pooling; ``None`` = input already pooled).

    ``num_classes=0`` drops every classifier layer, hidden ones included: the head is global
    pooling only, so a feature extractor carries no unused 4096x4096 layers (memory, and DDP's
    unused-parameter error). A later ``reset_classifier(n)`` rebuilds fresh hidden layers.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        *,
        hidden: Sequence[int] = (),
        pool_size: int | None = 1,
        dropout: float = 0.0,
        act: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.channels = channels
        self._spec = (tuple(hidden), pool_size, dropout, act)
        self.flatten = nn.Flatten(1)
        self.reset_classifier(num_classes)

    def _build_body(self, num_classes: int) -> None:
        """Pooling and hidden layers for a classifier (``num_classes > 0``) or none (features)."""
        hidden, pool_size, dropout, act = self._spec
        if num_classes <= 0:
            hidden, dropout, pool_size = (), 0.0, pool_size and 1
        self.pool = GridAvgPool(pool_size) if pool_size else nn.Identity()
        width = self.channels * (pool_size or 1) ** 2
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(width, w), act(), nn.Dropout(dropout)]
            width = w
        if not hidden and dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.hidden = nn.Sequential(*layers)
        self.num_features = width

    def forward_pre_logits(self, x: Tensor) -> Tensor:
        return self.hidden(self.flatten(self.pool(x)))

    def forward(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        x = self.forward_pre_logits(x)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh last layer for ``num_classes``; trained hidden layers are kept, dropped ones
        (after ``num_classes=0``) rebuilt; ``0`` drops them all."""
        if num_classes <= 0 or not hasattr(self, "hidden") or self._headless:
            self._build_body(num_classes)
        self._headless = num_classes <= 0
        self.fc: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
