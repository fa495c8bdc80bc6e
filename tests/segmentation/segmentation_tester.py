"""The checks every segmentation model passes, written once (smp style); a test file per model
subclasses :class:`SegmentationModelTester` and sets ``name`` and ``options``."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from conftest import NUM_CLASSES, VOID
from torch import Tensor, nn

from visionsuite.models.segmentation import build_segmentation_model, segmentation_metrics


class SegmentationModelTester:
    name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    odd_sizes: ClassVar[tuple[tuple[int, int], ...]] = ((45, 61), (90, 120))
    overfit_steps: ClassVar[int] = 40
    overfit_lr: ClassVar[float] = 3e-3
    overfit_images: ClassVar[int] = 2

    def build(self) -> nn.Module:
        return build_segmentation_model(self.name, num_classes=NUM_CLASSES, in_chans=3, **self.options)

    def test_output_has_input_size(self) -> None:
        model = self.build().eval()
        for h, w in self.odd_sizes:
            with torch.no_grad():
                assert model(torch.randn(2, 3, h, w)).shape == (2, NUM_CLASSES, h, w)

    def test_trace_matches_eager(self) -> None:
        model = self.build().eval()
        x = torch.randn(1, 3, *self.odd_sizes[0])
        with torch.no_grad():
            traced = torch.jit.trace(model, x, check_trace=False)
            torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)

    def test_overfits_camvid_frames(self, camvid: tuple[Tensor, Tensor]) -> None:
        """A few real frames are learnt almost pixel for pixel: the whole path carries gradient.

        Judged in train mode (batch statistics, as the steps saw them): the point is that the model
        learns, and 40 steps are too few for batch norm's running averages to catch up."""
        x, y = camvid[0][: self.overfit_images], camvid[1][: self.overfit_images]
        model = self.build().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=self.overfit_lr)
        loss_fn = nn.CrossEntropyLoss(ignore_index=VOID)
        for _ in range(self.overfit_steps):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        metrics = segmentation_metrics(NUM_CLASSES, VOID)
        with torch.no_grad():
            metrics.update(model(x).argmax(1), y)
        result = metrics.compute()
        assert result["global_accuracy"] > 0.9, result
