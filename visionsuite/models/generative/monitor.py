"""Spotting a discriminator that has won completely: its loss stays near zero while the generator's
rises, so G gets no useful gradient and the run is wasting time (Arjovsky & Bottou, 2017)."""

from __future__ import annotations

import math


class DiscriminatorWinsDetector:
    """Call :meth:`update` once per step; it returns True exactly once, the first time D's loss has
    stayed below ``threshold`` for ``patience`` consecutive steps while G's loss ended the streak
    higher than it began it. The task turns that into a single warning."""

    def __init__(self, *, threshold: float = 0.01, patience: int = 200) -> None:
        self.threshold, self.patience = threshold, patience
        self.streak = 0
        self.g_at_start = math.inf
        self.fired = False

    def update(self, d_loss: float, g_loss: float) -> bool:
        if self.fired:
            return False
        if d_loss >= self.threshold:
            self.streak = 0
            return False
        if self.streak == 0:
            self.g_at_start = g_loss
        self.streak += 1
        if self.streak >= self.patience and g_loss > self.g_at_start:
            self.fired = True
        return self.fired

    def message(self, step: int) -> str:
        return (
            f"the discriminator has won at step {step}: its loss stayed below {self.threshold} for "
            f"{self.streak} steps while the generator's rose (from {self.g_at_start:.3g}); "
            "the generator gets no useful gradient (try the hinge or WGAN-GP loss, or a smaller D learning rate)"
        )
