"""Semantic segmentation models (SegNet, U-Net, smp architectures), losses, metrics and class weights.

Plain PyTorch modules: logits [B, num_classes, H, W] for an image batch [B, C, H, W] of any size;
the task wires them to the data (masks int64 [B, H, W] with the data's ``ignore_index``).
"""

from visionsuite.models.segmentation.class_weights import (
    class_pixel_counts,
    median_frequency_weights,
)
from visionsuite.models.segmentation.factory import (
    build_segmentation_model,
    model_names,
)
from visionsuite.models.segmentation.losses import (
    CEDiceLoss,
    DiceLoss,
    FocalLoss,
    build_loss,
)
from visionsuite.models.segmentation.metrics import segmentation_metrics
from visionsuite.models.segmentation.segnet import SegNet
from visionsuite.models.segmentation.smp import (
    SMP_ARCHITECTURES,
    PadToMultiple,
    build_smp,
)
from visionsuite.models.segmentation.unet import UNet, UNetDecoder, UNetEncoder

__all__ = [
    "CEDiceLoss",
    "DiceLoss",
    "FocalLoss",
    "PadToMultiple",
    "SMP_ARCHITECTURES",
    "SegNet",
    "UNet",
    "UNetDecoder",
    "UNetEncoder",
    "build_loss",
    "build_segmentation_model",
    "class_pixel_counts",
    "median_frequency_weights",
    "model_names",
    "segmentation_metrics",
]
