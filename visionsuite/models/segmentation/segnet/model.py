"""SegNet = the library's VGG-BN convolution stages + the index-unpooling decoder + a classifier conv.

Only the VGG blocks are kept: the backbone's classifier (VGG's 4096-wide layers, which
``num_classes=0`` may still hold) is dropped, so no unused parameter reaches the optimiser or DDP.
"""

from __future__ import annotations

from torch import Tensor, nn

from visionsuite.backbones import create_backbone
from visionsuite.backbones.vgg import VGG
from visionsuite.errors import ConfigError
from visionsuite.models.segmentation.segnet.decoder import SegNetDecoder


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al., 2017) on any input size of at least 32x32.

    ``encoder`` is a library VGG name with batch norm (``vgg16_bn`` is the paper's); ``weights``
    goes to the library's weights loading (a file, or a name the backbone knows).
    """

    def __init__(
        self, *, num_classes: int, in_chans: int = 3, encoder: str = "vgg16_bn", weights: str | None = None
    ) -> None:
        super().__init__()
        vgg = create_backbone(encoder, num_classes=0, in_chans=in_chans, weights=weights)
        if not isinstance(vgg, VGG):
            raise ConfigError(f"SegNet needs a library VGG encoder (vgg11_bn … vgg19_bn), got {encoder!r}")
        vgg.head = nn.Identity()  # keep only the conv stages (see the module docstring)
        self.encoder = vgg
        blocks = [(len(block.convs), block.convs[0][0].out_channels) for block in vgg.stages.values()]
        self.decoder = SegNetDecoder(blocks)
        self.classifier = nn.Conv2d(self.decoder.out_channels, num_classes, 3, padding=1)
        self.num_classes = num_classes

    def pyramid(self, x: Tensor) -> list:
        """Per encoder stage, shallow first: pooled features, pooling indices, unpooled size. From the
        backbone's encoder view with indices (a light wrapper over the same stages, built per call
        so the stages are not registered twice in the state dict)."""
        return list(self.encoder.encoder(return_indices=True)(x).values())

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.decoder(self.pyramid(x)))
