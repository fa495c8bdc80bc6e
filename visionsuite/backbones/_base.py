"""The interface every backbone shares, whatever its family.

A backbone is an ordered chain of named *stages* (``stem``, ``stage1`` … or ``features``)
followed by a classifier *head*. The chain gives, for free and identically in every family:

* ``forward_features`` – the last feature map (or vector, for the linear and MLP baselines);
* ``encoder(out_strides)`` – an :class:`~visionsuite.backbones.encoder.Encoder` returning the
  outputs of the stages listed in ``feature_info`` (every stride the network has, 2 included, 1
  for CIFAR stems) as an ordered dict, what segmentation decoders and detection FPNs consume;
* ``freeze`` / ``unfreeze`` by stage name, for transfer learning;
* ``reset_classifier`` to re-target the head to another number of classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn

from visionsuite.backbones.encoder import (
    Encoder,
    FeatureInfo,
    check_input_size,
    select_strides,
)
from visionsuite.backbones.freezing import has_parameters, keep_frozen_norms, set_frozen
from visionsuite.errors import VisionSuiteError


class UnknownBackboneError(VisionSuiteError, ValueError):
    """Raised for a backbone name that no family provides; the message lists valid names."""


class BuilderTable(dict[str, Callable[..., nn.Module]]):
    """One family's builders by name, filled by ``@BACKBONES.add("name")`` in the family module.

    The registry reads each family's table on first use (``_registry._FAMILIES``), so a family
    module never imports the registry: the dependency runs one way, registry → families.
    """

    def add(self, name: str | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        """Decorator: file ``fn`` under ``name`` (default: its ``__name__``)."""

        def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            key = name or fn.__name__
            if key in self:
                raise ValueError(f"backbone {key!r} is registered twice")
            self[key] = fn
            return fn

        return wrap


class Backbone(nn.Module):
    """Base class of every network in the library (see the module docstring for the contract).

    Subclasses fill ``self.stages`` (an ``nn.ModuleDict`` in forward order), ``self.head``
    (an ``nn.Module`` mapping the last features to logits), ``self.num_features`` and
    ``self.feature_info``, and may override ``forward_head`` / ``reset_classifier`` when their
    head is more than a pooled linear layer.
    """

    #: (channels, height, width) the family was designed for; used by ``summary`` and tests.
    default_input_size: tuple[int, int, int] = (3, 224, 224)
    #: smallest (height, width) the architecture accepts; smaller inputs raise a clear error.
    min_input_size: tuple[int, int] = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleDict()
        self.head: nn.Module = nn.Identity()
        self.num_features: int = 0
        self.num_classes: int = 0
        self.feature_info: list[FeatureInfo] = []
        #: how messages name this model (adapters use the registry name, e.g. ``tv/resnet18``).
        self.label: str = type(self).__name__

    # -- forward ---------------------------------------------------------------------------
    def forward_features(self, x: Tensor) -> Tensor:
        """Run every stage; returns the last feature map (before pooling and classifier)."""
        self._check_input(x)
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        """Map features to logits; ``pre_logits=True`` stops at the pooled feature vector
        (or, for heads with hidden layers such as VGG's, at the input of the last linear layer)."""
        if pre_logits:
            exit_ = getattr(self.head, "forward_pre_logits", None)
            return exit_(x) if callable(exit_) else _global_pool(x)
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def encoder(self, out_strides: Iterable[int] | None = None, **options: Any) -> Encoder:
        """A view of this backbone returning its features at ``out_strides`` (default: every
        stride in ``feature_info``) as ``OrderedDict[f"stride{s}", Tensor]``.

        The encoder shares the backbone's modules and holds only the stages up to the deepest
        requested stride; families with extra outputs take ``options`` (VGG: ``return_indices``).
        """
        if options:
            raise TypeError(f"{type(self).__name__}.encoder got unknown option(s) {', '.join(sorted(options))}")
        infos = self._select(out_strides)
        names = list(self.stages.keys())
        stages = {n: self.stages[n] for n in names[: names.index(infos[-1].stage) + 1]}
        taps = {i.stage: i.stride for i in infos}
        return Encoder(stages, taps, [i.channels for i in infos], min_input_size=self.min_input_size, label=self.label)

    def _select(self, out_strides: Iterable[int] | None) -> list[FeatureInfo]:
        strides = select_strides([i.stride for i in self.feature_info], out_strides, self.label)
        return [i for i in self.feature_info if i.stride in strides]

    # -- classifier ------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.head

    def classifier_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of the classifier: what a weights file for another number of
        classes may bring or lack (re-initialised and reported by ``load_pretrained``)."""
        return ("head.",)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer with a fresh one for ``num_classes`` (0 → identity)."""
        reset = getattr(self.head, "reset_classifier", None)
        if callable(reset):  # heads that know their classifier (layers.ClassifierHead)
            reset(num_classes)
            self.num_classes = num_classes
            return
        linear = _last_linear(self, "head")
        if linear is None:
            raise TypeError(f"{type(self).__name__} has no linear classifier to reset; override reset_classifier")
        parent, attr = linear
        old: nn.Linear = getattr(parent, attr)
        new = nn.Linear(old.in_features, num_classes) if num_classes > 0 else nn.Identity()
        setattr(parent, attr, new)
        self.num_classes = num_classes

    # -- transfer learning -----------------------------------------------------------------
    @property
    def stage_names(self) -> list[str]:
        return [*self.stages.keys(), "head"]

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        """The stages that hold weights, shallow first, by name: what ``frozen_stages`` counts,
        ``unfreeze_at`` names and ``stage_lr_decay`` steps through (the head is not a stage)."""
        return {name: [stage] for name, stage in self.stages.items() if has_parameters(stage)}

    def freeze(self, stages: Iterable[str] | None = None, *, train_bn: bool = False) -> None:
        """Stop gradients for ``stages`` (default: every stage but the head).

        Frozen batch-norm layers also stop updating running statistics unless ``train_bn``
        (:mod:`visionsuite.backbones.freezing`).
        """
        for name in self._resolve_stages(stages):
            module = self.head if name == "head" else self.stages[name]
            if train_bn:
                module.requires_grad_(False)
            else:
                set_frozen([module], True, training=self.training)

    def unfreeze(self, stages: Iterable[str] | None = None) -> None:
        """Undo :meth:`freeze` for ``stages`` (default: all, head included)."""
        names = self.stage_names if stages is None else self._resolve_stages(stages)
        modules = [self.head if name == "head" else self.stages[name] for name in names]
        set_frozen(modules, False, training=self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        keep_frozen_norms(self)
        return self

    def _resolve_stages(self, stages: Iterable[str] | None) -> list[str]:
        if stages is None:
            return list(self.stages.keys())
        names = list(stages)
        unknown = [n for n in names if n not in self.stage_names]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown} for {type(self).__name__}; stages are {self.stage_names}")
        return names

    # -- input checks ----------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        check_input_size(x, self.min_input_size, self.label)


def _global_pool(x: Tensor) -> Tensor:
    return x.mean((-2, -1)) if x.dim() == 4 else x  # = adaptive_avg_pool2d(x, 1), deterministic on CUDA


def _last_linear(owner: nn.Module, attr: str) -> tuple[nn.Module, str] | None:
    """(parent, attribute) of the last ``nn.Linear`` at or inside ``owner.<attr>``, or ``None``."""
    module = getattr(owner, attr)
    if isinstance(module, nn.Linear):
        return owner, attr
    found: tuple[nn.Module, str] | None = None
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name)
    return found

