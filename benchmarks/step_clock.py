"""One clock for every benchmark that times training steps inside ``Trainer.fit``.

In process: ``clock = StepClock()``, pass it in ``callbacks``, then read ``clock.seconds_per_step()``
or ``clock.images_per_second(batch_size)``. Through the CLI: name it in the config
(``trainer.callbacks: [{class_path: step_clock.StepClock, init_args: {record: FILE}}]``, with
``benchmarks/`` on ``sys.path``) and it writes its step times to ``FILE`` (JSON) when training
ends; :func:`seconds_per_step` reads them back.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback


class StepClock(Callback):
    """Start and end times (``time.perf_counter``) of every training step."""

    def __init__(self, record: str | None = None) -> None:
        self.record = Path(record) if record else None
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, *args: Any) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # the step's GPU work is part of its time
        self.ends.append(time.perf_counter())

    def on_train_end(self, *args: Any) -> None:
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(json.dumps({"starts": self.starts, "ends": self.ends}))

    def durations(self, skip: int = 0) -> list[float]:
        """Each step's own time (batch start to batch end), the first ``skip`` left out."""
        return [e - s for s, e in zip(self.starts[skip:], self.ends[skip:])]

    def seconds_per_step(self, skip: int = 2) -> float:
        """Median time from one step's end to the next (data loading and hooks included)."""
        ends = self.ends[skip:]
        return statistics.median(b - a for a, b in zip(ends, ends[1:]))

    def images_per_second(self, batch_size: int, skip: int = 5) -> float:
        """Throughput over steps ``skip``..last: from the start of step ``skip`` to the last end."""
        return (len(self.ends) - skip) * batch_size / (self.ends[-1] - self.starts[skip])


def seconds_per_step(record: Path, skip: int = 2) -> float:
    """:meth:`StepClock.seconds_per_step` of a clock's ``record`` file."""
    saved = json.loads(Path(record).read_text())
    clock = StepClock()
    clock.starts, clock.ends = saved["starts"], saved["ends"]
    return clock.seconds_per_step(skip)
