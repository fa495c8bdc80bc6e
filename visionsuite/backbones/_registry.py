"""One registry for every backbone family.

Each family module decorates its builders with :func:`register_backbone`; tasks and
configs then ask for a network by name through :func:`create_backbone`.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from visionsuite.errors import ConfigError, VisionSuiteError

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}
# Name prefixes whose builders resolve any model of an external library (``tv/``, ``timm/``).
_PREFIX_RESOLVERS: dict[str, Callable[..., nn.Module]] = {}
# Names and prefixes served by a module imported on first use, so that building ``lenet5``
# never imports torchvision or timm (their import costs seconds, and timm imports torchvision).
_LAZY: dict[str, str] = {
    "tv/": "visionsuite.backbones.torchvision_adapter",
    "timm/": "visionsuite.backbones.timm_adapter",
    "efficientnet_lite0": "visionsuite.backbones.timm_adapter",
}


class UnknownBackboneError(VisionSuiteError, ValueError):
    """Raised for a backbone name that no family provides; the message lists valid names."""


def register_backbone(name: str | None = None) -> Callable[[BuilderT], BuilderT]:
    """Register a builder ``fn(*, num_classes, in_chans, **options) -> Backbone`` under ``name``."""

    def wrap(fn: BuilderT) -> BuilderT:
        key = name or fn.__name__
        if key in _BACKBONES:
            raise ValueError(f"backbone {key!r} is registered twice")
        _BACKBONES[key] = fn
        return fn

    return wrap


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
        importlib.import_module(_LAZY[name])
    if name in _BACKBONES:
        return _BACKBONES[name]
    raise UnknownBackboneError(_unknown_message(name))


def create_backbone(name: str, *, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """Build the backbone ``name``.

    ``tv/<torchvision name>`` and ``timm/<timm name>`` reach external models. ``weights`` is
    either a file (a state_dict, loaded safely after the model is built: strictly, except that a
    classifier for another class count is dropped, re-initialised and reported, and the first
    conv adapted to ``in_chans``; see ``_builder.load_pretrained``) or a weights name the family
    publishes (e.g. torchvision's ``DEFAULT``, timm's ``imagenet``).
    """
    _import_families()
    builder = _resolve(name)
    if weights is None:
        return builder(**kwargs)
    from visionsuite.backbones._builder import build_backbone
    from visionsuite.backbones.weights import is_weights_file

    if is_weights_file(weights):
        return build_backbone(builder, weights, **kwargs)
    try:
        return builder(weights=weights, **kwargs)
    except TypeError as err:
        if "weights" not in str(err):
            raise
        raise ConfigError(
            f"Backbone {name!r} publishes no named weights ({weights!r} is not a file either); "
            "pass the path of a state_dict file"
        ) from None


def _resolve(name: str) -> Callable[..., nn.Module]:
    for prefix, module in _LAZY.items():
        if prefix.endswith("/") and name.startswith(prefix) and prefix not in _PREFIX_RESOLVERS:
            importlib.import_module(module)
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


def _import_families() -> None:
    """Import the family modules so their decorators have run (idempotent)."""
    from visionsuite.backbones import _families  # noqa: F401
