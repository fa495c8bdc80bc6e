"""``build_segmentation_model(name, num_classes=…, in_chans=…, **options)``: every model by one name.

* ``segnet`` — :class:`SegNet` (options: ``encoder`` = a library VGG-BN, ``weights``);
* ``unet`` — the classic :class:`UNet` (``depth``, ``base_width``, ``batch_norm``, ``upsample``);
* ``unet:<backbone>`` — :meth:`UNet.from_encoder` on the library backbone's encoder view
  (``weights``, ``decoder_channels``, ``upsample``, ``batch_norm``);
* ``smp:<Arch>`` — :func:`build_smp` (``encoder``, default ``tu-tf_efficientnet_lite0``;
  ``encoder_weights``, e.g. ``imagenet``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from visionsuite.core.registry import Registry, UnknownNameError, unknown_name_message
from visionsuite.errors import ConfigError
from visionsuite.models.segmentation.segnet import SegNet
from visionsuite.models.segmentation.smp import SMP_ARCHITECTURES, build_smp
from visionsuite.models.segmentation.unet import UNet

#: what the U-Net decoder options are, so the rest goes to the encoder.
_UNET_DECODER_OPTIONS = ("decoder_channels", "upsample", "batch_norm")


#: model families by the part of the name before ``:``; each builder takes
#: ``(detail, num_classes=, in_chans=, **options)`` where ``detail`` is the part after it.
SEGMENTATION_MODELS: Registry[Callable[..., nn.Module]] = Registry("segmentation model")


@SEGMENTATION_MODELS.register("segnet")
def _segnet(detail: str, *, num_classes: int, in_chans: int, **options: Any) -> nn.Module:
    return SegNet(num_classes=num_classes, in_chans=in_chans, **options)


@SEGMENTATION_MODELS.register("unet")
def _unet(detail: str, *, num_classes: int, in_chans: int, **options: Any) -> nn.Module:
    if not detail:
        return UNet(num_classes=num_classes, in_chans=in_chans, **options)
    decoder = {k: options.pop(k) for k in _UNET_DECODER_OPTIONS if k in options}
    encoder = library_encoder(detail, in_chans=in_chans, **options)
    return UNet.from_encoder(encoder, num_classes, **decoder)


@SEGMENTATION_MODELS.register("smp")
def _smp(detail: str, *, num_classes: int, in_chans: int, **options: Any) -> nn.Module:
    return build_smp(detail, num_classes=num_classes, in_chans=in_chans, **options)


#: families whose name needs a ``:<detail>`` part, and those that must not have one.
_NEEDS_DETAIL, _NO_DETAIL = ("smp",), ("segnet",)


def model_names() -> list[str]:
    return ["segnet", "unet", "unet:<backbone>", *(f"smp:{a}" for a in SMP_ARCHITECTURES)]


def build_segmentation_model(name: str, *, num_classes: int, in_chans: int = 3, **options: Any) -> nn.Module:
    """The model ``name`` with ``num_classes`` output channels (see the module docstring)."""
    family, colon, detail = name.partition(":")
    if family not in SEGMENTATION_MODELS or (family in _NEEDS_DETAIL and not detail) or (
        family in _NO_DETAIL and colon
    ) or (colon and not detail):
        raise UnknownNameError(unknown_name_message("segmentation model", name, model_names()))
    try:
        return SEGMENTATION_MODELS[family](detail, num_classes=num_classes, in_chans=in_chans, **options)
    except TypeError as err:  # an option the model does not take
        raise ConfigError(f"segmentation model {name!r}: {err}") from None


def library_encoder(backbone: str, *, in_chans: int = 3, **options: Any) -> nn.Module:
    """The library backbone's encoder view (all strides it has, from 2 or 1), U-Net's contracting path.

    The only place this package touches ``create_encoder`` (the backbones' encoder view).
    """
    try:
        from visionsuite.backbones import create_encoder
    except ImportError:
        raise ConfigError(
            f"unet:{backbone} needs the backbones' encoder view (create_encoder), missing in this version"
        ) from None
    return create_encoder(backbone, in_chans=in_chans, **options)
