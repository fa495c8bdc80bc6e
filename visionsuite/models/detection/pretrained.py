"""Whole COCO-trained torchvision detectors, re-targeted to the data's classes.

Only a backbone can start pretrained in :func:`~visionsuite.models.detection.detector.build_detector`;
fine-tuned from there on COCO128 a detector reaches ~0.07 mAP@.5. Users of torchvision, MMDetection
or Ultralytics start from a whole detector trained on COCO instead. This module builds one of
torchvision's (:data:`DETECTORS`) for the data's class count and loads its weights:

* the network is torchvision's constructor with ``weights=None, weights_backbone=None``, then put in
  the state torchvision leaves it in with its COCO weights: ``FrozenBatchNorm2d`` in the backbone
  where torchvision freezes it (eps 0 for ``fasterrcnn_resnet50_fpn``'s old weights), and the first
  backbone stages frozen (``trainable_backbone_layers=3``); its resize-and-normalise transform is
  replaced by :class:`~visionsuite.models.detection.detector.PreparedBatchTransform` (the data
  module does both), and it is wrapped in :class:`~visionsuite.models.detection.detector.Detector`,
  so the data's labels ``0..K-1`` meet the head's background offset in one place;
* the weights (a torchvision enum name, from the torch hub cache or downloaded, or a local file,
  always read ``weights_only``) load into every layer but the class-indexed ones, which are taken
  over row by row for the data classes that have a COCO name (:meth:`ClassRows.take`): torchvision's
  COCO layers have 91 slots (0 ``__background__``, ``N/A`` gaps), its files say which in
  ``weights.meta["categories"]``, available offline.

The class names are the data module's, known only when the trainer sets the task up, so the rows
wait in a :class:`ClassRows` until then; a checkpoint restored afterwards replaces them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from visionsuite.backbones.weights import (
    WeightsFileError,
    host_reachable,
    is_weights_file,
    safe_load,
)
from visionsuite.errors import ConfigError
from visionsuite.models.detection.detector import (
    Detector,
    PreparedBatchTransform,
    head_num_classes,
)


@dataclass(frozen=True)
class DetectorArch:
    """One of torchvision's COCO detectors, and what this module must know about its layout."""

    #: the visionsuite head kind, which fixes the label offset (1 where slot 0 is background).
    head: str
    #: regexes of the modules whose ``weight``/``bias`` rows are per class, and their row order:
    #: ``True`` class-major (row ``c * n + j``: Faster R-CNN's 4 box rows per class), ``False``
    #: anchor-major (row ``a * C + c``: the heads' ``view(N, A, C, H, W)``).
    class_layers: tuple[tuple[str, bool], ...]
    #: the backbone layout torchvision freezes with its weights: ``resnet``/``mobilenet`` (its
    #: first stages, ``trainable_backbone_layers=3``), or ``""`` (SSDlite: all of it trains).
    frozen_stages: str = ""
    #: torchvision builds the backbone with ``FrozenBatchNorm2d`` when its weights load.
    frozen_bn: bool = False
    #: eps of those frozen norms (``fasterrcnn_resnet50_fpn``'s weights predate torchvision's eps fix).
    frozen_eps: float = 1e-5
    #: constructor names of score threshold, NMS IoU and detections per image.
    inference_kwargs: tuple[str, str, str] = ("score_thresh", "nms_thresh", "detections_per_img")


_RCNN_LAYERS = ((r"roi_heads\.box_predictor\.cls_score", True), (r"roi_heads\.box_predictor\.bbox_pred", True))
_RCNN_KWARGS = ("box_score_thresh", "box_nms_thresh", "box_detections_per_img")
_HEAD_LOGITS = ((r"head\.classification_head\.cls_logits", False),)

#: the whole detectors by torchvision builder name (``visionsuite.tasks.DetectionTask(detector=…)``).
ARCHS: dict[str, DetectorArch] = {
    "fasterrcnn_resnet50_fpn": DetectorArch("fasterrcnn", _RCNN_LAYERS, "resnet", True, 0.0, _RCNN_KWARGS),
    "fasterrcnn_resnet50_fpn_v2": DetectorArch("fasterrcnn", _RCNN_LAYERS, "resnet", False, inference_kwargs=_RCNN_KWARGS),
    "fasterrcnn_mobilenet_v3_large_fpn": DetectorArch("fasterrcnn", _RCNN_LAYERS, "mobilenet", True, inference_kwargs=_RCNN_KWARGS),
    "retinanet_resnet50_fpn_v2": DetectorArch("retinanet", _HEAD_LOGITS, "resnet"),
    "fcos_resnet50_fpn": DetectorArch("fcos", _HEAD_LOGITS, "resnet", True),
    "ssdlite320_mobilenet_v3_large": DetectorArch("ssdlite", ((r"head\.classification_head\.module_list\.\d+\.1", False),)),
}  # fmt: skip
DETECTORS = tuple(ARCHS)
#: torchvision's default number of trainable backbone stages with pretrained weights.
TRAINABLE_STAGES = 3
#: Pascal VOC's spellings of COCO classes (VOCDetectionDataModule's defaults).
ALIASES = {"aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
           "diningtable": "dining table", "pottedplant": "potted plant"}  # fmt: skip


def arch_of(name: str) -> DetectorArch:
    """The entry of ``name``, or one line listing the valid names."""
    if name not in ARCHS:
        from visionsuite.core.registry import unknown_name_message

        raise ConfigError(unknown_name_message("detector", name, list(DETECTORS)))
    return ARCHS[name]


#: ``detector_weights`` of a task rebuilt from its checkpoint (``visionsuite.runs.trained``): the
#: structure the weights gave it (frozen norms and stages), without reading the file again,
#: since the checkpoint holds the trained weights.
WEIGHTS_IN_CHECKPOINT = "in-checkpoint"


# -- building -------------------------------------------------------------------------------------
def build_coco_detector(
    name: str,
    num_classes: int,
    *,
    pretrained: bool,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    **kwargs: Any,
) -> tuple[Detector, tuple[tuple[float, ...], tuple[float, ...]]]:
    """torchvision's ``name`` for ``num_classes`` data classes, wrapped in a :class:`Detector`, and the
    input normalisation (mean, std) its weights were trained with. ``pretrained``: freeze what
    torchvision freezes when it loads its COCO weights (else everything trains, as torchvision does
    without weights). ``kwargs`` go to the torchvision constructor (``rpn_post_nms_top_n_test``,
    ``topk_candidates``, …)."""
    import torchvision

    arch = arch_of(name)
    options = dict(zip(arch.inference_kwargs, (score_thresh, nms_thresh, detections_per_img), strict=True))
    model = torchvision.models.get_model(
        name, weights=None, weights_backbone=None, num_classes=head_num_classes(arch.head, num_classes), **kwargs, **options
    )
    normalisation = (tuple(model.transform.image_mean), tuple(model.transform.image_std))
    model.transform = PreparedBatchTransform()
    if pretrained:
        _as_torchvision_pretrained(model, arch)
    return Detector(model, arch.head, num_classes), normalisation


def _as_torchvision_pretrained(model: nn.Module, arch: DetectorArch) -> None:
    """The frozen norms and stages torchvision's constructor sets up when its weights are loaded."""
    if not (arch.frozen_bn or arch.frozen_stages):  # SSDlite: torchvision trains all of it
        return
    body = model.backbone.body
    if arch.frozen_bn:
        _freeze_batch_norms(body, arch.frozen_eps)
    if arch.frozen_stages == "resnet":  # torchvision's _resnet_fpn_extractor
        trained = ("layer4", "layer3", "layer2", "layer1", "conv1")[:TRAINABLE_STAGES]
        for pname, param in body.named_parameters():
            if not pname.startswith(trained):
                param.requires_grad_(False)
    elif arch.frozen_stages == "mobilenet":  # torchvision's _mobilenet_extractor
        blocks = list(body.children())
        stages = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
        for block in blocks[: stages[len(stages) - TRAINABLE_STAGES]]:
            block.requires_grad_(False)


def _freeze_batch_norms(module: nn.Module, eps: float) -> None:
    for cname, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, cname, FrozenBatchNorm2d(child.num_features, eps=eps))
        else:
            _freeze_batch_norms(child, eps)


# -- the weights ------------------------------------------------------------------------------------
def hub_cache_path(url: str) -> Path:
    """Where torch hub keeps the file of ``url`` (``torch.hub.get_dir()/checkpoints/<file name>``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlsplit(url).path).name


def weights_enum(name: str, spec: str) -> Any:
    """The torchvision weights ``spec`` names for ``name``: ``DEFAULT``, ``COCO_V1`` or the full
    ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``; one line when it names another detector's."""
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    owner, _, member = spec.rpartition(".")
    if owner and owner != enum.__name__:
        raise ConfigError(f"detector_weights {spec!r} are not weights of detector {name} (its are {enum.__name__}.*)")
    try:
        return enum.DEFAULT if member == "DEFAULT" else enum[member]
    except KeyError:
        valid = ", ".join(f"{enum.__name__}.{w.name}" for w in enum)
        raise ConfigError(f"detector_weights {spec!r}: {name} has no such weights; valid: DEFAULT, {valid}") from None


def _download(url: str, dst: Path) -> None:
    """Fetch ``url`` to ``dst`` as torch hub does (hash checked against the file name's prefix)."""
    if not host_reachable(url):
        raise OSError(f"{urllib.parse.urlsplit(url).hostname} is not reachable")
    found = re.search(r"-([a-f0-9]+)\.", dst.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dst), found.group(1) if found else None, progress=True)


def read_weights(name: str, spec: str) -> tuple[dict[str, Tensor], str, list[str] | None]:
    """The state dict of ``spec`` (a file, or a weights name of ``name`` from the hub cache, fetched
    when absent), a short description of where it came from, and the class name of each slot of
    torchvision's COCO weights (``None`` for a file: decided from its shapes, see :func:`load_detector_weights`)."""
    if is_weights_file(spec):
        return safe_load(spec), spec, None
    weights = weights_enum(name, spec)
    path = hub_cache_path(weights.url)
    if not path.is_file():
        try:
            _download(weights.url, path)
        except Exception as err:  # noqa: BLE001 - no network, refused, interrupted: the same advice
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"detector_weights {spec}: {path} is not there and cannot be downloaded ({reason}); download"
                f" {weights.url} on a connected machine and put it at {path} (or give its path: detector_weights: FILE.pth)"
            ) from None
    try:
        state = safe_load(path)
    except WeightsFileError as err:
        raise ConfigError(f"detector_weights {spec}: {err} (delete it to download it again)") from None
    return state, f"{type(weights).__name__}.{weights.name}", list(weights.meta["categories"])


def coco_categories(name: str) -> list[str]:
    """The 91 slot names of torchvision's COCO weights for ``name`` (``__background__``, ``N/A`` gaps)."""
    import torchvision

    return list(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])


@dataclass
class ClassRows:
    """The class-indexed tensors of a weights file, waiting for the data's class names.

    ``tensors``: the file's ``weight``/``bias`` of each class layer by state-dict key, with
    ``file_classes`` slots named ``names`` (``None``: unknown, the layers keep their fresh rows).
    """

    arch: DetectorArch
    source: str
    tensors: dict[str, Tensor]
    file_classes: int
    names: list[str] | None
    taken: bool = field(default=False)

    def take(self, detector: Detector, data_names: Sequence[str]) -> str:
        """Copy the rows of the data classes with a COCO name (and the background's, where both
        heads have one) into ``detector``'s class layers; the others keep their initialisation.
        Once only (a later call returns ``""``). Returns the one-line report."""
        if self.taken:
            return ""
        self.taken = True
        offset, model_classes = detector.label_offset, detector.num_classes + detector.label_offset
        slots = {_key(n): i for i, n in enumerate(self.names or []) if n not in ("N/A", "__background__")}
        named = [(offset + c, slots[_key(n)]) for c, n in enumerate(data_names) if _key(n) in slots]
        missing = [str(n) for n in data_names if _key(n) not in slots]
        background = named and offset and self.names and self.names[0] == "__background__"
        pairs = named + [(0, 0)] * bool(background)  # both heads keep slot 0 for the background
        if pairs:
            dst, src = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
            params = dict(detector.model.named_parameters())
            with torch.no_grad():
                for key, value in self.tensors.items():
                    module = key.rsplit(".", 1)[0]
                    class_major = next(cm for pattern, cm in self.arch.class_layers if re.fullmatch(pattern, module))
                    _copy_rows(params[key], value, dst, src, model_classes, self.file_classes, class_major)
        self.tensors = {}
        line = f"detector_weights {self.source}: {len(named)} of {len(data_names)} class rows taken over by name"
        line += " (and the background's)" if background else ""
        if self.names is None:
            return f"{line} (the file's {self.file_classes} class slots have no names: its class layers are not used)"
        if missing:
            shown = ", ".join(missing[:10]) + (f" … (+{len(missing) - 10})" if len(missing) > 10 else "")
            line += f"; no COCO class for {shown} (fresh rows)"
        return line


def _key(name: object) -> str:
    text = re.sub(r"[_\-]+", " ", str(name).strip().lower())
    return ALIASES.get(text, text)


def _copy_rows(dst: Tensor, src: Tensor, to: Tensor, frm: Tensor, classes: int, file_classes: int, class_major: bool) -> None:
    per = dst.shape[0] // classes  # rows per class: 4 box sides, or the anchors of a location
    if class_major:
        dst.view(classes, per, *dst.shape[1:])[to] = src.view(file_classes, per, *src.shape[1:])[frm]
    else:
        dst.view(per, classes, *dst.shape[1:])[:, to] = src.view(per, file_classes, *src.shape[1:])[:, frm]


def load_detector_weights(detector: Detector, name: str, spec: str) -> ClassRows:
    """Load ``spec`` into every layer of ``detector`` (a :func:`build_coco_detector` of ``name``) but
    the class-indexed ones, whose rows are returned for :meth:`ClassRows.take`. A file of another
    architecture: one line naming the first key that does not fit."""
    arch = arch_of(name)
    state, source, names = read_weights(name, spec)
    model = detector.model
    own = model.state_dict()
    model_classes = detector.num_classes + detector.label_offset
    class_keys = [k for k in own if any(re.fullmatch(p, k.rsplit(".", 1)[0]) for p, _ in arch.class_layers)]
    file_classes = _check_layout(own, state, class_keys, model_classes, source, name)
    if names is None and file_classes == 91:  # torchvision's COCO layout: its slot names
        names = coco_categories(name)
    rest = {k: v for k, v in state.items() if k in own and k not in class_keys}
    model.load_state_dict(rest, strict=False)
    return ClassRows(arch, source, {k: state[k] for k in class_keys}, file_classes, names)


def _check_layout(own: Mapping[str, Tensor], state: Mapping[str, Tensor], class_keys: list[str], model_classes: int,
                  source: str, name: str) -> int:  # fmt: skip
    """The file's class count; one line for the first key whose name or shape does not fit."""
    where = f"detector_weights {source} do not fit {name}"
    file_classes: int | None = None
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):  # frozen norms have none; a BatchNorm file may
            continue
        if key not in state:
            raise ConfigError(f"{where}: the file has no {key} {tuple(value.shape)} (the first key missing)")
        got = state[key]
        if key in class_keys:
            per = value.shape[0] // model_classes
            fits = got.shape[1:] == value.shape[1:] and got.shape[0] % per == 0
            classes = got.shape[0] // per if fits else None
            if fits and file_classes not in (None, classes):
                fits = False
            if fits:
                file_classes = classes
                continue
        elif got.shape == value.shape:
            continue
        raise ConfigError(f"{where}: first mismatching key {key}: file {tuple(got.shape)} vs model {tuple(value.shape)}")
    extra = next((k for k in state if k not in own and not k.endswith("num_batches_tracked")), None)
    if extra is not None:
        raise ConfigError(f"{where}: the file has {extra} {tuple(state[extra].shape)}, which the model lacks")
    return int(file_classes or 0)


def normalisation_mismatch(
    name: str, expected: tuple[Sequence[float], Sequence[float]], normalize: bool, mean: Sequence[float], std: Sequence[float]
) -> str | None:
    """One line when the data's input normalisation is not the one ``name``'s weights were trained
    with (ImageNet's; SSDlite's ``[-1, 1]``), saying what to set; ``None`` when they agree."""
    close = lambda a, b: len(a) == len(b) and all(abs(x - y) < 1e-3 for x, y in zip(a, b))
    fmt = lambda v: "[" + ", ".join(f"{x:g}" for x in v) + "]"
    if normalize and close(mean, expected[0]) and close(std, expected[1]):
        return None
    given = f"mean={fmt(mean)} std={fmt(std)}" if normalize else "no normalisation (normalize: false)"
    return (
        f"the {name} weights expect images normalised with mean={fmt(expected[0])} std={fmt(expected[1])}, the data"
        f" gives {given}; set data.init_args.mean: {fmt(expected[0])}, data.init_args.std: {fmt(expected[1])}"
        + ("" if normalize else " and data.init_args.normalize: true")
    )
