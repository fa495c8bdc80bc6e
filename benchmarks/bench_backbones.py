"""Benchmark: the course backbones against torchvision's, and the summary's memory against a measurement.

    .venv/bin/python benchmarks/bench_backbones.py [--size 64] [--batch 8] [--iters 6] [--threads 0 1]

1. Training throughput (forward + backward, images/s) of each course backbone and of its
   torchvision counterpart, same input, same batch, same threads. The two are timed in
   alternating rounds and the fastest step kept: load from other processes on a shared CPU only
   ever adds time, so the minimum is the least disturbed estimate, and alternating exposes both
   models to the same load. Goal: ratio (course / torchvision) >= 0.95. Inputs smaller than a
   model accepts (AlexNet: 67x67) are raised to its minimum, on both sides.
2. ``visionsuite summary``'s activation memory against ``torch.profiler``'s count of what one
   forward pass with gradients leaves allocated (and its peak, temporaries included).

Writes ``benchmarks/results/backbones.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from visionsuite.backbones import create_backbone
from visionsuite.tools.summary import measure_forward_memory, summarize

#: course backbone → its torchvision equivalent (AlexNet: the closest, torchvision's one-GPU variant
#: has 64/192 first filters and no response normalisation, so its ratio compares different nets).
PAIRS = {
    "alexnet": "alexnet",
    "vgg16": "vgg16",
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "googlenet": "googlenet",
    "mobilenet_v2": "mobilenet_v2",
}
#: small models for the memory check: (backbone, input size, batch).
MEMORY_CASES = [
    ("tv/resnet18", (3, 64, 64), 8),
    ("resnet18", (3, 64, 64), 8),
    ("resnet50", (3, 64, 64), 8),
    ("vgg16", (3, 64, 64), 8),
    ("mobilenet_v2", (3, 64, 64), 8),
    ("lenet5", (1, 28, 28), 64),
]


def torchvision_model(name: str) -> nn.Module:
    import torchvision

    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return torchvision.models.get_model(name, weights=None, **extra)


def train_step_seconds(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    """Seconds for one forward + backward + SGD step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), target).backward()
    optimizer.step()
    return time.perf_counter() - start


def throughput(
    course: str, reference: str, *, size: int, batch: int, warmup: int, iters: int, threads: list[int]
) -> dict[str, object]:
    """images/s of both models for each thread count (0 = torch's default), fastest step of each."""
    torch.manual_seed(0)
    models = {"course": create_backbone(course).train(), "torchvision": torchvision_model(reference).train()}
    size = max(size, *models["course"].min_input_size)
    x, target = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    default_threads = torch.get_num_threads()
    result: dict[str, object] = {"course": course, "reference": reference, "size": size}
    for n in threads:
        torch.set_num_threads(n or default_threads)
        times: dict[str, list[float]] = {k: [] for k in models}
        for i in range(warmup + iters):
            for key, model in models.items():  # alternate, so background load hits both alike
                seconds = train_step_seconds(model, x, target)
                if i >= warmup:
                    times[key].append(seconds)
        rate = {k: batch / min(v) for k, v in times.items()}
        result[n] = {**rate, "ratio": rate["course"] / rate["torchvision"]}
    torch.set_num_threads(default_threads)
    result["params"] = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    return result


def memory_check(name: str, size: tuple[int, int, int], batch: int) -> dict[str, object]:
    model = create_backbone(name).eval()
    summary = summarize(model, size, batch_size=batch)
    estimate = summary.activation_mb - batch * summary.rows[0].activations * 4 / 1e6  # the input exists beforehand
    measured = measure_forward_memory(model, size, batch_size=batch)
    return {"name": name, "size": "x".join(map(str, size)), "batch": batch, "estimate": estimate,
            "retained": measured.retained_mb, "peak": measured.peak_mb}  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(
    args: argparse.Namespace, speed: list[dict], memory: list[dict], load: tuple[float, ...], seconds: float
) -> str:
    """The results file (markdown)."""
    default_threads = torch.get_num_threads()
    lines = [
        "# Backbone benchmark",
        "",
        f"Command: `{' '.join(['.venv/bin/python benchmarks/bench_backbones.py', *sys.argv[1:]])}`  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"(default {default_threads} threads), Python {platform.python_version()}  ",
        f"Load average at start: {', '.join(f'{v:.1f}' for v in load)} — the CPU is shared with other "
        "engineers' jobs, so absolute numbers are noisy (a step can take several times longer while "
        "another job runs); "
        "each pair is timed in alternating rounds and the fastest step kept, so that the ratio is fair.",
        "",
        f"## Training throughput: forward + backward + SGD step, batch {args.batch}",
        "",
        f"{args.warmup} warm-up and {args.iters} timed steps per model and thread setting; images/s of the "
        "fastest step. Ratio = course / torchvision (goal >= 0.95). The single-thread columns are the "
        "reliable comparison here: with two threads a step stalls whenever another job takes a core.",
        "",
        "| course backbone | input | threads | course images/s | torchvision images/s | ratio | >= 0.95 |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for r in speed:
        for n in args.threads:
            t = r[n]
            lines.append(
                f"| {r['course']} (tv: {r['reference']}) | {r['size']}x{r['size']} | {n or default_threads} "
                f"| {t['course']:.1f} | {t['torchvision']:.1f} | {t['ratio']:.2f} "
                f"| {'yes' if t['ratio'] >= 0.95 else '**no**'} |"
            )
    params = (f"{r['course']} {r['params']['course']:,} / {r['params']['torchvision']:,}" for r in speed)
    lines += ["", f"Parameters (course / torchvision): {'; '.join(params)}."]
    lines += [
        "",
        "AlexNet is not the same network on both sides: the course's has 96/256 filters in conv1/conv2 and",
        "local response normalisation (62.4M parameters); torchvision's has 64/192 and none (61.1M).",
        "",
        "## Summary memory against a measurement",
        "",
        "`estimate` = the summary's activations for the batch (input excluded: it is allocated before the",
        "forward). `retained` = what `torch.profiler` sees still allocated when a forward pass with",
        "gradients returns (eval mode), i.e. what back-propagation keeps; `peak` adds the temporaries.",
        "",
        "| backbone | input | batch | estimate MB | retained MB | retained / estimate | peak MB | peak / estimate |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in memory:
        lines.append(
            f"| {m['name']} | {m['size']} | {m['batch']} | {m['estimate']:.2f} | {m['retained']:.2f} | "
            f"{m['retained'] / m['estimate']:.2f} | {m['peak']:.2f} | {m['peak'] / m['estimate']:.2f} |"
        )
    lines += [
        "",
        "Where the two differ, autograd keeps more than the layer outputs the course counts: max-pooling",
        "saves int64 indices (2x the pooled output in bytes), an in-place ReLU6 saves a copy of its input,",
        "and tanh keeps its output but lets the conv output before it go (so LeNet's retained memory is",
        "below the estimate). The peak adds convolution workspaces (im2col), largest relative to small",
        "networks.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1],
                        help="thread counts to time, 0 = torch's default (default: 0 1)")  # fmt: skip
    parser.add_argument("--models", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "backbones.md")
    args = parser.parse_args(argv)
    load, start = os.getloadavg(), time.perf_counter()
    speed = []
    for course in args.models:
        r = throughput(course, PAIRS[course], size=args.size, batch=args.batch, warmup=args.warmup,
                       iters=args.iters, threads=args.threads)  # fmt: skip
        for n in args.threads:
            t = r[n]
            print(f"{course:20s} {r['size']}px threads={n or 'default'}: {t['course']:7.1f} img/s", end="  ")
            print(f"torchvision {t['torchvision']:7.1f} img/s  ratio {t['ratio']:.2f}", flush=True)
        speed.append(r)
    memory = []
    for case in MEMORY_CASES:
        m = memory_check(*case)
        print(f"{m['name']:20s} estimate {m['estimate']:7.2f} MB", end="  ")
        print(f"retained {m['retained']:7.2f}  peak {m['peak']:7.2f}", flush=True)
        memory.append(m)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(args, speed, memory, load, time.perf_counter() - start))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
