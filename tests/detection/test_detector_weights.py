"""Whole-detector weights (``DetectionTask(detector=…, detector_weights=…)``): torchvision's COCO
detectors re-targeted to the data's classes.

No real COCO weights can be downloaded here, so every file is torchvision's own constructor for 91
classes (``weights=None``, random init) saved to disk: the same keys and shapes as the COCO files,
which is all the loader sees. Each test loads through the task, as ``visionsuite fit`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torchvision
from torchvision.models._api import WeightsEnum

from visionsuite.cli.app import main
from visionsuite.errors import ConfigError
from visionsuite.models.detection import pretrained
from visionsuite.tasks import DetectionTask

CONFIG = Path(__file__).parents[2] / "configs" / "detection" / "fasterrcnn_coco_pretrained_coco128.yaml"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: torchvision's COCO slots of the named data classes ("dog" is slot 18, "person" slot 1).
DATA = ["dog", "person", "not_a_coco_class"]
SLOTS = {0: 18, 1: 1}


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``coco_file(name)``: a saved 91-class state dict of torchvision's ``name`` (built once)."""
    folder = tmp_path_factory.mktemp("coco_weights")
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            torch.manual_seed(1)
            model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=91)
            made[name] = folder / f"{name}.pth"
            torch.save(model.state_dict(), made[name])
        return made[name]

    return make


def _setup(task: DetectionTask, names: list[str], mean: tuple = IMAGENET[0], std: tuple = IMAGENET[1]) -> None:
    """``task.setup("fit")`` as the trainer calls it, with a data module of ``names``."""
    data = SimpleNamespace(class_names=names, num_classes=len(names), in_chans=3, image_size=task.image_hw,
                           mean=mean, std=std, normalize=True)  # fmt: skip
    task._trainer = SimpleNamespace(datamodule=data)
    try:
        task.setup("fit")
    finally:
        task._trainer = None


def _rows(layer_rows: int, classes: int, c: int, class_major: bool) -> list[int]:
    """The rows of class ``c`` in a layer of ``layer_rows`` rows for ``classes`` classes."""
    per = layer_rows // classes
    return [c * per + j for j in range(per)] if class_major else [a * classes + c for a in range(per)]


#: per detector: its class-indexed layers (module name, class-major rows) and its background offset.
LAYERS = {
    "fasterrcnn_resnet50_fpn": ([("roi_heads.box_predictor.cls_score", True), ("roi_heads.box_predictor.bbox_pred", True)], 1),
    "retinanet_resnet50_fpn_v2": ([("head.classification_head.cls_logits", False)], 0),
    "fcos_resnet50_fpn": ([("head.classification_head.cls_logits", False)], 0),
    "ssdlite320_mobilenet_v3_large": ([(f"head.classification_head.module_list.{i}.1", False) for i in range(6)], 1),
}  # fmt: skip


@pytest.mark.parametrize("name", LAYERS)
def test_class_rows_move_to_the_data_classes_by_name(name: str, coco_file: Any) -> None:
    """The dog and person rows of the file land on data classes 0 and 1 (after the background row,
    where the head has one); the unnamed class keeps its fresh rows; every other tensor is the file's."""
    layers, offset = LAYERS[name]
    file = torch.load(coco_file(name), weights_only=True)
    torch.manual_seed(0)
    task = DetectionTask(detector=name, detector_weights=str(coco_file(name)), num_classes=3, image_size=128)
    fresh = {k: v.clone() for k, v in task.detector.model.state_dict().items()}
    _setup(task, DATA, *task.weights_normalisation)  # ImageNet's; SSDlite's 0.5/0.5
    got = task.detector.model.state_dict()
    class_keys = {f"{m}.{p}" for m, _ in layers for p in ("weight", "bias")}
    assert class_keys <= set(got)
    for module, class_major in layers:
        for key in (f"{module}.weight", f"{module}.bias"):
            new, old, init = got[key], file[key], fresh[key]
            moves = {offset + c: slot for c, slot in SLOTS.items()} | ({0: 0} if offset else {})
            for dst, src in moves.items():
                moved = new[_rows(len(new), 3 + offset, dst, class_major)]
                assert torch.equal(moved, old[_rows(len(old), 91, src, class_major)]), (key, dst)
            unnamed = _rows(len(new), 3 + offset, offset + 2, class_major)
            assert torch.equal(new[unnamed], init[unnamed]), key
    rest = [k for k in got if k not in class_keys and not k.endswith("num_batches_tracked")]
    assert rest and all(torch.equal(got[k], file[k]) for k in rest), [k for k in rest if not torch.equal(got[k], file[k])][:3]
    assert task.expected_data_classes() == 3
    # once only: a second setup (test after fit) leaves the trained rows alone
    with torch.no_grad():
        got[next(iter(class_keys))].add_(1.0)
    trained = {k: v.clone() for k, v in task.detector.model.state_dict().items()}
    _setup(task, DATA, *task.weights_normalisation)
    assert all(torch.equal(trained[k], v) for k, v in task.detector.model.state_dict().items())


def test_names_that_are_no_coco_names_keep_fresh_class_layers(coco_file: Any) -> None:
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    torch.manual_seed(0)
    task = DetectionTask(detector=name, detector_weights=str(coco_file(name)), num_classes=2, image_size=64)
    fresh = {k: v.clone() for k, v in task.detector.model.state_dict().items()}
    note = task.coco_rows.take(task.detector, ["Trouser", "Sneaker"])
    assert note.endswith("0 of 2 class rows taken over by name; no COCO class for Trouser, Sneaker (fresh rows)"), note
    assert all(torch.equal(fresh[k], v) for k, v in task.detector.model.state_dict().items() if "box_predictor" in k)


def _norms(model: torch.nn.Module) -> list[tuple[str, str, Any]]:
    return [(k, type(m).__name__, getattr(m, "eps", None)) for k, m in model.named_modules() if "Norm" in type(m).__name__]


def _trains(model: torch.nn.Module) -> list[str]:
    return [k for k, p in model.named_parameters() if p.requires_grad]


def test_the_build_is_torchvisions_own_with_its_weights(coco_file: Any) -> None:
    """Frozen norms (and their eps), frozen stages and every tensor as torchvision's constructor
    leaves them when it loads its COCO weights (its download replaced by the file)."""
    for name, arch in pretrained.ARCHS.items():
        state = torch.load(coco_file(name), weights_only=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(WeightsEnum, "get_state_dict", lambda self, *a, _state=state, **k: _state)
            theirs = torchvision.models.get_model(name, weights="DEFAULT")
        offset = 1 if arch.head in ("fasterrcnn", "ssdlite") else 0
        ours = DetectionTask(detector=name, detector_weights=str(coco_file(name)), num_classes=91 - offset).detector.model
        assert _norms(ours) == _norms(theirs), name
        assert _trains(ours) == _trains(theirs), name
        mine, tv = ours.state_dict(), theirs.state_dict()
        assert list(mine) == list(tv), name
        assert all(torch.equal(mine[k], tv[k]) for k in tv if "box_predictor" not in k and "classification_head" not in k)


def test_a_file_of_another_architecture_names_the_first_key_that_does_not_fit(coco_file: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"do not fit fcos_resnet50_fpn: first mismatching key backbone\.fpn\.extra_blocks"
                       r"\.p6\.weight: file \(256, 2048, 3, 3\) vs model \(256, 256, 3, 3\)$"):  # fmt: skip
        DetectionTask(detector="fcos_resnet50_fpn", detector_weights=str(coco_file("retinanet_resnet50_fpn_v2")), num_classes=3)
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    state = torch.load(coco_file(name), weights_only=True)
    key = "rpn.head.conv.0.0.weight"
    cases = {
        "missing": ({k: v for k, v in state.items() if k != key}, rf"the file has no {key} \(256, 256, 3, 3\)"),
        "extra": ({**state, "extra.weight": torch.zeros(2)}, r"the file has extra\.weight \(2,\), which the model lacks"),
        "classes": ({**state, "roi_heads.box_predictor.bbox_pred.bias": torch.zeros(91 * 4 + 2)},
                    r"first mismatching key roi_heads\.box_predictor\.bbox_pred\.bias: file \(366,\) vs model \(16,\)"),
    }  # fmt: skip
    for case, (broken, message) in cases.items():
        path = tmp_path / f"{case}.pth"
        torch.save(broken, path)
        with pytest.raises(ConfigError, match=message):
            DetectionTask(detector=name, detector_weights=str(path), num_classes=3)


def test_weights_not_cached_and_not_downloadable_name_the_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     data_root: Path, capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """Through the CLI and the shipped config: one line, exit 2, saying where to put which file."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(pretrained, "host_reachable", lambda url: True)

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    root = tmp_path / "runs"
    args = ["fit", "--config", str(CONFIG), "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(root),
            "--trainer.logger.init_args.save_dir", str(root)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    cached = tmp_path / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    assert err[-1] == (
        f"visionsuite: error: detector_weights FasterRCNN_ResNet50_FPN_Weights.COCO_V1: {cached} is not there and cannot be"
        " downloaded (Network is unreachable); download https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
        f" on a connected machine and put it at {cached} (or give its path: detector_weights: FILE.pth)"
    )


def test_options_that_the_whole_detector_replaces_or_cannot_take_are_refused() -> None:
    dropped = r"brings its own backbone, FPN and anchors: drop backbone='resnet34', fpn_channels=64$"
    with pytest.raises(ConfigError, match=dropped):
        DetectionTask(detector="ssdlite320_mobilenet_v3_large", backbone="resnet34", fpn_channels=64)
    with pytest.raises(ConfigError, match=r"needs model\.detector: one of fasterrcnn_resnet50_fpn, "):
        DetectionTask(detector_weights="DEFAULT")
    with pytest.raises(ConfigError, match=r"are not weights of detector fcos_resnet50_fpn \(its are FCOS_ResNet50_FPN_Weights"):
        DetectionTask(detector="fcos_resnet50_fpn", detector_weights="RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1")
    with pytest.raises(ConfigError, match=r"Unknown detector 'fasterrcnn'\. Did you mean fasterrcnn_resnet50_fpn"):
        DetectionTask(detector="fasterrcnn")


def test_data_normalised_otherwise_than_the_weights_is_refused_with_the_values_to_set(coco_file: Any) -> None:
    """SSDlite's weights take [-1, 1] inputs; the detection data modules default to ImageNet's."""
    name = "ssdlite320_mobilenet_v3_large"
    task = DetectionTask(detector=name, detector_weights=str(coco_file(name)), num_classes=3, image_size=128)
    with pytest.raises(ConfigError, match=r"weights expect images normalised with mean=\[0\.5, 0\.5, 0\.5\] std=\[0\.5, 0\.5, 0\.5\], the data"
                       r" gives mean=\[0\.485, 0\.456, 0\.406\] std=\[0\.229, 0\.224, 0\.225\]; set data\.init_args\.mean: \[0\.5, 0\.5, 0\.5\]"):  # fmt: skip
        _setup(task, DATA)
    _setup(task, DATA, mean=(0.5,) * 3, std=(0.5,) * 3)  # as the weights were trained: accepted


def test_fit_and_zero_shot_test_on_coco128_through_the_cli(coco_file: Any, tmp_path: Path, data_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The shipped config with the cheapest detector: its weights found in the hub cache by name,
    one step of fine-tuning and one test batch of 2 COCO128 images at 128 px; then ``test`` with no
    checkpoint (zero-shot) on the same weights."""
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    cached = tmp_path / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    cached.parent.mkdir(parents=True)
    cached.symlink_to(coco_file(name))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(pretrained, "_download", lambda url, dst: pytest.fail("downloaded although cached"))
    root = tmp_path / "runs"
    common = ["--config", str(CONFIG), "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(root),
              "--trainer.logger.init_args.save_dir", str(root), "--model.init_args.detector", name,
              "--model.init_args.detector_weights", "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1",
              "--data.init_args.image_size", "128", "--model.init_args.image_size", "128", "--data.init_args.batch_size", "2"]  # fmt: skip
    assert main(["fit", *common, "--trainer.fast_dev_run", "true"]) == 0
    (run,) = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / "metrics.json").exists()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"train/loss", "train/loss_classifier", "val/map_50", "test/map"} <= set(metrics)
    said = "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1: 80 of 80 class rows taken over by name (and the background's)"
    assert caplog.text.count(said) == 1  # at fit's setup only: the test after it keeps the trained rows
    caplog.clear()
    assert main(["test", *common, "--allow_untrained", "true", "--trainer.limit_test_batches", "1"]) == 0
    assert caplog.text.count(said) == 1


def test_a_task_rebuilt_from_its_checkpoint_keeps_the_weights_structure_without_the_file(
    coco_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``test``/``export``/``ensemble`` of a run rebuild the task with ``WEIGHTS_IN_CHECKPOINT``
    (``visionsuite.runs.trained``): the frozen norms and stages the weights gave it, so the
    checkpoint loads strictly, and no weights file is read (it may be gone)."""
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    options = {"detector": name, "num_classes": 3, "in_chans": 3, "image_size": 128}
    trained = DetectionTask(**options, detector_weights=str(coco_file(name)))
    monkeypatch.setattr(pretrained, "read_weights", lambda *a, **k: pytest.fail("read the weights file again"))
    rebuilt = DetectionTask(**options, detector_weights=pretrained.WEIGHTS_IN_CHECKPOINT)
    rebuilt.load_state_dict(trained.state_dict(), strict=True)
    assert [type(m) for m in rebuilt.modules()] == [type(m) for m in trained.modules()]
    assert [p.requires_grad for p in rebuilt.parameters()] == [p.requires_grad for p in trained.parameters()]
    assert rebuilt.coco_rows is None  # nothing to take over: the checkpoint's rows are the trained ones
