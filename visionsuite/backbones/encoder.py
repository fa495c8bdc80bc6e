"""The encoder view of a backbone: its feature maps at chosen strides, as an ordered dict.

Why an ordered dict keyed ``stride{s}`` with ``out_channels``: it is what torchvision's
``FeaturePyramidNetwork`` and detection models take (``BackboneWithFPN``'s body returns one), and
what segmentation decoders index by stride, so no task needs glue code between a backbone and a
neck. The encoder holds only the stages it runs (never the classifier, never deeper stages), so
DDP finds no unused parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from visionsuite.errors import ConfigError


@dataclass(frozen=True)
class FeatureInfo:
    """One multi-scale output: the stage that produces it, its stride and its channel count.

    ``feature_info`` lists one entry per stride (the last stage at that stride), shallow to deep."""

    stage: str
    stride: int
    channels: int


class NoEncoderError(ConfigError):
    """The backbone has no spatial feature maps to return (the pixel-space linear and MLP models)."""


def is_traced() -> bool:
    """True while the model is traced, scripted, compiled or exported: Python branches on tensor
    shapes would then be baked into (or break) the graph, so input checks step aside."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def check_input_size(x: Tensor, min_size: tuple[int, int], label: str) -> None:
    """A one-line error for an input smaller than ``min_size`` (skipped while tracing/exporting)."""
    if is_traced():
        return
    min_h, min_w = min_size
    if x.dim() == 4 and (x.shape[-2] < min_h or x.shape[-1] < min_w):
        raise ValueError(f"{label} needs inputs of at least {min_h}x{min_w} pixels, got {x.shape[-2]}x{x.shape[-1]}")


def stride_key(stride: int) -> str:
    return f"stride{stride}"


def select_strides(available: Sequence[int], out_strides: Iterable[int] | None, label: str) -> list[int]:
    """The requested strides (default: all), checked against the ones the backbone has."""
    if not available:
        raise NoEncoderError(f"{label} has no feature maps (it works on flattened pixels): it cannot be an encoder")
    if out_strides is None:
        return list(available)
    wanted = sorted({int(s) for s in out_strides})
    unknown = [s for s in wanted if s not in available]
    if unknown or not wanted:
        raise ConfigError(
            f"{label} has no feature map at stride(s) {unknown or '(none asked)'}; "
            f"its strides are {', '.join(map(str, available))}"
        )
    return wanted


class Encoder(nn.Module):
    """Runs ``stages`` in order and returns the outputs of those named in ``taps`` (stage → stride).

    ``out_channels`` and ``strides`` list, per returned level and in order, what ``forward``'s
    values hold; ``feature_info`` says the same as :class:`~visionsuite.backbones.FeatureInfo`.
    """

    def __init__(
        self,
        stages: Mapping[str, nn.Module],
        taps: Mapping[str, int],
        channels: Sequence[int],
        *,
        min_input_size: tuple[int, int] = (1, 1),
        label: str = "encoder",
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self._taps = {stage: stride_key(stride) for stage, stride in taps.items()}
        self.strides: list[int] = list(taps.values())
        self.out_channels: list[int] = list(channels)
        self.feature_info = [FeatureInfo(s, st, c) for (s, st), c in zip(taps.items(), channels, strict=True)]
        self.min_input_size = min_input_size
        self.label = label

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        """The stages that hold weights, by name, shallow first (as :meth:`Backbone.stage_groups`)."""
        return {name: [stage] for name, stage in self.stages.items() if next(stage.parameters(), None) is not None}

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        check_input_size(x, self.min_input_size, self.label)
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, stage in self.stages.items():
            x = stage(x)
            key = self._taps.get(name)
            if key is not None:
                out[key] = x
        return out
