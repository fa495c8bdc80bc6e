"""The frozen-norm choice of ``frozen_stages`` (visionsuite/backbones/freezing.py), measured: the same
smp U-Net-Lite0 (ImageNet encoder weights) with its first 3 encoder stages frozen, once with the
suite's mechanism (batch norms kept in eval mode by a flag, module types unchanged) and once with
those norms replaced by timm's ``FrozenBatchNorm2d`` (what segmentation did before). Training steps
on random 128x128 batches of 4, the two variants alternated round by round so load on the machine
hits both alike; the median step time of each, and their ratio.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_frozen_norms.py [--rounds 6 --steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timm.layers import freeze_batch_norm_2d

from visionsuite.tasks import SegmentationTask


def make(variant: str) -> tuple[SegmentationTask, torch.optim.Optimizer]:
    torch.manual_seed(0)
    task = SegmentationTask(model="smp:Unet", num_classes=11, ignore_index=11, model_options={"encoder_weights": "imagenet"},
                            frozen_stages=3, optimizer="adamw", lr=1e-3)  # fmt: skip
    if variant == "FrozenBatchNorm2d":
        # every norm the flag froze (a stage may be a norm itself, e.g. the stem's bn1), swapped in its parent
        for name, child in list(task.named_modules()):
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and getattr(child, "_vs_frozen", False):
                parent_name, _, attr = name.rpartition(".")
                setattr(task.get_submodule(parent_name), attr, freeze_batch_norm_2d(child))
        assert not any(getattr(m, "_vs_frozen", False) for m in task.modules())
    task.train()
    return task, task.make_optimizer(task.optimizer_params())


def steps(task: SegmentationTask, optimizer: torch.optim.Optimizer, n: int, batch: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        task.criterion(task(batch[0]), batch[1]).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(4, 3, 128, 128, generator=gen), torch.randint(0, 11, (4, 128, 128), generator=gen)
    variants = {v: make(v) for v in ("flag", "FrozenBatchNorm2d")}
    for task, optimizer in variants.values():
        steps(task, optimizer, 2, batch)  # warm-up
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for v in order:
            times[v] += steps(*variants[v], args.steps, batch)
    medians = {v: statistics.median(t) for v, t in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds x {args.steps} steps each")
    for v, t in times.items():
        print(f"{v:>18}: median {medians[v] * 1000:.0f} ms/step (min {min(t) * 1000:.0f}, max {max(t) * 1000:.0f})")
    print(f"FrozenBatchNorm2d / flag: {medians['FrozenBatchNorm2d'] / medians['flag']:.3f}")


if __name__ == "__main__":
    main()
