from visionsuite.models.segmentation.unet.decoder import UNetDecoder
from visionsuite.models.segmentation.unet.model import UNet, UNetEncoder

__all__ = ["UNet", "UNetDecoder", "UNetEncoder"]
