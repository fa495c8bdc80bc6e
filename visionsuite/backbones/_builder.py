"""The one place where a built network meets its weights and its use (timm ``_builder.py``-style).

Everything that differs between a weights file and the model asked for is settled here, once,
for every family: the first convolution is adapted to ``in_chans``; a classifier of another size
(or one the model does not have, ``num_classes=0``) is left out, re-initialised, and *reported*
(a warning naming the keys, and the returned :class:`LoadReport`); every other key loads
strictly. :func:`~visionsuite.backbones.create_encoder` then selects the strides (``out_strides``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from visionsuite.backbones.weights import (
    LoadReport,
    align_keys,
    load_weights,
    safe_load,
    strip_uniform_prefix,
)

log = logging.getLogger(__name__)


def adapt_input_conv(in_chans: int, weight: Tensor) -> Tensor:
    """A first-conv ``weight`` [O, I, k, k] for ``in_chans`` inputs: summed over the channels for
    one (grey = R+G+B), else repeated cyclically and scaled by I/in_chans (timm's rule), so that a
    pretrained filter keeps its response to a uniform image."""
    dtype, w = weight.dtype, weight.float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    elif in_chans != w.shape[1]:
        repeats = -(-in_chans // w.shape[1])
        w = w.repeat(1, repeats, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)
    return w.to(dtype)


def first_conv_key(model: nn.Module) -> str | None:
    """State-dict key of the first convolution's weight (the layer ``in_chans`` changes)."""
    name = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return None if name is None else f"{name}.weight"


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    classifier: Iterable[str] | None = None,
) -> LoadReport:
    """Load ``source`` into ``model``, re-targeting the classifier and the input channels.

    ``classifier``: state-dict prefixes of the classifier (default: the backbone's
    ``classifier_prefixes()``). Keys under them that the model lacks or holds with another shape
    are dropped, the model's own stay freshly initialised, and both lists are logged as a
    warning and returned (``report.dropped``, ``report.fresh``). Any other difference raises
    :class:`~visionsuite.backbones.WeightsMismatchError`, as a plain strict load does.
    """
    prefixes = tuple(model.classifier_prefixes() if classifier is None else classifier)  # type: ignore[operator]
    where = str(source) if not isinstance(source, Mapping) else "state_dict"
    state = strip_uniform_prefix(source) if isinstance(source, Mapping) else safe_load(source)
    target = model.state_dict()
    aligned, _ = align_keys(state, target.keys())
    conv = first_conv_key(model)
    if conv in aligned and conv in target and aligned[conv].shape[1] != target[conv].shape[1]:
        aligned[conv] = adapt_input_conv(target[conv].shape[1], aligned[conv])

    def head(key: str) -> bool:
        return key.startswith(prefixes)

    dropped = [k for k in aligned if head(k) and (k not in target or aligned[k].shape != target[k].shape)]
    dropped_modules = {k.rsplit(".", 1)[0] for k in dropped}  # a layer loads whole or not at all
    dropped += [k for k in aligned if head(k) and k not in dropped and k.rsplit(".", 1)[0] in dropped_modules]
    kept = {k: v for k, v in aligned.items() if k not in dropped}
    fresh = [k for k in target if head(k) and k not in kept]
    report = load_weights(model, kept, fresh=fresh)
    report.dropped, report.fresh = dropped, fresh
    if dropped or fresh:
        parts = [f"dropped {len(dropped)} key(s) [{', '.join(dropped)}]"] if dropped else []
        parts += [f"re-initialised {len(fresh)} [{', '.join(fresh)}]"] if fresh else []
        log.warning("Loaded %s into %s without its classifier: %s", where, getattr(model, "label", type(model).__name__),
                    "; ".join(parts))  # fmt: skip
    return report


def build_backbone(builder: Callable[..., nn.Module], weights: str | os.PathLike[str] | None, **kwargs: Any):
    """``builder(**kwargs)`` with a weights file loaded by :func:`load_pretrained`."""
    model = builder(**kwargs)
    if weights is not None:
        load_pretrained(model, weights)
    return model
