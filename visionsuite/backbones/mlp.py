"""One-hidden-layer perceptron with a skip (linear) layer, as in the course:

    F(x) = α + βᵀx + Σ_h a_h σ(b_h + W_hᵀx)

The skip term βᵀx is the linear model, so the MLP nests it: with a = 0 it *is* the GLM.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from visionsuite.backbones._base import Backbone, BuilderTable
from visionsuite.backbones.layers import build_with_options, make_activation
from visionsuite.backbones.linear import flatten_pixels
from visionsuite.errors import ConfigError

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()


class _SkipHead(nn.Module):
    """α + βᵀx + aᵀσ(b + Wᵀx) for a flattened input x (one output per class)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)  # b, W
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes, bias=False)  # a
        self.skip = nn.Linear(in_features, num_classes)  # α, β

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.out(self.dropout(self.act(self.hidden(x))))


def _require_classes(num_classes: int) -> None:
    if num_classes < 1:
        raise ConfigError("mlp needs num_classes >= 1: its skip layer maps the pixels straight to the classes")


class MLPClassifier(Backbone):
    """Flatten → skip-layer MLP; ``skip=False`` gives the plain one-hidden-layer network."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        input_size: int | tuple[int, int] = 32,
        hidden: int = 10,
        activation: str = "sigmoid",
        dropout: float = 0.0,
        skip: bool = True,
    ) -> None:
        super().__init__()
        _require_classes(num_classes)
        flatten_pixels(self, in_chans, input_size)
        self.num_classes = num_classes
        if skip:
            self.head = _SkipHead(self.num_features, hidden, num_classes, activation, dropout)
        else:
            self.head = nn.Sequential(
                nn.Linear(self.num_features, hidden),
                make_activation(activation),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )

    def reset_classifier(self, num_classes: int) -> None:
        _require_classes(num_classes)
        if isinstance(self.head, _SkipHead):
            head = self.head
            head.out = nn.Linear(head.out.in_features, num_classes, bias=False)
            head.skip = nn.Linear(head.skip.in_features, num_classes)
            self.num_classes = num_classes
        else:
            super().reset_classifier(num_classes)


@BACKBONES.add("mlp")
def mlp(*, num_classes: int = 10, in_chans: int = 3, **options: Any) -> MLPClassifier:
    """The course's MLP: ``hidden`` sigmoid units plus a linear skip layer (options: ``input_size``,
    ``hidden``, ``activation``, ``dropout``, ``skip``)."""
    return build_with_options(MLPClassifier, options, num_classes=num_classes, in_chans=in_chans)
