"""Ensemble demonstration on Fashion-MNIST: three members of different architectures, trained
briefly with the same budget, then ``visionsuite ensemble`` (mean of probabilities and majority
vote) on the full 10,000-image test set, and the cost of predicting with the ensemble against
its members one by one. Writes ``benchmarks/results/ensemble.md``.

    PYTHONPATH=. python benchmarks/bench_ensemble.py [--epochs 2] [--train-subset 20000] [--seed 0]

Members (all Adam, lr 3e-3, batch 128, no augmentation, the same training subset and seed):
LeNet-5 (tanh, average pooling), the MLP baseline (256 hidden units on 28x28 inputs), and the
fast recipe's LeNet-5 (2x wide, ReLU, max pooling, batch norm).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml

from visionsuite.cli.app import main as cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ensemble.md"
MEMBERS = {
    "lenet5": {"backbone": "lenet5"},
    "mlp": {"backbone": "mlp", "backbone_options": {"input_size": 28, "hidden": 256, "activation": "relu"}},
    "lenet5_wide": {"backbone": "lenet5", "backbone_options": {"activation": "relu", "pooling": "max", "norm": "batch", "width_mult": 2.0}},
}


def member_config(name: str, model: dict, opts: argparse.Namespace, folder: Path) -> Path:
    cfg = {
        "seed_everything": opts.seed,
        "test_after_fit": False,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": opts.epochs, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(folder / name)},
        "model": {"class_path": "visionsuite.tasks.ClassificationTask",
                  "init_args": {"num_classes": 10, "in_chans": 1, "optimizer": "adam", "lr": 0.003, **model}},
        "data": {"class_path": "visionsuite.data.FashionMNISTDataModule",
                 "init_args": {"data_dir": opts.data_dir, "batch_size": 128, "train_subset": opts.train_subset,
                               "val_subset": 2000, "augment": False}},
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def prediction_cost(configs: list[Path], repeats: int = 3) -> list[str]:
    """Seconds to predict the 10,000 test images with each member alone and with the ensemble
    (``MemberEnsemble``, what ``visionsuite ensemble --predict_dir`` runs), best of ``repeats``."""
    import torch

    from visionsuite.runs.trained import load_trained
    from visionsuite.tools.ensemble import MemberEnsemble
    from visionsuite.tools.export import Deployable

    members = [load_trained(c, "last") for c in configs]
    dm = members[0].datamodule
    dm.prepare_data()
    dm.setup("test")
    x = dm.test_set[list(range(len(dm.test_set)))]["image"].float() / 255
    mean = torch.tensor(dm.mean).view(1, -1, 1, 1)
    std = torch.tensor(dm.std).view(1, -1, 1, 1)

    def best_of(fn) -> float:  # noqa: ANN001
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                for start in range(0, len(x), 256):
                    fn(x[start : start + 256])
            times.append(time.perf_counter() - t0)
        return min(times)

    singles = [best_of(Deployable(m.task, m.normalisation).eval()) for m in members]
    ensemble = MemberEnsemble(members).eval()
    both = best_of(lambda b: ensemble((b - mean) / std))
    rows = [f"| {c.stem} alone | {t:.2f} |" for c, t in zip(configs, singles, strict=True)]
    return ["| model | s for 10,000 test images (best of 3) |", "|---|---:|", *rows,
            f"| sum of the {len(members)} members | {sum(singles):.2f} |",
            f"| ensemble (mean of probabilities) | {both:.2f} |", "",
            f"Ensemble / sum of members: **{both / sum(singles):.2f}** (goal: ≤ 1, i.e. no more than N single "
            f"predictions); ensemble / slowest member: {both / max(singles):.2f} (N = {len(members)})."]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--work", type=Path, default=ROOT / "logs" / "bench_ensemble")
    opts = parser.parse_args()
    opts.work.mkdir(parents=True, exist_ok=True)
    args, times, configs = ["ensemble", "--output", str(opts.work / "mean.md")], {}, []
    for name, model in MEMBERS.items():
        config = member_config(name, model, opts, opts.work)
        start = time.perf_counter()
        assert cli(["fit", "--config", str(config)]) == 0
        times[name] = time.perf_counter() - start
        configs.append(config)
        args += ["--config", str(config), "--ckpt_path", "last"]
    assert cli(args) == 0
    assert cli([*args[:1], "--method", "vote", "--output", str(opts.work / "vote.md"), *args[3:]]) == 0
    mean, vote = (opts.work / "mean.md").read_text(), (opts.work / "vote.md").read_text()
    load = os.getloadavg()[0]
    RESULTS.write_text(
        "# Ensemble of three Fashion-MNIST classifiers\n\n"
        f"Command: `PYTHONPATH=. python benchmarks/bench_ensemble.py --epochs {opts.epochs} --train-subset"
        f" {opts.train_subset} --seed {opts.seed}` (seed_everything {opts.seed} for every member; {opts.train_subset}"
        f" training images, {opts.epochs} epochs each, full 10,000-image test set, last checkpoints).\n\n"
        f"Training wall time per member (machine shared, load average {load:.1f}; not a speed claim): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        + "\n\n## Mean of probabilities\n\n" + mean + "\n## Majority vote\n\n" + vote
        + f"\n## Prediction cost\n\nTorch threads: {__import__('torch').get_num_threads()}; "
        + "machine shared (see the load above).\n\n" + "\n".join(prediction_cost(configs)) + "\n"
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
