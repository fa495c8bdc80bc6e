"""Losses ignore void pixels and equal their formulas on tiny hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
from determinism import deterministic_mode
from torch.nn import functional as F

from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import build_loss

VOID = 255
#: 3 classes, 1x2x3 image; one void pixel; class 2 absent from the target.
TARGET = torch.tensor([[[0, 1, 1], [0, VOID, 0]]])


def logits() -> torch.Tensor:
    return torch.randn(1, 3, 2, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "ce+dice"])
def test_void_pixels_get_no_gradient(name: str) -> None:
    x = logits()
    build_loss(name, ignore_index=VOID)(x, TARGET).backward()
    assert torch.all(x.grad[0, :, 1, 1] == 0)
    assert x.grad[0, :, 0, 0].abs().sum() > 0


def test_dice_equals_its_formula() -> None:
    x = logits()
    p = x.detach().softmax(1)[0]
    valid = [(i, j) for i in range(2) for j in range(3) if TARGET[0, i, j] != VOID]
    dices = []
    for c in (0, 1):  # the classes present in the target
        inter = sum(float(p[c, i, j]) for i, j in valid if TARGET[0, i, j] == c)
        total = sum(float(p[c, i, j]) for i, j in valid) + sum(1 for i, j in valid if TARGET[0, i, j] == c)
        dices.append((2 * inter + 1) / (total + 1))
    got = build_loss("dice", ignore_index=VOID)(x, TARGET)
    assert got.item() == pytest.approx(1 - sum(dices) / 2, rel=1e-5)


def test_focal_equals_its_formula_and_reduces_to_weighted_ce() -> None:
    x = logits()
    p = x.detach().softmax(1)[0]
    w = torch.tensor([1.0, 2.0, 3.0])
    valid = [(i, j) for i in range(2) for j in range(3) if TARGET[0, i, j] != VOID]
    terms = [(int(TARGET[0, i, j]), float(p[TARGET[0, i, j], i, j])) for i, j in valid]
    expected = sum(-w[c] * (1 - pt) ** 2 * math.log(pt) for c, pt in terms) / sum(w[c] for c, _ in terms)
    got = build_loss("focal", ignore_index=VOID, class_weights=w)(x, TARGET)
    assert got.item() == pytest.approx(float(expected), rel=1e-5)
    gamma0 = build_loss("focal", ignore_index=VOID, class_weights=w, gamma=0.0)(x, TARGET)
    torch.testing.assert_close(gamma0, F.cross_entropy(x, TARGET, weight=w, ignore_index=VOID))


def test_ce_plus_dice_is_the_sum() -> None:
    x = logits()
    ce = build_loss("ce", ignore_index=VOID)(x, TARGET)
    dice = build_loss("dice", ignore_index=VOID)(x, TARGET)
    torch.testing.assert_close(build_loss("ce+dice", ignore_index=VOID)(x, TARGET), ce + dice)


def test_bad_names_and_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="Valid: cross_entropy, dice, focal, ce\\+dice"):
        build_loss("lovasz", ignore_index=VOID)
    with pytest.raises(ConfigError, match="gama"):
        build_loss("focal", ignore_index=VOID, gama=2.0)
    with pytest.raises(ConfigError, match="no class_weights"):
        build_loss("dice", ignore_index=VOID, class_weights=torch.ones(3))


def test_dice_gradient_equals_the_one_hot_formula_on_channels_last_batches() -> None:
    """The gather/index_add Dice must give the one-hot formula's gradient, void pixels included."""
    gen = torch.Generator().manual_seed(3)
    target = torch.randint(0, 4, (2, 5, 7), generator=gen)
    target[target == 3] = VOID  # 4 classes, class 3 never present; a quarter of the pixels void
    x = torch.randn(2, 4, 5, 7, generator=gen).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    valid = (target != VOID).unsqueeze(1)
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), 4).permute(0, 3, 1, 2) * valid
    p = x.softmax(1) * valid
    inter, total = (p * onehot).sum((0, 2, 3)), p.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    expected = 1 - ((2 * inter + 1) / (total + 1))[present].mean()
    (want,) = torch.autograd.grad(expected, x)
    got = build_loss("dice", ignore_index=VOID)(x, target)
    (have,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(have, want)



@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_equals_pytorchs_value_and_gradient(weighted: bool, smoothing: float) -> None:
    """The loss reduces the per-pixel losses itself (PyTorch's reduced 2-D kernel is refused in
    CUDA deterministic mode): the mean must stay nn.CrossEntropyLoss's, weighted over non-void pixels."""
    gen = torch.Generator().manual_seed(4)
    target = torch.randint(0, 6, (3, 7, 9), generator=gen)
    target[target == 5] = VOID
    x = torch.randn(3, 5, 7, 9, generator=gen).requires_grad_(True)
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0]) if weighted else None
    want = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=VOID, label_smoothing=smoothing)(x, target)
    (want_grad,) = torch.autograd.grad(want, x)
    got = build_loss("cross_entropy", ignore_index=VOID, class_weights=weights, label_smoothing=smoothing)(x, target)
    (got_grad,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")
@pytest.mark.parametrize("name", ["cross_entropy", "focal", "dice", "ce+dice"])
def test_losses_run_under_cuda_deterministic_mode_and_match_the_cpu(name: str) -> None:
    """``trainer.deterministic: true`` turns on ``torch.use_deterministic_algorithms``: on CUDA
    each loss must be allowed there (PyTorch's reduced 2-D cross-entropy is not: the losses reduce
    the per-pixel one themselves; the Dice's gather backward and index_add are), repeat bit for
    bit, and give the CPU's value and gradient."""
    gen = torch.Generator().manual_seed(5)
    target = torch.randint(0, 6, (4, 48, 64), generator=gen)
    target[target == 5] = VOID
    x = torch.randn(4, 5, 48, 64, generator=gen).contiguous(memory_format=torch.channels_last)
    weights = None if name == "dice" else torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0])
    loss = build_loss(name, ignore_index=VOID, class_weights=weights)

    def value_and_grad(device: str) -> tuple[torch.Tensor, torch.Tensor]:
        xd = x.to(device).requires_grad_(True)
        out = loss.to(device)(xd, target.to(device))
        (grad,) = torch.autograd.grad(out, xd)
        return out.detach().cpu(), grad.cpu()

    want = value_and_grad("cpu")
    with deterministic_mode():
        first, second = value_and_grad("cuda"), value_and_grad("cuda")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    torch.testing.assert_close(first[0], want[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first[1], want[1], rtol=1e-4, atol=1e-6)
