"""CPU inference of exported ONNX models under onnxruntime against PyTorch eager.

LeNet-5 (1x28x28), ResNet-18 CIFAR (3x32x32) and a small U-Net (depth 3, base width 16,
3x64x64, 12 classes), each at batch 1 and 64: images/s, the best of ``--repeats`` timed runs of
at least ``--min-seconds`` each, with the same thread count for both (``--threads``). The ONNX
file is written by :func:`visionsuite.tools.export.export_model` (the one ``visionsuite export`` uses)
and checked against PyTorch first. Writes ``benchmarks/results/export.md``.

    PYTHONPATH=. python benchmarks/bench_export.py [--threads 2] [--repeats 3] [--min-seconds 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "export.md"


def models() -> dict[str, tuple[torch.nn.Module, tuple[int, int, int]]]:
    from visionsuite.backbones import create_backbone
    from visionsuite.models.segmentation import build_segmentation_model

    return {
        "LeNet-5": (create_backbone("lenet5", num_classes=10, in_chans=1), (1, 28, 28)),
        "ResNet-18 (CIFAR)": (create_backbone("resnet18_cifar", num_classes=10), (3, 32, 32)),
        "U-Net (d3, w16)": (build_segmentation_model("unet", num_classes=12, depth=3, base_width=16), (3, 64, 64)),
    }


def rate(run: Callable[[], object], batch: int, repeats: int, min_seconds: float) -> float:
    """Images/s: the best of ``repeats`` runs, each looping ``run`` for at least ``min_seconds``."""
    run()  # warm-up
    best = 0.0
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds:
            run()
            n += 1
        best = max(best, n * batch / elapsed)
    return best


def main() -> None:
    import onnxruntime as ort

    from visionsuite.tools.export import check_export, export_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = opts.threads
    options.inter_op_num_threads = 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, shape) in models().items():
            model.eval()
            path = export_model(model, torch.rand(2, *shape), "onnx", Path(tmp) / "m.onnx")
            check_export(model, path, torch.rand(8, *shape))
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for batch in (1, 64):
                x = torch.rand(batch, *shape)
                xn = x.numpy()
                with torch.inference_mode():
                    eager = rate(lambda: model(x), batch, opts.repeats, opts.min_seconds)
                onnx = rate(lambda: session.run(None, {"image": xn}), batch, opts.repeats, opts.min_seconds)
                rows.append((name, batch, eager, onnx))
                print(f"{name:<20} batch {batch:>2}: eager {eager:9.1f} img/s  onnxruntime {onnx:9.1f} img/s  ({onnx / eager:.2f}x)")
    load = os.getloadavg()[0]
    lines = [
        "# Exported ONNX (onnxruntime) against PyTorch eager, CPU inference",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_export.py --threads {opts.threads} --repeats {opts.repeats}"
        f" --min-seconds {opts.min_seconds}`; torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{opts.threads} threads each; best of {opts.repeats} runs.",
        "",
        f"**Measured with the machine shared (2 cores, load average {load:.1f} at the end of the run)**: the",
        "absolute numbers and even the ratios are noisy; rerun on an idle machine before quoting them.",
        "",
        "| model | batch | PyTorch eager img/s | onnxruntime img/s | ORT / eager |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {b} | {e:,.1f} | {o:,.1f} | {o / e:.2f}x |" for n, b, e, o in rows],
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
