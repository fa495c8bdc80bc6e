"""torchvision and timm models through the library's Backbone interface (``tv/``, ``timm/``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from visionsuite.backbones import Backbone, UnknownBackboneError, create_backbone
from visionsuite.backbones.weights import WeightsUnavailableError, host_reachable

ADAPTERS = ["tv/resnet18", "timm/resnet18"]


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No Hub downloads or retries, and an empty torch hub cache, whatever the environment."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.hub.set_dir(str(tmp_path / "hub"))


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_trains_and_exposes_the_interface(name: str) -> None:
    model = create_backbone(name, num_classes=10)
    assert isinstance(model, Backbone) and model.num_classes == 10
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    features = model.forward_features(x)
    assert features.shape == (2, 512, 2, 2) and model.num_features == 512
    assert model.forward_head(features, pre_logits=True).shape == (2, 512)


@pytest.mark.parametrize("name", ADAPTERS)
def test_feature_info_matches_the_encoder(name: str) -> None:
    model = create_backbone(name).eval()
    assert [(f.stride, f.channels) for f in model.feature_info] == [(2, 64), (4, 64), (8, 128), (16, 256), (32, 512)]
    encoder = model.encoder()
    with torch.no_grad():
        maps = encoder(torch.randn(1, 3, 64, 64))
    expected = [(f.channels, 64 // f.stride, 64 // f.stride) for f in model.feature_info]
    assert [tuple(t.shape[1:]) for t in maps.values()] == expected
    assert list(maps) == [f"stride{s}" for s in encoder.strides] and encoder.out_channels == [64, 64, 128, 256, 512]
    assert [f.stage for f in model.feature_info] == ["stage1", "stage2", "stage3", "stage4", "stage5"]


@pytest.mark.parametrize("name", ["tv/mobilenet_v3_small", "tv/efficientnet_b0", "timm/efficientnet_b0", "timm/convnext_atto"])
def test_encoder_strides_are_the_real_ones(name: str) -> None:
    """Strides measured from the map sizes equal those ``feature_info`` claims, for other layouts too."""
    model = create_backbone(name).eval()
    encoder = model.encoder()
    with torch.no_grad():
        maps = encoder(torch.randn(1, 3, 64, 64))
    assert [64 // t.shape[-1] for t in maps.values()] == encoder.strides == [f.stride for f in model.feature_info]
    assert [t.shape[1] for t in maps.values()] == encoder.out_channels
    head = {id(p) for p in model.head.parameters()}
    assert not head & {id(p) for p in encoder.parameters()} or name.startswith("timm/")  # timm shares the model


@pytest.mark.parametrize("name", ADAPTERS)
def test_reset_classifier(name: str) -> None:
    model = create_backbone(name)
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.num_classes == 5
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)


@pytest.mark.parametrize("name", ADAPTERS)
def test_freeze_by_stage_name(name: str) -> None:
    model = create_backbone(name, num_classes=3)
    assert model.stage_names == ["stage1", "stage2", "stage3", "stage4", "stage5", "head"]
    model.freeze()
    model.train()
    for stage in model.stages.values():
        assert not any(p.requires_grad for p in stage.parameters())
        assert not any(m.training for m in stage.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(p.requires_grad for p in model.head.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.fc.") for n in trainable)
    model.unfreeze(["stage5"])
    assert all(p.requires_grad for p in model.stages["stage5"].parameters())
    assert not any(p.requires_grad for p in model.stages["stage4"].parameters())
    with pytest.raises(ValueError, match="Unknown stage"):
        model.freeze(["layer9"])


@pytest.mark.parametrize("name", ADAPTERS)
def test_in_chans_one(name: str) -> None:
    model = create_backbone(name, in_chans=1, num_classes=4)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 4)
    assert model.default_input_size[0] == 1


def test_state_dict_keeps_library_keys_and_round_trips(tmp_path) -> None:
    model = create_backbone("tv/resnet18", num_classes=7).eval()
    assert "model.conv1.weight" in model.state_dict()  # no duplicated keys from the stage views
    assert len(model.state_dict()) == len(model.model.state_dict())
    path = tmp_path / "resnet18.pth"
    torch.save(model.model.state_dict(), path)  # torchvision's own naming, as a download would be
    again = create_backbone("tv/resnet18", num_classes=7, weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), again(x))


@pytest.mark.parametrize(
    "name",
    ["mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf", "squeezenet1_1", "googlenet", "shufflenet_v2_x0_5"],
)
def test_torchvision_split_computes_what_the_original_does(name: str) -> None:
    model = create_backbone(f"tv/{name}").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), model.model(x), atol=1e-5)
    assert [f.stride for f in model.feature_info][-3:] == ([4, 8, 16] if name == "squeezenet1_1" else [8, 16, 32])


def test_too_small_input_names_the_model() -> None:
    with pytest.raises(ValueError, match=r"tv/squeezenet1_1 needs inputs of at least 17x17"):
        create_backbone("tv/squeezenet1_1")(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize(("name", "suggestion"), [("tv/resnet181", "tv/resnet18"), ("timm/resnet181", "timm/resnet18")])
def test_unknown_external_name_suggests_close_matches(name: str, suggestion: str) -> None:
    with pytest.raises(UnknownBackboneError, match="Did you mean") as info:
        create_backbone(name)
    assert suggestion in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every connection attempt is recorded and refused at once (deterministic, no timeouts);
    the Hub is left "online" so that the adapter's own reachability probe is what is tested."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    host_reachable.cache_clear()
    attempts: list[object] = []

    def refuse(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    host_reachable.cache_clear()


@pytest.mark.parametrize(("name", "weights", "tries"), [("tv/resnet18", "DEFAULT", 1), ("timm/resnet18", "imagenet", 1)])
def test_offline_named_weights_fail_clearly_without_retries(no_network, name: str, weights: str, tries: int) -> None:
    """Counts connection attempts instead of timing them: torchvision tries its URL once; for
    timm one reachability probe of the Hub, then its local cache only (no retries)."""
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone(name, weights=weights)
    message = str(info.value)
    assert "Cannot download" in message and "weights='path/to/weights.pth'" in message and "\n" not in message
    assert len(no_network) == tries, no_network


def test_unknown_weights_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        create_backbone("tv/resnet18", weights="IMAGENET9K")
    with pytest.raises(ValueError, match="a1_in1k"):
        create_backbone("timm/resnet18", weights="nonexistent_tag")
