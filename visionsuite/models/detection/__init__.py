"""Object detection networks: detector builders on any backbone + FPN, mAP, test-time flip.

Plain PyTorch/torchvision pieces with no Lightning in them; :class:`visionsuite.tasks.DetectionTask`
and the detection data modules wire them in. Its data set (the Fashion-MNIST scenes) lives in
:mod:`visionsuite.data.scenes`, its pictures and COCO-results files in :mod:`visionsuite.outputs`.
"""
