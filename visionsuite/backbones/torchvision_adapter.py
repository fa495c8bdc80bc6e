"""Every torchvision classification model behind the :class:`Backbone` interface: ``tv/<name>``.

torchvision models have no ``forward_features``: their ``forward`` is, for every CNN family, the
top-level children run in order (``features`` / ``layer1`` …) followed by pooling and a
classifier. The adapter splits those children into a trunk and a head, runs a dummy forward to
measure each child's stride, and groups the trunk into stages named by stride (``stage{k}`` has
stride ``2**k``, as in the course families). ViT, whose forward adds a class token, gets a small
explicit split.

``create_backbone("tv/resnet18", num_classes=10, in_chans=1, weights="DEFAULT")`` builds the model,
loads torchvision's weights (offline: a one-line error suggesting a local file), re-targets the
classifier and adapts the first convolution to one channel (summing pretrained filters, as timm).
"""

from __future__ import annotations

import difflib
import math
import urllib.error
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from visionsuite.backbones._base import (
    Backbone,
    FeatureInfo,
    UnknownBackboneError,
    _global_pool,
)
from visionsuite.backbones.layers import GridAvgPool
from visionsuite.backbones.weights import unavailable

#: top-level children that form the classifier (after the trunk), in every torchvision family.
_HEAD_CHILDREN = ("avgpool", "dropout", "flatten", "fc", "classifier", "head", "heads")
#: auxiliary classifiers (GoogLeNet, Inception-v3) that the features never pass through.
_AUX_CHILDREN = ("aux1", "aux2", "AuxLogits")
#: containers opened one level so that stages can cut inside them (VGG's ``features``, …).
_CONTAINERS = ("features", "trunk_output", "layers", "blocks")
#: families whose trunk tensors are (N, H, W, C); only NCHW outputs enter ``feature_info``.
_CHANNELS_LAST = ("SwinTransformer",)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)

#: a member of a stage or the head: the name of a module inside the wrapped model, or an extra
#: parameter-free module the model's ``forward`` applied functionally (pooling, flatten).
Member = str | nn.Module


class ExternalBackbone(Backbone):
    """A model from another library, owned as ``self.model`` so its state_dict keys stay the
    library's own (prefixed ``model.``) and its files load directly.

    ``stages`` and ``head`` are *views*: containers referring to the model's modules, not
    registered as children (registering them would list every weight twice in the state_dict).
    They serve freezing, the encoder view and, for torchvision, running the model in pieces.
    """

    def __init__(self, model: nn.Module, label: str) -> None:
        super().__init__()
        del self.stages, self.head  # replaced by unregistered views below
        self.model = model
        self.label = label  # the registry name, e.g. "tv/resnet18", for messages
        self._set_views({}, nn.Identity())

    def _set_views(self, stages: dict[str, nn.Module], head: nn.Module) -> None:
        object.__setattr__(self, "stages", nn.ModuleDict(stages))
        object.__setattr__(self, "head", head)

    def reset_classifier(self, num_classes: int) -> None:  # pragma: no cover - each adapter overrides
        raise NotImplementedError


class TorchvisionBackbone(ExternalBackbone):
    """A torchvision classification model split into stride-named stages and a head."""

    def __init__(self, name: str, model: nn.Module, *, in_chans: int = 3) -> None:
        super().__init__(model, f"tv/{name}")
        self.name = name
        weights_enum = torchvision.models.get_model_weights(name)
        meta = weights_enum.DEFAULT.meta
        crop = weights_enum.DEFAULT.transforms().crop_size[0]
        self.default_input_size = (in_chans, crop, crop)
        self.min_input_size = tuple(meta.get("min_size", (1, 1)))  # type: ignore[assignment]
        trunk, self._head_members = _split(model)
        self._classifier = _classifier_name(model, self._head_members)
        self._build(trunk)

    # -- structure -------------------------------------------------------------------------
    def _build(self, trunk: list[Member]) -> None:
        """Probe the trunk with a dummy image, group it by stride into stages, fill feature_info."""
        groups: dict[str, list[Member]] = {}
        shapes: dict[str, tuple[int, int, bool]] = {}  # stage -> (stride, channels, is NCHW)
        nhwc = type(self.model).__name__ in _CHANNELS_LAST
        x = torch.zeros(1, *self.default_input_size)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for member in trunk:
                x = self._resolve(member)(x)
                nhwc &= member != "permute"  # Swin turns its NHWC maps to NCHW before pooling
                if x.dim() == 4:
                    side, channels = (x.shape[1], x.shape[-1]) if nhwc else (x.shape[-2], x.shape[1])
                    stride = 2 ** max(round(math.log2(self.default_input_size[1] / side)), 0)
                    name = f"stage{stride.bit_length() - 1}"
                    shapes[name] = (stride, channels, not nhwc)
                else:  # tokens (ViT): one stage per member
                    name = member if isinstance(member, str) else "stem"
                groups.setdefault(name, []).append(member)
            self._set_views({n: self._view(m) for n, m in groups.items()}, self._view(self._head_members))
            self.head_hidden_size = self.forward_head(x, pre_logits=True).shape[-1]
        self.model.train(was_training)
        #: which torchvision modules each stage holds, for reading ``freeze`` calls.
        self.stage_members = {
            n: [m if isinstance(m, str) else type(m).__name__ for m in ms] for n, ms in groups.items()
        }
        self.feature_info = [
            FeatureInfo(name, stride, channels)
            for name, (stride, channels, nchw) in shapes.items()
            if nchw
        ]
        self.num_features = x.shape[1] if x.dim() == 4 else x.shape[-1]
        self.num_classes = _num_outputs(self.model.get_submodule(self._classifier))

    def _resolve(self, member: Member) -> nn.Module:
        return self.model.get_submodule(member) if isinstance(member, str) else member

    def _view(self, members: Sequence[Member]) -> nn.Sequential:
        return nn.Sequential(*(self._resolve(m) for m in members))

    # -- forward ---------------------------------------------------------------------------
    def forward_head(self, x: Tensor, *, pre_logits: bool = False) -> Tensor:
        if not pre_logits:
            return self.head(x)
        cut = self._head_members.index(self._classifier)
        return _global_pool(self.head[:cut](x))

    def classifier_prefixes(self) -> tuple[str, ...]:
        """The head's layers with parameters, by their torchvision names (``model.fc.`` …)."""
        return tuple(f"model.{m}." for m in self._head_members if isinstance(m, str))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer (linear, or SqueezeNet's 1x1 conv) inside the wrapped model."""
        old = self.model.get_submodule(self._classifier)
        if isinstance(old, nn.Identity):
            raise TypeError(f"{self.name} has no classifier left to reset (num_classes=0 removed it)")
        if num_classes <= 0:
            new: nn.Module = nn.Identity()
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(old.in_channels, num_classes, 1)
        else:
            new = nn.Linear(old.in_features, num_classes)
        self.model.set_submodule(self._classifier, new)
        self._set_views(dict(self.stages), self._view(self._head_members))
        self.num_classes = max(num_classes, 0)


# -- splitting a torchvision model -------------------------------------------------------------
def _split(model: nn.Module) -> tuple[list[Member], list[Member]]:
    """(trunk, head) members of ``model``, in forward order."""
    if isinstance(model, torchvision.models.VisionTransformer):
        tokens = _Call(model, _vit_tokens, conv_proj=model.conv_proj, class_token=model.class_token)
        return [tokens, "encoder"], [_Call(model, _class_token), *_open(model, "heads")]
    trunk: list[Member] = []
    if getattr(model, "transform_input", False):  # GoogLeNet / Inception-v3 with ImageNet weights
        trunk.append(_Call(model, _transform_input))
    head: list[str] = []
    for name, _ in model.named_children():
        if name in _AUX_CHILDREN:
            continue
        if name in _HEAD_CHILDREN:
            head += _open(model, name)
        else:
            trunk += _open(model, name) if name in _CONTAINERS else [name]
    return trunk, _complete_head(model, head)


def _open(model: nn.Module, name: str) -> list[str]:
    """``name``'s children's names if it is a container (Sequential, ModuleList), else ``[name]``."""
    module = model.get_submodule(name)
    if isinstance(module, nn.Sequential | nn.ModuleList):
        return [f"{name}.{child}" for child, _ in module.named_children()]
    return [name]


def _complete_head(model: nn.Module, head: list[str]) -> list[Member]:
    """Add the pooling, flattening and activation that ``forward`` applies functionally."""
    modules = [model.get_submodule(n) for n in head]
    members: list[Member] = []
    if isinstance(model, torchvision.models.DenseNet):
        members.append(nn.ReLU())  # DenseNet.forward: F.relu(features)
    if not any(isinstance(m, _POOLS) for m in modules):
        members.append(GridAvgPool(1))  # MobileNetV2, MNASNet, ShuffleNetV2, DenseNet
    flattened = False
    for name, module in zip(head, modules):
        flattened |= isinstance(module, nn.Flatten)
        if isinstance(module, nn.Linear) and not flattened:
            members.append(nn.Flatten(1))
            flattened = True
        members.append(name)
    if not flattened:
        members.append(nn.Flatten(1))  # SqueezeNet's convolutional classifier
    return members


def _classifier_name(model: nn.Module, head: list[Member]) -> str:
    """The head's final linear layer (or final conv for SqueezeNet)."""
    names = [m for m in head if isinstance(m, str)]
    for kind in (nn.Linear, nn.Conv2d):
        found = [n for n in names if isinstance(model.get_submodule(n), kind)]
        if found:
            return found[-1]
    raise TypeError(f"no classifier layer found in {type(model).__name__}'s head {names}")


def _num_outputs(layer: nn.Module) -> int:
    return getattr(layer, "out_features", getattr(layer, "out_channels", 0))


class _Call(nn.Module):
    """A view running ``fn(model, x)``; ``parts`` (the model's modules it uses) are registered in
    the view so that freezing the stage reaches them. The model itself is held unregistered."""

    def __init__(
        self, model: nn.Module, fn: Callable[[nn.Module, Tensor], Tensor], **parts: nn.Module | nn.Parameter
    ) -> None:
        super().__init__()
        object.__setattr__(self, "_model", model)
        self._fn = fn
        for name, part in parts.items():
            if isinstance(part, nn.Parameter):
                self.register_parameter(name, part)
            else:
                self.add_module(name, part)

    def forward(self, x: Tensor) -> Tensor:
        return self._fn(self._model, x)


def _transform_input(model: nn.Module, x: Tensor) -> Tensor:
    return model._transform_input(x)


def _class_token(model: nn.Module, x: Tensor) -> Tensor:
    return x[:, 0]


def _vit_tokens(model: nn.Module, x: Tensor) -> Tensor:
    """ViT's input processing: patches plus the class token (VisionTransformer.forward)."""
    x = model._process_input(x)
    return torch.cat([model.class_token.expand(x.shape[0], -1, -1), x], dim=1)


# -- building ----------------------------------------------------------------------------------
def list_torchvision_models() -> list[str]:
    """Names of torchvision's classification models."""
    return torchvision.models.list_models(module=torchvision.models)


def unknown_external(library: str, name: str, names: Sequence[str], prefix: str) -> UnknownBackboneError:
    """The error for an unknown ``tv/`` or ``timm/`` name, listing the closest valid ones."""
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(prefix + c for c in close)}?" if close else ""
    return UnknownBackboneError(f"Unknown {library} model {name!r}.{hint} ({len(names)} models available.)")


def create_torchvision(
    name: str, *, num_classes: int = 1000, in_chans: int = 3, weights: str | None = None, **kwargs: Any
) -> TorchvisionBackbone:
    """Build ``torchvision.models.<name>`` as a :class:`TorchvisionBackbone` (``tv/<name>``).

    ``weights`` is a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``); with weights the
    model is built for their 1000 classes, then re-targeted to ``num_classes``.
    """
    names = list_torchvision_models()
    if name not in names:
        raise unknown_external("torchvision", name, names, "tv/")
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)  # auxiliary heads are a training trick of the original recipe
        if weights is None:
            kwargs.setdefault("init_weights", True)  # torchvision's choice, stated to silence its FutureWarning
    if weights is not None:
        model = _pretrained(name, weights, **kwargs)
    else:
        model = torchvision.models.get_model(name, weights=None, num_classes=max(num_classes, 1), **kwargs)
    if in_chans != 3:
        _adapt_first_conv(model, in_chans)
    backbone = TorchvisionBackbone(name, model, in_chans=in_chans)
    if num_classes != backbone.num_classes:
        backbone.reset_classifier(num_classes)
    return backbone


def _pretrained(name: str, weights: str, **kwargs: Any) -> nn.Module:
    enum = torchvision.models.get_model_weights(name)
    valid = list(dict.fromkeys(["DEFAULT", *enum.__members__]))
    if str(weights).replace(f"{enum.__name__}.", "") not in valid:
        raise ValueError(f"Unknown torchvision weights {weights!r} for {name}; choose one of: {', '.join(valid)}")
    chosen = enum.verify(weights)
    try:
        return torchvision.models.get_model(name, weights=chosen, **kwargs)
    except (urllib.error.URLError, OSError) as err:
        raise unavailable(f"torchvision weights {chosen}", getattr(err, "reason", err), url=chosen.url) from None


def _adapt_first_conv(model: nn.Module, in_chans: int) -> None:
    """Give the first convolution ``in_chans`` inputs, its filters summed/repeated as timm does."""
    from visionsuite.backbones._builder import adapt_input_conv

    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(in_chans, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    model.set_submodule(name, new)
    if hasattr(model, "transform_input"):
        model.transform_input = False  # its per-channel ImageNet re-normalisation assumes RGB


#: name prefixes this module resolves (``tv/<any torchvision model>``); the registry reads it.
PREFIXES = {"tv/": create_torchvision}
