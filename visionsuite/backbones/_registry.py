"""One registry for every backbone family.

The registry knows its families from the table below and imports each on the first request;
each family module lists its builders in its own ``BACKBONES`` table (a
:class:`~visionsuite.backbones._base.BuilderTable`) and never imports this module, so the
dependency runs one way: registry → families → ``_base``/``layers``. Tasks and configs ask for a
network by name through :func:`create_backbone` (or :func:`create_encoder` for its feature maps);
user code adds its own builders with :func:`register_backbone`.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import nn

from visionsuite.backbones._base import BuilderTable, UnknownBackboneError
from visionsuite.backbones._builder import build_backbone
from visionsuite.backbones.encoder import Encoder
from visionsuite.backbones.preprocessing import weights_preprocessing
from visionsuite.backbones.weights import is_weights_file
from visionsuite.errors import ConfigError

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

#: the course families, imported on the first request; each module's ``BACKBONES`` joins the registry.
_FAMILIES: tuple[str, ...] = tuple(
    f"visionsuite.backbones.{family}"
    for family in ("airbench", "alexnet", "googlenet", "lenet", "linear", "mlp", "mobilenet", "resnet", "vgg")
)
# Names and prefixes served by a module imported on first use, so that building ``lenet5``
# never imports torchvision or timm (their import costs seconds, and timm imports torchvision).
# Such a module's ``BACKBONES`` and ``PREFIXES`` (prefix → resolver) join the registry.
_LAZY: dict[str, str] = {
    "tv/": "visionsuite.backbones.torchvision_adapter",
    "timm/": "visionsuite.backbones.timm_adapter",
    "efficientnet_lite0": "visionsuite.backbones.timm_adapter",
}

_BACKBONES = BuilderTable()
# Name prefixes whose builders resolve any model of an external library (``tv/``, ``timm/``).
_PREFIX_RESOLVERS: dict[str, Callable[..., nn.Module]] = {}
_imported: set[str] = set()

__all__ = [
    "UnknownBackboneError",
    "create_backbone",
    "create_encoder",
    "get_builder",
    "list_backbones",
    "register_backbone",
    "register_prefix",
]


def register_backbone(name: str | None = None) -> Callable[[BuilderT], BuilderT]:
    """Register a builder ``fn(*, num_classes, in_chans, **options) -> Backbone`` under ``name``
    (for user code; the library's own families list theirs in their ``BACKBONES`` table)."""
    _import_families()
    return _BACKBONES.add(name)  # type: ignore[return-value]


def register_prefix(prefix: str, resolver: Callable[..., nn.Module]) -> None:
    """Route every name starting with ``prefix`` (e.g. ``"tv/"``) to ``resolver(name, **kwargs)``."""
    _PREFIX_RESOLVERS[prefix] = resolver


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of the built-in backbones matching a shell-style ``pattern``, sorted."""
    _import_families()
    names = set(_BACKBONES) | {n for n in _LAZY if not n.endswith("/")}
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``; a clear error listing valid names otherwise."""
    _import_families()
    if name in _LAZY and name not in _BACKBONES:
        _import(_LAZY[name])
    if name in _BACKBONES:
        return _BACKBONES[name]
    raise UnknownBackboneError(_unknown_message(name))


def create_backbone(name: str, *, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """Build the backbone ``name``.

    ``tv/<torchvision name>`` and ``timm/<timm name>`` reach external models. ``weights`` is
    either a file (a state_dict, loaded safely after the model is built: strictly, except that a
    classifier for another class count is dropped, re-initialised and reported, and the first
    conv adapted to ``in_chans``; see ``_builder.load_pretrained``) or a weights name the family
    publishes (e.g. torchvision's ``DEFAULT``, timm's ``imagenet``). A model built with named
    weights carries their preprocessing as ``.preprocessing`` (input size, mean/std,
    interpolation; :func:`~visionsuite.backbones.preprocessing.weights_preprocessing`), which
    every task checks against its data (``BaseTask.setup``); ``None`` where none is known.
    """
    _import_families()
    builder = _resolve(name)
    if weights is None:
        return builder(**kwargs)
    if is_weights_file(weights):
        return build_backbone(builder, weights, **kwargs)
    try:
        model = builder(weights=weights, **kwargs)
    except TypeError as err:
        if "weights" not in str(err):
            raise
        raise ConfigError(
            f"Backbone {name!r} publishes no named weights ({weights!r} is not a file either); "
            "pass the path of a state_dict file"
        ) from None
    model.preprocessing = weights_preprocessing(name, weights, model)
    return model


def _resolve(name: str) -> Callable[..., nn.Module]:
    for prefix, module in _LAZY.items():
        if prefix.endswith("/") and name.startswith(prefix) and prefix not in _PREFIX_RESOLVERS:
            _import(module)
    for prefix, resolver in _PREFIX_RESOLVERS.items():
        if name.startswith(prefix):
            return functools.partial(resolver, name[len(prefix) :])
    return get_builder(name)


def _unknown_message(name: str) -> str:
    names = list_backbones()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    prefixes = ", ".join(f"'{p}<name>'" for p in sorted(_LAZY) if p.endswith("/"))
    return (
        f"Unknown backbone {name!r}.{hint} Valid names: {', '.join(names)}"
        + (f"; external models: {prefixes}." if prefixes else ".")
    )


def create_encoder(
    name: str,
    *,
    out_strides: Iterable[int] | None = None,
    in_chans: int = 3,
    weights: str | None = None,
    **options: Any,
) -> Encoder:
    """The encoder of backbone ``name``: features at ``out_strides`` (default: all), no classifier.

    Built with ``num_classes=0`` so no classifier layer exists; a classification weights file
    loads with its classifier dropped (reported). Encoder options (VGG's ``return_indices``) go
    to ``Backbone.encoder``, the rest to the family. timm encoders are pruned after the deepest
    stride. ``forward`` returns ``OrderedDict[f"stride{s}", Tensor]``; ``.out_channels`` and
    ``.strides`` list each level.
    """
    encoder_options = {k: options.pop(k) for k in ("return_indices",) if k in options}
    backbone = create_backbone(name, num_classes=0, in_chans=in_chans, weights=weights, **options)
    encoder = backbone.encoder(out_strides, **encoder_options)
    encoder.preprocessing = getattr(backbone, "preprocessing", None)
    prune = getattr(encoder, "prune", None)
    if callable(prune):
        with torch.no_grad():
            prune()
    return encoder


def _import(module_name: str) -> None:
    """Import a family module once and file its ``BACKBONES`` and ``PREFIXES``."""
    if module_name in _imported:
        return
    module = importlib.import_module(module_name)
    _imported.add(module_name)
    for key, builder in getattr(module, "BACKBONES", {}).items():
        _BACKBONES.add(key)(builder)
    _PREFIX_RESOLVERS.update(getattr(module, "PREFIXES", {}))


def _import_families() -> None:
    """Import the course family modules so their builders are filed (idempotent)."""
    for module_name in _FAMILIES:
        _import(module_name)
