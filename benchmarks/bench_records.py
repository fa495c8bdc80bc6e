"""Record recipes, timed as a user runs them: ``visionsuite fit --config <record config>`` in a
fresh process, from the first instruction to the closing line (imports, data loading from an
existing cache, training, the test of the best checkpoint). Writes
``benchmarks/results/records.md`` (one section per config, appended; earlier sections kept).

    .venv/bin/python benchmarks/bench_records.py configs/classification/record_fmnist_91.yaml --runs 3
    .venv/bin/python benchmarks/bench_records.py CONFIG --runs 3 --decode   # also time a first run (empty data_dir)

Cold start = a fresh process with the data set already decoded into ``data/`` (the state every
run after a user's first is in); ``--decode`` times one run with an empty ``data_dir`` too. The
test accuracy is the closing line's (``Test acc (best-validation checkpoint): 91.23%``). The
machine's load average is recorded with each run: on a shared 2-core VM it moves the times.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "records.md"
CLOSING = re.compile(r"Test acc[^:]*: ([0-9.]+)%")


def one_run(config: str, data_dir: str, overrides: list[str]) -> tuple[float, float, str]:
    """(wall seconds, test accuracy %, load average at the start) of one fresh ``fit``."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    with tempfile.TemporaryDirectory() as logs:
        cmd = [str(Path(sys.executable).with_name("visionsuite")), "fit", "--config", config,
               "--data.init_args.data_dir", data_dir, "--trainer.default_root_dir", logs,
               "--trainer.logger.init_args.save_dir", logs, *overrides]  # fmt: skip
        env = dict(os.environ, WANDB_MODE="offline")
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
    match = CLOSING.search(out.stdout + out.stderr)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"run failed (exit {out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    return wall, float(match.group(1)), load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--decode", action="store_true", help="also time one run with an empty data_dir")
    parser.add_argument("--goal", default="", help="the goal, as text for the table (e.g. '>= 91% in <= 30 s')")
    parser.add_argument("overrides", nargs="*", help="extra CLI overrides after --")
    args, extra = parser.parse_known_args()  # the fit overrides (``--model.init_args.lr 0.1``) pass through
    args.overrides = [a for a in args.overrides + extra if a != "--"]
    one_run(args.config, args.data_dir, args.overrides + ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"])  # decode once
    rows = []
    for i in range(args.runs):
        rows.append(one_run(args.config, args.data_dir, args.overrides))
        print(f"run {i + 1}: {rows[-1][0]:.1f} s, {rows[-1][1]:.2f}%, load {rows[-1][2]}", file=sys.stderr, flush=True)
    decode = None
    if args.decode:
        empty = tempfile.mkdtemp()
        try:
            decode = one_run(args.config, empty, args.overrides)
        finally:
            shutil.rmtree(empty, ignore_errors=True)
    walls, accs = [r[0] for r in rows], [r[1] for r in rows]
    import torch

    lines = [
        f"## `{args.config}`" + (f" {' '.join(args.overrides)}" if args.overrides else ""),
        "",
        f"Command: `.venv/bin/python benchmarks/bench_records.py {args.config} --runs {args.runs}`  ",
        (f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, "
         f"{os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)  "),
        f"Goal: {args.goal or 'n/a'}",
        "",
        "| run | wall s (whole process, cache present) | test accuracy | load average at start |",
        "|---:|---:|---:|---|",
        *[f"| {i} | {w:.1f} | {a:.2f}% | {load} |" for i, (w, a, load) in enumerate(rows, 1)],
        "",
        (f"**Median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f}); test accuracy median "
         f"{statistics.median(accs):.2f}% (min {min(accs):.2f}%, max {max(accs):.2f}%).**"),
    ]
    if decode is not None:
        lines.append(f"First run with an empty data_dir (decoding from the mirror included): {decode[0]:.1f} s, {decode[1]:.2f}%.")
    text = "\n".join(lines) + "\n\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Record recipes\n\nEach section: one config, timed by `benchmarks/bench_records.py`.\n\n")
    with RESULTS.open("a") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
