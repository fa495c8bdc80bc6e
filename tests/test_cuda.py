"""Checks that need a CUDA GPU: skipped on machines without one (CI has none).

Run on a GPU machine with ``pytest tests/test_cuda.py``. Each guards a bug a CPU run cannot show:
a tensor left on the CPU in a GPU step, or an operation that ``trainer.deterministic: true``
(``torch.use_deterministic_algorithms``) refuses on CUDA only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from determinism import deterministic_mode

from visionsuite.callbacks.divergence import DivergenceError, DivergenceGuard
from visionsuite.tasks import SegmentationTask, VAETask

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gradients_twice(step: Callable[[], torch.nn.Module]) -> list[torch.Tensor]:
    """The flat gradients of two runs of ``step`` (seeded alike), which builds a module and backpropagates."""
    grads = []
    for _ in range(2):
        torch.manual_seed(0)
        module = step()
        grads.append(torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None]))
    return grads


def test_vae_training_terms_are_on_the_models_device() -> None:
    """The KL weight (logged while it warms up) was built on the CPU: a GPU run then stopped in
    the divergence guard's ``torch.cat`` at its first step."""
    task = VAETask(kl_warmup_steps=10).cuda()
    out = task.shared_step({"image": torch.rand(4, 1, 28, 28, device="cuda")}, "train")
    assert "kl_weight" in out.terms
    assert {str(v.device) for v in (out.loss, *out.terms.values())} == {"cuda:0"}


def test_divergence_guard_takes_losses_on_different_devices() -> None:
    """A task of the user's may log a CPU scalar beside its CUDA loss: the guard checks both."""
    guard = DivergenceGuard()
    module = SimpleNamespace(last_losses={"loss": torch.tensor(1.0, device="cuda"), "scale": torch.tensor(0.5)})
    trainer = SimpleNamespace(global_step=3, current_epoch=0)
    guard.on_train_batch_end(trainer, module, None, None, 0)
    module.last_losses["scale"] = torch.tensor(float("nan"))
    with pytest.raises(DivergenceError, match="training loss term scale is nan at step 3"):
        guard.on_train_batch_end(trainer, module, None, None, 0)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("unet", {"depth": 3, "base_width": 8}),
        ("smp:Unet", {"encoder": "tu-tf_efficientnet_lite0", "encoder_weights": None, "decoder_channels": [64, 32, 16, 16, 16]}),
        ("segnet", {}),
    ],
)
@pytest.mark.parametrize("loss", ["cross_entropy", "ce+dice", "focal"])
def test_segmentation_steps_run_in_cuda_deterministic_mode_and_repeat(
    model: str, options: dict, loss: str
) -> None:
    """A training step (loss, backward) and the metrics under ``torch.use_deterministic_algorithms``,
    as ``trainer.deterministic: true`` sets it: allowed, and the same gradients twice."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, 64, 96, generator=gen).cuda()
    mask = torch.randint(0, 12, (2, 64, 96), generator=gen).cuda()  # 11 = void
    weights = [1.0 + i / 10 for i in range(11)]

    def step() -> torch.nn.Module:
        task = SegmentationTask(model=model, num_classes=11, ignore_index=11, model_options=options, loss=loss,
                                class_weights=weights).cuda()  # fmt: skip
        out = task.shared_step({"image": image, "mask": mask}, "train")
        out.loss.backward()
        metrics = task.val_metrics.to("cuda")
        metrics.update(out.preds, out.target)
        assert 0.0 <= float(metrics.compute()["val/miou"]) <= 1.0
        return task

    with deterministic_mode():
        grads = gradients_twice(step)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize(("name", "side"), [("lenet5", 28), ("vgg11_bn_cifar", 32), ("resnet18_cifar", 32), ("mobilenet_v3_small", 64)])
def test_classifiers_train_in_cuda_deterministic_mode_and_repeat(name: str, side: int) -> None:
    """adaptive_avg_pool2d's CUDA backward is refused in deterministic mode: the library's heads
    pool without it (GridAvgPool), so a classification step runs and repeats bit for bit."""
    from visionsuite.backbones import create_backbone

    chans = 1 if name == "lenet5" else 3
    x = torch.randn(4, chans, side, side, generator=torch.Generator().manual_seed(0)).cuda()
    y = torch.tensor([0, 3, 7, 9], device="cuda")

    def step() -> torch.nn.Module:
        model = create_backbone(name, num_classes=10, in_chans=chans).cuda()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        return model

    with deterministic_mode():
        grads = gradients_twice(step)
    assert torch.equal(grads[0], grads[1])
