"""SegNet: shapes at odd sizes, tracing, overfitting real frames, and unpooling with the encoder's indices."""

from __future__ import annotations

import torch
from conftest import NUM_CLASSES
from determinism import deterministic_mode
from segmentation_tester import SegmentationModelTester

from visionsuite.backbones.vgg import PooledFeatures
from visionsuite.models.segmentation import SegNet


class TestSegNet(SegmentationModelTester):
    name = "segnet"
    overfit_images = 1  # 29M parameters at full width: one frame keeps the test's CPU time small


def test_segnet_keeps_only_vgg_conv_stages() -> None:
    model = SegNet(num_classes=NUM_CLASSES)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    # the paper's VGG-16 SegNet: 14.7M encoder + its mirror; the library adds conv biases before BN
    assert 29_400_000 < sum(p.numel() for p in model.parameters()) < 29_500_000


def test_decoder_places_values_at_the_pooling_argmax() -> None:
    """The decoder's upsampling is driven by the encoder's indices: other indices, other output."""
    model = SegNet(num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        pyramid = model.pyramid(torch.randn(1, 3, 45, 61))
        stage = model.decoder.stages[0]  # the deepest: unpools the stride-32 map to stride 16
        deepest = pyramid[-1]
        unpooled = torch.nn.functional.max_unpool2d(
            deepest.features, deepest.indices, 2, 2, output_size=deepest.unpooled_size
        )
        assert unpooled.shape[-2:] == (2, 3)  # 45x61 → … → 2x3 → pooled 1x1; unpooled back to 2x3
        seen = []
        stage.convs.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
        stage(deepest.features, deepest)
        torch.testing.assert_close(seen[0], unpooled)
        moved = PooledFeatures(deepest.features, torch.zeros_like(deepest.indices), deepest.unpooled_size)
        assert not torch.allclose(model.decoder(pyramid), model.decoder([*pyramid[:-1], moved]))


def test_unpool_by_mask_equals_max_unpool2d_at_odd_sizes() -> None:
    """The deterministic-mode unpooling: max_unpool2d's values and gradients, odd rows left zero."""
    from visionsuite.models.segmentation.segnet.decoder import unpool_by_mask

    gen = torch.Generator().manual_seed(0)
    before = torch.randn(2, 3, 9, 13, generator=gen)
    pooled, indices = torch.nn.functional.max_pool2d(before, 2, 2, return_indices=True)
    x = pooled.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    up = torch.randn(2, 3, 9, 13, generator=gen)
    want = torch.nn.functional.max_unpool2d(x, indices, 2, 2, output_size=(9, 13))
    (want_grad,) = torch.autograd.grad((want * up).sum(), x)
    got = unpool_by_mask(x, indices, (9, 13))
    (got_grad,) = torch.autograd.grad((got * up).sum(), x)
    assert got.shape == (2, 3, 9, 13) and bool((got[..., -1, :] == 0).all())
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=0)


def test_segnet_trains_in_deterministic_mode() -> None:
    """``trainer.deterministic: true`` sets torch.use_deterministic_algorithms, which refuses
    max_unpool2d: SegNet must still run forward and backward there, with the same output."""
    torch.manual_seed(0)
    model = SegNet(num_classes=NUM_CLASSES).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        want = model(x)
    with deterministic_mode():
        got = model(x)
        got.sum().backward()
    torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-5)
    assert all(p.grad is not None for p in model.parameters())
