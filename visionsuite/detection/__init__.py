"""Object detection parts: scenes, detector builders, mAP, pictures and COCO-results output.

Plain PyTorch/torchvision pieces with no Lightning in them; the detection task and its data
modules wire them in.
"""
