"""The heads' average pooling: adaptive pooling's values without its op where the input allows.

``adaptive_avg_pool2d`` has no deterministic CUDA backward, so ``trainer.deterministic: true``
stopped GPU runs at the first backward; the library's own backbones avoid it at their usual sizes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionsuite.backbones import create_backbone
from visionsuite.backbones.layers import GridAvgPool


@pytest.mark.parametrize(("size", "shape"), [(1, (2, 3, 7, 5)), (4, (2, 3, 8, 12)), (4, (2, 3, 4, 4)), (6, (2, 3, 13, 13)), ((2, 3), (1, 2, 6, 9))])
def test_grid_pool_equals_adaptive_pool_values_and_gradients(size: int | tuple[int, int], shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen).requires_grad_(True)
    want = nn.AdaptiveAvgPool2d(size)(x)
    weights = torch.randn(want.shape, generator=gen)
    (want_grad,) = torch.autograd.grad((want * weights).sum(), x)
    got = GridAvgPool(size)(x)
    (got_grad,) = torch.autograd.grad((got * weights).sum(), x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


def _no_adaptive_pool(*args: object, **kwargs: object) -> None:
    raise AssertionError("adaptive_avg_pool2d was called")


@pytest.mark.parametrize(
    ("name", "side"),
    [("lenet5", 28), ("vgg11_bn_cifar", 32), ("resnet18_cifar", 32), ("mobilenet_v3_small", 64), ("mobilenet_v2", 64),
     ("alexnet", 227), ("vgg11_bn", 224)],  # AlexNet: 227 as in the paper (224 gives 5x5 maps: the fallback)
)  # fmt: skip
def test_library_classifiers_train_without_adaptive_pooling(name: str, side: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mechanism a CPU can check: no adaptive_avg_pool2d in the forward (so none in the
    backward) of the library's classifiers at their usual input sizes."""
    model = create_backbone(name, num_classes=10, in_chans=3 if name != "lenet5" else 1)
    x = torch.randn(2, 3 if name != "lenet5" else 1, side, side)
    monkeypatch.setattr(torch.nn.functional, "adaptive_avg_pool2d", _no_adaptive_pool)
    model(x).sum().backward()
    with pytest.raises(AssertionError, match="adaptive_avg_pool2d was called"):
        GridAvgPool(6)(torch.randn(1, 1, 13, 13))  # the fallback for sizes that do not divide
