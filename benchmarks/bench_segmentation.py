"""CamVid segmentation: quality under a training-time budget, and the task's throughput against a
plain PyTorch loop on the same model, batch and resolution.

    PYTHONPATH=. python benchmarks/bench_segmentation.py quality --config configs/segmentation/camvid_smp_unet_lite0_cpu.yaml --minutes 5
    PYTHONPATH=. python benchmarks/bench_segmentation.py throughput --config configs/segmentation/camvid_smp_unet_lite0_cpu.yaml --steps 24 --rounds 3
    PYTHONPATH=. python benchmarks/bench_segmentation.py valshare --config configs/segmentation/camvid_smp_unet_lite0_cpu.yaml --steps 6
    PYTHONPATH=. python benchmarks/bench_segmentation.py throughput --config <GPU config> --device cuda --steps 40 --rounds 4
    PYTHONPATH=. python benchmarks/bench_segmentation.py models --size 192 256 --steps 4

``quality`` runs ``visionsuite fit`` (the config, ``trainer.max_time`` = the budget, validation
every epoch, then test of the best checkpoint) and prints the test global accuracy,
class-average accuracy, mIoU and per-class IoU (from the run's ``metrics.json`` and
``per_class_iou.md``). ``throughput`` times training images/s of the same model (a) inside
``SegmentationTask`` under a Lightning Trainer and (b) in a plain loop (forward, weighted CE,
backward, AdamW step) on the same cached uint8 batches, normalised on the fly; the two are run
in alternation, ``--rounds`` pairs of ``--steps`` steps each (after 3 warm-up steps), and the
median of the per-pair ratios is reported. ``valshare`` times, per validation batch, the forward
pass against the metric update (the confusion matrix behind all four metrics). ``models`` times
training steps of smp architectures on the Lite0 encoder in the NCHW and channels-last layouts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from step_clock import StepClock

ROOT = Path(__file__).resolve().parents[1]


def quality(config: str, minutes: float, out: Path, extra: list[str]) -> None:
    from visionsuite.cli.app import main

    hh, mm = divmod(int(minutes * 60), 3600)
    budget = f"00:{hh:02d}:{mm // 60:02d}:{mm % 60:02d}"
    args = ["fit", "--config", config, "--trainer.max_time", budget, "--trainer.default_root_dir", str(out), *extra]
    start = time.perf_counter()
    assert main(args) == 0
    wall = time.perf_counter() - start
    run = (out / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"run {run}  wall {wall / 60:.1f} min (budget {minutes} min of training), steps {metrics.get('fit_global_step')}")
    for key in ("test/global_accuracy", "test/class_accuracy", "test/miou"):
        print(f"{key}: {100 * metrics[key]:.1f}")
    print((run / "per_class_iou.md").read_text())


def throughput(config: str, steps: int, rounds: int, warmup: int = 3, device: str = "cpu") -> None:
    import lightning as L

    from visionsuite.data import CamVidDataModule
    from visionsuite.models.segmentation import build_loss
    from visionsuite.tasks import SegmentationTask

    cfg = yaml.safe_load(Path(config).read_text())
    model_args = dict(cfg["model"]["init_args"], class_weights=None, scheduler="none")
    # whole images in both loops: a ``train_window`` would shrink only the task's batches
    data_args = dict(cfg["data"]["init_args"], augment=False, train_window=None)
    dm = CamVidDataModule(**data_args)
    dm.setup("fit")
    batch_size = dm.batch_size
    n = warmup + steps

    def task_rate() -> float:
        task = SegmentationTask(**model_args)
        clock = StepClock()
        trainer = L.Trainer(
            accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=n, limit_val_batches=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
            default_root_dir=tempfile.mkdtemp(prefix="bench-seg-"),  # metrics.json goes there, not into the checkout
        )  # fmt: skip
        trainer.fit(task, datamodule=dm)
        return clock.images_per_second(batch_size, skip=warmup)

    def plain_rate() -> float:
        task = SegmentationTask(**model_args)  # the same network, built the same way
        model = task.model.train().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=model_args["lr"], weight_decay=model_args.get("weight_decay", 0))
        # the task's own loss (unweighted in both loops), so both compute the same thing
        loss_fn = build_loss(model_args.get("loss", "cross_entropy"), ignore_index=dm.ignore_index, **(model_args.get("loss_options") or {}))
        mean = torch.tensor(dm.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(dm.std, device=device).view(1, -1, 1, 1)
        loader = dm.train_dataloader()
        it = iter(loader)
        start = 0.0
        for i in range(n):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            x = (batch["image"].to(device, non_blocking=True).float() / 255 - mean) / std
            y = batch["mask"].to(device, non_blocking=True).long()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            sync(device)
            if i == warmup - 1:
                start = time.perf_counter()
        return steps * batch_size / (time.perf_counter() - start)

    ratios, task_rates, plain_rates = [], [], []
    print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    for r in range(rounds):
        order = (plain_rate, task_rate) if r % 2 == 0 else (task_rate, plain_rate)
        got = {fn.__name__: fn() for fn in order}
        task_rates.append(got["task_rate"])
        plain_rates.append(got["plain_rate"])
        ratios.append(got["task_rate"] / got["plain_rate"])
        print(f"round {r}: task {got['task_rate']:.2f} img/s, plain {got['plain_rate']:.2f} img/s, ratio {ratios[-1]:.3f}")
    print(
        f"median: task {statistics.median(task_rates):.2f} img/s, plain {statistics.median(plain_rates):.2f} img/s, "
        f"ratio {statistics.median(ratios):.3f} ({rounds} pairs of {steps} steps, batch {batch_size}, {dm.image_size})"
    )


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so a step's time is its own (the task's clock does the same)."""
    if device == "cuda":
        torch.cuda.synchronize()


def validation_share(config: str, batches: int) -> None:
    """Seconds per validation batch spent in the forward pass against in the paper's metrics
    (the per-pixel argmax and one confusion-matrix update: what ``SegmentationTask`` does per batch)."""
    from visionsuite.data import CamVidDataModule
    from visionsuite.tasks import SegmentationTask

    cfg = yaml.safe_load(Path(config).read_text())
    task = SegmentationTask(**dict(cfg["model"]["init_args"], class_weights=None)).eval()
    dm = CamVidDataModule(**cfg["data"]["init_args"])
    dm.setup("fit")
    metrics = task.configure_metrics()
    forward = metric = 0.0
    with torch.no_grad():
        for i, batch in enumerate(dm.val_dataloader()):
            if i > batches:
                break
            batch = dm.transform_batch(batch, train=False)
            t0 = time.perf_counter()
            logits = task(batch["image"])
            t1 = time.perf_counter()
            metrics.update(logits.max(1).indices, batch["mask"])  # what SegmentationTask.shared_step does
            t2 = time.perf_counter()
            if i > 0:  # the first batch warms up
                forward, metric = forward + t1 - t0, metric + t2 - t1
    metrics.compute()
    n = min(batches, len(dm.val_dataloader()) - 1)
    print(f"validation, {n} batches of {dm.eval_batch_size} at {dm.image_size}: forward {forward / n:.3f} s/batch, "
          f"metrics {metric / n:.4f} s/batch: metrics are {100 * metric / (forward + metric):.1f}% of the step")


#: the smp U-Net + Lite0 variants ``models`` compares: smp's default decoder and the half-width one
#: of the CPU recipes (``camvid_smp_unet_lite0_15min.yaml``, ``_60min.yaml``), and two other decoders.
MODEL_VARIANTS = {
    "Unet, decoder 256-128-64-32-16 (smp default)": ("smp:Unet", {}),
    "Unet, decoder 128-64-32-16-16 (the CPU recipes)": ("smp:Unet", {"decoder_channels": [128, 64, 32, 16, 16]}),
    "FPN": ("smp:FPN", {}),
    "DeepLabV3Plus": ("smp:DeepLabV3Plus", {}),
}


def model_speed(size: tuple[int, int], batch: int, steps: int) -> None:
    """Training images/s (forward, cross-entropy, backward, AdamW step; median of ``steps`` after one
    warm-up) of each :data:`MODEL_VARIANTS` entry on the Lite0 encoder, in the default (NCHW) and the
    channels-last weight layout: what ``decoder_channels`` and the task's ``channels_last`` buy."""
    from visionsuite.tasks import SegmentationTask

    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, *size), torch.randint(0, 11, (batch, *size))
    print(f"| model ({size[0]}x{size[1]}, batch {batch}) | params | NCHW img/s | channels-last img/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for label, (name, options) in MODEL_VARIANTS.items():
        rates = []
        for channels_last in (False, True):
            task = SegmentationTask(model=name, num_classes=11, ignore_index=11, channels_last=channels_last,
                                    model_options={"encoder": "tu-tf_efficientnet_lite0", **options})  # fmt: skip
            model = task.model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            times = []
            for _ in range(steps + 1):
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - t0)
            rates.append(batch / statistics.median(times[1:]))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"| {label} | {params:.2f} M | {rates[0]:.2f} | {rates[1]:.2f} | {rates[1] / rates[0]:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("quality", "throughput", "valshare", "models"))
    parser.add_argument("--config", default=str(ROOT / "configs/segmentation/camvid_smp_unet_lite0_cpu.yaml"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "logs/bench_segmentation"))
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="throughput: where both loops run")
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), help="models: H W")
    parser.add_argument("--batch", type=int, default=8, help="models: batch size")
    args, extra = parser.parse_known_args()
    print(f"load average {__import__('os').getloadavg()}, torch threads {torch.get_num_threads()}")
    if args.mode == "quality":
        quality(args.config, args.minutes, Path(args.out), extra)
    elif args.mode == "valshare":
        validation_share(args.config, args.steps)
    elif args.mode == "models":
        model_speed(tuple(args.size), args.batch, args.steps)
    else:
        throughput(args.config, args.steps, args.rounds, device=args.device)


if __name__ == "__main__":
    main()
