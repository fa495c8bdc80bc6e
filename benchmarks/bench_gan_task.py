"""GANs as users run them: ``visionsuite fit`` of a shipped GAN config for a wall-clock budget, with
FID/KID in the feature space of a classifier that ``visionsuite fit`` trained on the same dataset.

    PYTHONPATH=. python benchmarks/bench_gan_task.py --gan configs/generative/fmnist_wgan_gp.yaml \
        --classifier configs/classification/lenet5_fashion_mnist.yaml --classifier-epochs 3 --budget 600
    PYTHONPATH=. python benchmarks/bench_gan_task.py --gan configs/generative/cifar10_dcgan.yaml \
        --classifier configs/classification/lenet5_cifar10.yaml --classifier-epochs 10 --budget 600

Steps: (1) fit the classifier config (its best-on-val checkpoint is the feature extractor, named
``<backbone>_<dataset>`` as the task names it); (2) fit the GAN config with
``fid_classifier_ckpt`` set, ``trainer.max_time`` = the budget and validation every epoch
(``--epoch-images`` training images per epoch, so that there are several points on the curve):
each validation logs ``val/fid_*`` and ``val/kid_*`` (generated images against the validation
images); (3) the run's test (``test_after_fit``) scores the final generator against the test set;
(4) in the same feature space and with the same set sizes as that test: the real-vs-real floor
(as many training images as there are test images) and the uniform-noise ceiling. Prints a
Markdown section; ``--append`` adds it to ``benchmarks/results/generative_gan_task.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def fit(args: list[str]) -> Path:
    """``visionsuite fit`` in this process; the run folder."""
    from visionsuite.cli.app import main

    root = Path(args[args.index("--trainer.default_root_dir") + 1])
    assert main(["fit", *args, "--trainer.enable_progress_bar", "false"]) == 0
    return (root / "latest").resolve()


def budget_string(seconds: float) -> str:
    s = int(seconds)
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def val_curve(run: Path, fid_key: str, kid_key: str) -> list[tuple[int, float, float]]:
    """(epoch, FID, KID) of every validation in the run's CSV log (the last one may be the
    time limit's, part-way through an epoch)."""
    rows = []
    for path in run.rglob("metrics.csv"):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get(f"val/{fid_key}"):
                    rows.append((int(row["epoch"]), float(row[f"val/{fid_key}"]), float(row[f"val/{kid_key}"])))
    return sorted(rows)


def data_module(gan_cfg: dict):
    """The GAN config's data module over the whole dataset (its subsets dropped), set up."""
    import visionsuite.data as data

    data.import_all()
    spec = gan_cfg["data"]
    options = {k: v for k, v in spec["init_args"].items() if k not in ("train_subset", "val_subset", "test_subset")}
    dm = getattr(data, spec["class_path"].rsplit(".", 1)[1])(**options)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    return dm


def pixels(dm, dataset, n: int) -> torch.Tensor:
    """The first ``n`` images of ``dataset`` as [0, 1] pixels, through the module's own pipeline."""
    from visionsuite.models.generative import denormalize

    batch = dataset[list(range(min(n, len(dataset))))]
    return denormalize(dm.transform_batch(batch, train=False)["image"], dm.mean, dm.std)


def floor_and_ceiling(dm, extractor, n_test: int) -> tuple[dict, dict]:
    """FID/KID of training images vs test images, and of uniform noise vs test images (KID with
    the task's 100 subsets of 1000)."""
    from bench_generative import sample_scores

    test = pixels(dm, dm.test_set, n_test)
    train = pixels(dm, dm.train_set, len(test))
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(0))
    return sample_scores(extractor, test, train, kid_subsets=100), sample_scores(extractor, test, noise, kid_subsets=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan", required=True, help="a GAN config (configs/generative/...)")
    parser.add_argument("--classifier", required=True, help="a classification config on the same dataset")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--classifier-ckpt", default=None, help="reuse this classifier checkpoint (its run folder's metrics.json)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of GAN training (trainer.max_time)")
    parser.add_argument("--epoch-images", type=int, default=4096, help="training images per GAN epoch (one validation each)")
    parser.add_argument("--out", default=None, help="runs folder (default: a temporary one)")
    parser.add_argument("--append", action="store_true", help="append the section to benchmarks/results/generative_gan_task.md")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    load_before = os.getloadavg()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-gan-"))
    gan_cfg = yaml.safe_load(Path(args.gan).read_text())
    clf_cfg = yaml.safe_load(Path(args.classifier).read_text())

    if args.classifier_ckpt:  # an earlier run's classifier: the same feature space as that run's numbers
        ckpt = Path(args.classifier_ckpt).resolve()
        clf_run, trained = ckpt.parents[1], "reused from an earlier run of this benchmark"
    else:
        t0 = time.perf_counter()
        clf_run = fit(["--config", args.classifier, "--trainer.max_epochs", str(args.classifier_epochs),
                       "--trainer.default_root_dir", str(out / "classifier")])  # fmt: skip
        trained = f"{time.perf_counter() - t0:.0f} s"
        ckpt = next((clf_run / "checkpoints").glob("best-*.ckpt"))
    clf_metrics = json.loads((clf_run / "metrics.json").read_text())

    t0 = time.perf_counter()
    gan_run = fit(["--config", args.gan, "--model.init_args.fid_classifier_ckpt", str(ckpt),
                   "--trainer.max_time", budget_string(args.budget), "--trainer.max_epochs", "100000",
                   "--data.init_args.train_subset", str(args.epoch_images),
                   "--trainer.default_root_dir", str(out / "gan")])  # fmt: skip
    gan_seconds = time.perf_counter() - t0
    metrics = json.loads((gan_run / "metrics.json").read_text())
    fid_key = next(k.split("/", 1)[1] for k in metrics if k.startswith("test/fid_"))
    kid_key = fid_key.replace("fid_", "kid_", 1)
    curve = val_curve(gan_run, fid_key, kid_key)

    from visionsuite.models.generative import classifier_features

    dm_args = gan_cfg["data"]["init_args"]
    backbone = clf_cfg["model"]["init_args"]["backbone"]
    dm = data_module(gan_cfg)
    n_test = len(dm.test_set)
    # the task's own extractor: the same checkpoint, name and normalisation (the GAN data module's)
    extractor = classifier_features(backbone, ckpt, fid_key.removeprefix("fid_"), num_classes=dm.num_classes,
                                    mean=dm.mean, std=dm.std, in_chans=dm.in_chans)  # fmt: skip
    floor, ceiling = floor_and_ceiling(dm, extractor, n_test)

    model = gan_cfg["model"]["init_args"]
    what = f"{Path(args.gan).stem} (loss {model.get('loss', 'nonsaturating')}"
    what += f", n_critic {model['n_critic']}" if model.get("n_critic") else ""
    if model.get("ema_decay"):
        what += f", EMA {model['ema_decay']} " + ("with warm-up" if model.get("ema_warmup", True) else "without warm-up")
    what += f", {model['conditional_classes']} classes conditional" if model.get("conditional_classes") else ""
    what += ")"
    command = (f"PYTHONPATH=. python benchmarks/bench_gan_task.py --gan {args.gan} --classifier {args.classifier} "
               f"--classifier-epochs {args.classifier_epochs} --budget {args.budget:g} --epoch-images {args.epoch_images}"
               + (f" --classifier-ckpt {args.classifier_ckpt}" if args.classifier_ckpt else ""))
    lines = [
        f"### {what}: FID / KID in the `{fid_key.removeprefix('fid_')}` feature space", "",
        f"*Measured by `{command}`: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), no GPU, load average {load_before[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end.*", "",
        f"Feature space: the pre-logits features of `{backbone}` trained by `visionsuite fit --config {args.classifier}` "
        + (f"(checkpoint `{ckpt.name}`, {trained}" if args.classifier_ckpt else f"for {args.classifier_epochs} epoch(s) ({trained}")
        + f"; test accuracy {100 * clf_metrics['test/acc']:.2f}%). "
        "Not Inception FID: these numbers compare only with each other. "
        f"GAN: `visionsuite fit --config {args.gan}` for {args.budget:g} s (`trainer.max_time`; whole run {gan_seconds:.0f} s), "
        f"epochs of {args.epoch_images} training images, validation after each (generated images vs the "
        f"{dm_args.get('val_subset', 'all')} validation images), then test: the final generator"
        f"{' (its EMA)' if model.get('ema_decay') else ''} against the {n_test} test images, as many generated. "
        "Floor and ceiling: the same feature space and set sizes.", "",
        f"| set | {fid_key} | {kid_key} (± std) |", "|---|---:|---:|",
        f"| real vs real floor ({n_test} train vs {n_test} test images) | {floor[fid_key]:.3f} | "
        f"{floor[kid_key]:.4f} ± {floor[kid_key + '_std']:.4f} |",
    ]
    for i, (epoch, fid, kid) in enumerate(curve):
        at = f"after epoch {epoch + 1}" if i == 0 or epoch != curve[i - 1][0] else f"at the time limit (in epoch {epoch + 1})"
        lines.append(f"| validation {at} | {fid:.3f} | {kid:.4f} |")
    lines += [
        f"| **test, final generator ({metrics.get('fit_global_step')} optimiser steps of both networks)** | "
        f"**{metrics[f'test/{fid_key}']:.3f}** | {metrics[f'test/{kid_key}']:.4f} ± {metrics.get(f'test/{kid_key}_std', float('nan')):.4f} |",
        f"| noise ceiling (uniform noise vs test) | {ceiling[fid_key]:.3f} | {ceiling[kid_key]:.4f} ± {ceiling[kid_key + '_std']:.4f} |",
        "",
        f"Run folder: `{gan_run}` (a sample grid per validation in `images/`, and `samples.gif`).", "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        path = RESULTS / "generative_gan_task.md"
        head = "# GANs through GANTask (issue #10): FID / KID over training, floor and ceiling\n"
        old = path.read_text().rstrip("\n") if path.exists() else head
        path.write_text(old + "\n\n" + text)


if __name__ == "__main__":
    main()
