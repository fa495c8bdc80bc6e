"""On-device joint augmentation: our batched ops against kornia's ``AugmentationSequential``.

Two workloads, the same draws in both libraries (random crop with padding + horizontal flip):
a CIFAR-like batch 128x3x32x32 (image only) and a CamVid-like batch 8x3x192x256 with its
mask 8x192x256 (the mask padded with the ignore value, nearest). Prints images/s (median of
``--repeats`` timed runs of ``--iters`` batches each) and writes ``benchmarks/results/augment.md``.

    PYTHONPATH=. python benchmarks/bench_augment.py [--kornia-path DIR]

kornia is not a dependency of visionsuite; ``--kornia-path`` points at a folder it was
installed into (``pip install --target DIR kornia``) to compare against.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "augment.md"


def ours(batch: dict, padding: int, ignore: int) -> dict:
    from visionsuite.data import augment as aug

    d = aug.draw(batch["image"].shape[0], batch["image"].device, padding=padding, flip_p=0.5)
    return aug.augment_batch(batch, d, ignore_index=ignore)


def kornia_pipeline(size: tuple[int, int], padding: int, with_mask: bool):
    import kornia.augmentation as K

    keys = ["input", "mask"] if with_mask else ["input"]
    return K.AugmentationSequential(
        K.RandomCrop(size, padding=padding, fill=0), K.RandomHorizontalFlip(p=0.5), data_keys=keys
    )


def timed(fn, iters: int, repeats: int, n: int) -> float:
    fn()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        rates.append(iters * n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kornia-path", default=None)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.kornia_path:
        sys.path.insert(0, args.kornia_path)
    import kornia

    torch.manual_seed(0)
    cifar = torch.rand(128, 3, 32, 32)
    cam_img = torch.rand(8, 3, 192, 256)
    cam_mask = torch.randint(0, 12, (8, 192, 256))
    k_cifar = kornia_pipeline((32, 32), 4, with_mask=False)
    k_cam = kornia_pipeline((192, 256), 32, with_mask=True)
    rows = {
        "CIFAR-like 128x3x32x32, crop pad 4 + hflip": (
            lambda: ours({"image": cifar}, 4, 255),
            lambda: k_cifar(cifar),
            128,
        ),
        "CamVid-like 8x3x192x256 + mask, crop pad 32 + hflip": (
            lambda: ours({"image": cam_img, "mask": cam_mask}, 32, 255),
            lambda: k_cam(cam_img, cam_mask[:, None].float()),
            8,
        ),
    }
    results = []
    for name, (a, b, n) in rows.items():
        ra, rb = timed(a, args.iters, args.repeats, n), timed(b, args.iters, args.repeats, n)
        results.append((name, ra, rb))
        print(f"{name}: visionsuite {ra:,.0f} img/s, kornia {rb:,.0f} img/s, ratio {ra / rb:.1f}x", flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cmd = "PYTHONPATH=. python benchmarks/bench_augment.py " + " ".join(sys.argv[1:])
    lines = [
        "# Joint on-device augmentation: visionsuite.data.augment against kornia",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), kornia {kornia.__version__}, CPU; load average {load}",
        "",
        "Same work in both: per-image random crop with padding (image padded with 0, mask with the "
        "ignore value) and a horizontal flip drawn once per image and applied to image and mask. "
        f"Images/s, median of {args.repeats} runs of {args.iters} batches.",
        "",
        "| workload | visionsuite.data.augment | kornia AugmentationSequential | ratio |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |" for name, a, b in results],
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
