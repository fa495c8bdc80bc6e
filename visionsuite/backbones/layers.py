"""Building blocks shared by the families, each selectable by name from a config.

The names are what users write in YAML (``activation: leaky_relu``, ``padding_mode: reflect``),
so every factory here raises a one-line error listing the valid choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Literal

from torch import nn

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
        raise ValueError(f"Unknown {kind} {name!r}; choose one of: {', '.join(choices)}")


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


def make_norm(name: str, channels: int) -> nn.Module:
    """Batch norm over ``channels`` or identity (``none``)."""
    _choose("normalisation", name, ("batch", "none"))
    return nn.BatchNorm2d(channels) if name == "batch" else nn.Identity()


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
) -> nn.Sequential:
    """Conv → norm → activation; the conv has a bias only when there is no norm after it."""
    padding = (kernel_size - 1) // 2 if padding is None else padding
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=norm == "none",
            padding_mode=check_padding_mode(padding_mode),
        ),
        make_norm(norm, out_ch),
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
