from visionsuite.models.segmentation.segnet.model import SegNet

__all__ = ["SegNet"]
