"""U-Net: the classic network and the decoder on an encoder-view encoder (a local test fixture)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from conftest import NUM_CLASSES
from segmentation_tester import SegmentationModelTester
from torch import Tensor, nn

from visionsuite.backbones.layers import conv_norm_act
from visionsuite.models.segmentation import UNet, UNetDecoder
from visionsuite.models.segmentation.unet.decoder import match_size


class TestClassicUNet(SegmentationModelTester):
    name = "unet"
    options = {"base_width": 16}  # the paper's 64 is 16x the compute; the structure is the same
    overfit_steps = 50


class TestClassicUNetBilinear(SegmentationModelTester):
    name = "unet"
    options = {"base_width": 8, "depth": 3, "upsample": "bilinear", "batch_norm": False}
    odd_sizes = ((45, 61), (33, 47))
    overfit_steps = 0  # the same blocks as above; shapes and tracing are what differ

    def test_overfits_camvid_frames(self) -> None:  # type: ignore[override]
        pytest.skip("covered by TestClassicUNet")


class StridedTestEncoder(nn.Module):
    """TEST FIXTURE, not product code: a small encoder with the backbones' encoder-view interface
    (``forward`` → OrderedDict shallow to deep, ``out_channels``, ``strides``), made of library
    conv-BN-ReLU blocks with padded stride-2 convs, so odd sizes round *up* (45 → 23 → 12 …)."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (8, 16, 24, 32, 40), first_stride: int = 2):
        super().__init__()
        self.strides = [first_stride * 2**k for k in range(len(widths))]
        self.out_channels = list(widths)
        self.blocks = nn.ModuleList()
        in_ch = in_chans
        for k, width in enumerate(widths):
            stride = first_stride if k == 0 else 2
            self.blocks.append(conv_norm_act(in_ch, width, 3, stride=stride, act=nn.ReLU))
            in_ch = width

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features: OrderedDict[str, Tensor] = OrderedDict()
        for block, stride in zip(self.blocks, self.strides, strict=True):
            x = block(x)
            features[f"stride{stride}"] = x
        return features


class TestUNetOnEncoder(SegmentationModelTester):
    """Strides 2-32: four skip levels, then the no-skip block back to the input size."""

    overfit_steps = 60
    overfit_lr = 1e-2  # a 50k-parameter fixture: a larger step
    first_stride = 2
    upsample = "bilinear"

    def build(self) -> nn.Module:
        encoder = StridedTestEncoder(first_stride=self.first_stride)
        return UNet.from_encoder(encoder, NUM_CLASSES, upsample=self.upsample)


class TestUNetOnStrideOneEncoder(TestUNetOnEncoder):
    """Strides 1-16 (a CIFAR-like stem): no final block; transposed convs, so sizes get cropped."""

    first_stride = 1
    upsample = "transpose"
    overfit_steps = 0

    def test_overfits_camvid_frames(self) -> None:  # type: ignore[override]
        pytest.skip("covered by TestUNetOnEncoder")


def test_decoder_blocks_follow_the_encoder_strides() -> None:
    two = UNet.from_encoder(StridedTestEncoder(first_stride=2), NUM_CLASSES)
    one = UNet.from_encoder(StridedTestEncoder(first_stride=1), NUM_CLASSES)
    assert [b.convs[0][0].in_channels for b in two.decoder.blocks] == [40 + 32, 256 + 24, 128 + 16, 64 + 8, 32]
    assert len(one.decoder.blocks) == 4 and one.decoder.out_channels == 32
    with pytest.raises(ValueError, match="decoder_channels needs 5 widths"):
        UNet.from_encoder(StridedTestEncoder(), NUM_CLASSES, decoder_channels=(64, 32))


def test_skips_are_concatenated_at_every_level() -> None:
    """Each block's input is [skip, upsampled]: zeroing one skip changes the output."""
    model = UNet(num_classes=NUM_CLASSES, base_width=4, depth=3).eval()
    x = torch.randn(1, 3, 45, 61)
    features = list(model.encoder(x).values())
    with torch.no_grad():
        ref = model.decoder(features, x.shape[-2:])
        for level in range(len(features) - 1):
            changed = [f if i != level else torch.zeros_like(f) for i, f in enumerate(features)]
            assert not torch.allclose(model.decoder(changed, x.shape[-2:]), ref)


def test_match_size_pads_and_crops_symmetrically() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    padded = match_size(x, (4, 6))
    assert padded.shape[-2:] == (4, 6) and torch.equal(padded[0, 0, :3, 1:5], x[0, 0])
    assert torch.equal(match_size(x, (2, 2)), x[..., :2, 1:3])


def test_decoder_rejects_unordered_strides() -> None:
    with pytest.raises(ValueError, match="increasing strides"):
        UNetDecoder([8, 16], [4, 2], [8])
