"""The suite's per-step cost on each record config against a plain PyTorch loop (issue #25, item 4);
writes ``benchmarks/results/record_overhead.md``.

For every config, the same model (the task's own network, built from the config), the same data
path (the data module's uint8 batches through its ``transform_batch``), the same optimiser (the
task's parameter groups: weight-decay exemptions and ``norm_bias_lr_mult``), the same schedule
(``build_scheduler`` stepped per step), the same loss (label smoothing) and, where the config has
one, the same EMA (``AveragedModel`` with the same update): once as a hand-written loop, once as
``Trainer.fit`` of the task with the callbacks a ``visionsuite fit`` run has (checkpoints, run
record, EMA, divergence guard) and a CSV logger at the config's ``log_every_n_steps``. Both skip
the same warm-up steps and time the same number of steps; rounds alternate plain and suite, and
the ratio is the median of the per-pair ratios (this VM's speed drifts from minute to minute).

    .venv/bin/python benchmarks/bench_record_overhead.py [--rounds 3] [--seconds 10] [CONFIG ...]

The last row (``lenet5_fashion_mnist.yaml`` at batch 128, a ~10 ms step) gives the fixed cost
per step of the suite's machinery on a step too short to hide it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "record_overhead.md"
CONFIGS = [
    "configs/classification/record_fmnist_91.yaml",
    "configs/classification/record_fmnist_93.yaml",
    "configs/classification/record_cifar10_30min.yaml",
    "configs/classification/record_cifar10_airbench94.yaml",
]
SHORT_STEP = ("configs/classification/lenet5_fashion_mnist.yaml", {"batch_size": 128})
WARMUP = 3


def build(config: str, data_overrides: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """(task, data module, trainer section) from a config's ``class_path``/``init_args``."""
    cfg = yaml.safe_load((ROOT / config).read_text())

    def make(section: dict[str, Any], **extra: Any) -> Any:
        module, name = section["class_path"].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**{**section.get("init_args", {}), **extra})

    data_args = {"data_dir": str(ROOT / "data"), **data_overrides}
    return make(cfg["model"]), make(cfg["data"], **data_args), cfg.get("trainer", {})


def batches(dm: Any, n: int) -> Iterator[dict[str, Any]]:
    """``n`` training batches from the data module's loader (uint8, untransformed), as ``fit`` reads them."""
    done = 0
    while done < n:
        for batch in dm.train_dataloader():
            yield batch
            done += 1
            if done == n:
                return


def plain_loop(task: Any, dm: Any, steps: int) -> float:
    """Seconds per step, after ``WARMUP`` steps, of a hand-written loop doing the task's work."""
    from torch.optim.swa_utils import AveragedModel

    from visionsuite.models.ema import warmup_ema_multi_avg_fn
    from visionsuite.tasks.optim import build_scheduler

    hp = task.hparams
    model, criterion = task.model, task.criterion
    if getattr(model, "needs_data_init", False):
        n = min(len(dm.train_set), 5000)
        model.init_from_images(dm.transform_batch(dm.train_set[list(range(n))], train=False)["image"])
    optimizer = task.make_optimizer(task)
    scheduler = build_scheduler(hp.scheduler, optimizer, max_epochs=1, total_steps=max(steps, 20),
                                warmup_pct=hp.warmup_pct, milestones=hp.milestones or [], gamma=hp.gamma)  # fmt: skip
    ema = AveragedModel(model, multi_avg_fn=warmup_ema_multi_avg_fn(hp.ema_decay), use_buffers=True) if hp.ema_decay else None
    memory_format = torch.channels_last if hp.channels_last else torch.contiguous_format
    model.train()
    start = 0.0
    for i, batch in enumerate(batches(dm, steps)):
        if i == WARMUP:
            start = time.perf_counter()
        batch = dm.transform_batch(batch, train=True)
        x, y = batch["image"].contiguous(memory_format=memory_format), batch["label"]
        logits = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler["scheduler"].step()
        if ema is not None:
            ema.update_parameters(model)
        (logits.detach().argmax(1) == y).sum()  # the train accuracy both count
    return (time.perf_counter() - start) / (steps - WARMUP)


def suite_fit(task: Any, dm: Any, steps: int, trainer_cfg: dict[str, Any], workdir: Path) -> float:
    """Seconds per step, after ``WARMUP`` steps, of ``Trainer.fit`` with a run's callbacks."""
    from lightning.pytorch import Callback, Trainer
    from lightning.pytorch.loggers import CSVLogger

    class Clock(Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == WARMUP:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == steps - 1:
                self.seconds = time.perf_counter() - self.start

    clock = Clock()
    trainer = Trainer(
        accelerator="cpu", devices=1, max_steps=steps, max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(workdir),
        logger=CSVLogger(str(workdir)), log_every_n_steps=trainer_cfg.get("log_every_n_steps", 50),
        callbacks=[*task.run_callbacks(workdir / "checkpoints"), clock],
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    return clock.seconds / (steps - WARMUP)


def bench(config: str, data_overrides: dict[str, Any], rounds: int, seconds: float) -> dict[str, Any]:
    torch.manual_seed(0)
    task, dm, trainer_cfg = build(config, data_overrides)
    dm.setup("fit")
    probe = plain_loop(task, dm, WARMUP + 2)
    steps = min(max(WARMUP + 5, WARMUP + round(seconds / probe)), len(dm.train_dataloader()))  # within one epoch
    plain, suite = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            torch.manual_seed(r)
            plain.append(plain_loop(build(config, data_overrides)[0], dm, steps))
            torch.manual_seed(r)
            suite.append(suite_fit(build(config, data_overrides)[0], dm, steps, trainer_cfg, Path(tmp) / f"r{r}"))
            print(
                f"{config} round {r + 1}: plain {plain[-1] * 1e3:.1f} ms, suite {suite[-1] * 1e3:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    med = statistics.median
    return {
        "config": config + (f" (batch {data_overrides['batch_size']})" if data_overrides else ""),
        "batch": dm.batch_size, "steps": steps - WARMUP, "plain_ms": med(plain) * 1e3, "suite_ms": med(suite) * 1e3,
        "ratio": med(p / s for p, s in zip(plain, suite, strict=True)),
        "fixed_ms": med((s - p) * 1e3 for p, s in zip(plain, suite, strict=True)),
        "pairs": [f"{p / s:.3f}" for p, s in zip(plain, suite, strict=True)],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=CONFIGS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per run (sets the step count)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    rows = [bench(c, {}, args.rounds, args.seconds) for c in args.configs]
    rows.append(bench(SHORT_STEP[0], SHORT_STEP[1], args.rounds, args.seconds))
    lines = [
        "# Record configs: the suite's step against a plain PyTorch loop",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_record_overhead.py --rounds {args.rounds} --seconds {args.seconds:g}`  ",
        (f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; run time {time.perf_counter() - started:.0f} s; machine: "
         f"{platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"),
        "",
        "Same model, data path, optimiser groups, schedule, loss and EMA in both (see the script's docstring); the suite is",
        "`Trainer.fit` with a run's callbacks and a CSV logger. Per-step times are medians over the rounds; the ratio",
        "(plain time / suite time, i.e. the suite's throughput as a fraction of the plain loop's) and the fixed cost",
        "(suite − plain, per step) are medians of the per-pair values. Goal: ratio >= 0.98 where a step is >= 50 ms.",
        "",
        "| config | batch | timed steps | plain ms/step | suite ms/step | ratio | suite − plain, ms/step | per-pair ratios |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *[f"| `{r['config']}` | {r['batch']} | {r['steps']} | {r['plain_ms']:.1f} | {r['suite_ms']:.1f} | {r['ratio']:.3f} | "
          f"{r['fixed_ms']:.2f} | {', '.join(r['pairs'])} |" for r in rows],
        "",
    ]  # fmt: skip
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
