"""Every segmentation model by one name; bad names and options are one-line errors."""

from __future__ import annotations

import pytest
import torch

import visionsuite.backbones as backbones
from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import SegNet, UNet, build_segmentation_model
from visionsuite.models.segmentation.smp import PadToMultiple


def test_names_select_the_model_and_pass_options() -> None:
    assert isinstance(build_segmentation_model("segnet", num_classes=3, encoder="vgg11_bn"), SegNet)
    unet = build_segmentation_model("unet", num_classes=3, in_chans=1, depth=2, base_width=4)
    assert isinstance(unet, UNet) and unet.encoder.strides == [1, 2, 4]
    assert unet.encoder.levels[0][0][0].in_channels == 1
    fpn = build_segmentation_model("smp:fpn", num_classes=3)
    assert isinstance(fpn, PadToMultiple) and type(fpn.model).__name__ == "FPN"


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("segformer3d", {}, "Valid: segnet, unet, unet:<backbone>, smp:Unet"),
        ("segnett", {}, "Did you mean segnet"),
        ("smp:", {}, "Unknown segmentation model 'smp:'"),
        ("unet", {"widht": 8}, "widht"),
        ("segnet", {"encoder": "resnet18"}, "library VGG encoder"),
    ],
)
def test_bad_names_and_options_are_one_line_errors(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        build_segmentation_model(name, num_classes=3, **options)
    assert "\n" not in str(err.value)


def test_unet_on_a_library_backbone() -> None:
    """``unet:<backbone>`` goes through the backbones' encoder view once it exists (issue #7)."""
    if not hasattr(backbones, "create_encoder"):
        with pytest.raises(ConfigError, match="encoder view"):
            build_segmentation_model("unet:resnet18", num_classes=3)
        return
    model = build_segmentation_model("unet:resnet18", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 61)).shape == (1, 3, 45, 61)
