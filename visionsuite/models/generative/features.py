"""Feature extractors for FID and KID. Every one takes images as floats in [0, 1], [B, C, H, W]
(generated samples and real images alike, see :mod:`.pixels`), and carries a ``name`` that goes
into every metric key, because a distance computed in one network's feature space is not
comparable with one computed in another's.

* :class:`InceptionFeatures`: the standard FID/KID network (the TF Inception-v3 of Heusel et al.,
  2017, as ported by torch-fidelity, 2048-d pool features). Offline its weights cannot be
  downloaded, so the file must be given: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``
  (the asset of its v0.2.0 release, the one torchmetrics uses). Name: ``inception``.
* :class:`ClassifierFeatures`: the pre-logits features of a visionsuite classifier trained on the
  same dataset (e.g. LeNet-5 on Fashion-MNIST, 84-d). Name: ``<backbone>_<dataset it learnt>``,
  e.g. ``lenet5_fmnist``, given by whoever builds it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionsuite.errors import ConfigError
from visionsuite.models.generative.pixels import normalize

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


class _FrozenExtractor(nn.Module):
    """Always in eval mode, never trained, no gradients (a metric's feature network)."""

    name: str
    num_features: int

    def train(self, mode: bool = True) -> _FrozenExtractor:
        return super().train(False)


def _channels(x: Tensor, want: int) -> Tensor:
    if x.shape[1] == want:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, want, -1, -1)
    if want == 1:
        return x.mean(dim=1, keepdim=True)
    raise ValueError(f"cannot feed {x.shape[1]}-channel images to a {want}-channel feature extractor")


class ClassifierFeatures(_FrozenExtractor):
    """Pre-logits features of a visionsuite backbone, fed the normalisation it was trained with."""

    def __init__(
        self,
        backbone: nn.Module,
        name: str,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        in_chans: int,
        image_size: int | None = None,
    ) -> None:
        """``image_size``: resize inputs to this side first (None: feed them as they are)."""
        super().__init__()
        if not hasattr(backbone, "forward_features"):
            raise ConfigError(f"{type(backbone).__name__} is not a visionsuite backbone (no forward_features)")
        self.backbone = backbone.eval().requires_grad_(False)
        self.name, self.mean, self.std = name, tuple(mean), tuple(std)
        self.in_chans, self.image_size = in_chans, image_size
        side = image_size or getattr(backbone, "default_input_size", (in_chans, 32, 32))[-1]
        with torch.no_grad():
            probe = torch.zeros(2, in_chans, side, side)
            self.num_features = int(self._features(probe).shape[1])

    def _features(self, x: Tensor) -> Tensor:
        feats = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return feats.flatten(1)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        x = _channels(x.float(), self.in_chans)
        if self.image_size is not None and x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self._features(normalize(x, self.mean, self.std))


def classifier_features(
    backbone: str,
    weights: str | os.PathLike[str],
    name: str,
    *,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    in_chans: int,
    image_size: int | None = None,
    **backbone_options: Any,
) -> ClassifierFeatures:
    """Build ``backbone`` and load a classification checkpoint (Lightning ``.ckpt`` or a state_dict)
    into it safely and strictly (``weights_only=True`` via :func:`visionsuite.backbones.weights.safe_load`)."""
    from visionsuite.backbones import create_backbone

    if not Path(weights).is_file():
        raise ConfigError(f"feature extractor {name!r}: weights file {weights} not found (a classifier checkpoint)")
    net = create_backbone(backbone, weights=str(weights), num_classes=num_classes, in_chans=in_chans, **backbone_options)
    return ClassifierFeatures(net, name, mean=mean, std=std, in_chans=in_chans, image_size=image_size)


class InceptionFeatures(_FrozenExtractor):
    """The standard FID network: [0, 1] floats → uint8 RGB → torch-fidelity's Inception-v3 (2048-d)."""

    name = "inception"
    num_features = 2048

    def __init__(self, weights_path: str | os.PathLike[str] | None) -> None:
        super().__init__()
        self.net = _load_inception(weights_path)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        x = (_channels(x.float(), 3).clamp(0, 1) * 255).round().to(torch.uint8)
        (features,) = self.net(x)
        return features


def _load_inception(weights_path: str | os.PathLike[str] | None) -> nn.Module:
    if weights_path is None or not Path(weights_path).is_file():
        given = "none given" if weights_path is None else f"{weights_path} not found"
        raise ConfigError(
            f"the standard Inception FID/KID needs the file {INCEPTION_WEIGHTS_FILE} (torch-fidelity's "
            f"Inception-v3 weights) given locally as inception_weights ({given}); "
            "or use a classifier feature extractor"
        )
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )
    except ImportError:
        raise ConfigError("the standard Inception FID/KID needs torch-fidelity: pip install 'visionsuite[fid]'") from None
    from visionsuite.backbones.weights import safe_load

    # torch-fidelity unpickles its file with weights_only=False; load it safely here, and hand it
    # a copy written from the plain tensors just read, so nothing from the user's file is unpickled.
    state = safe_load(weights_path)
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / INCEPTION_WEIGHTS_FILE
        torch.save(state, clean)
        try:
            return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(clean))
        except RuntimeError as err:
            raise ConfigError(f"{weights_path} is not {INCEPTION_WEIGHTS_FILE}: {str(err).splitlines()[0]}") from None
