"""Runs that need their own processes: resume after a kill, DDP on 2 CPU processes, W&B offline.

Each subprocess pays ~7 s of ``import lightning``; there are three of them in this file.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from visionsuite.cli import main
from wandb_records import logged

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")


def _args(root: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", TINY, "--data.init_args.data_dir", str(data_root),
        "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root), *extra,
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_killed_run_resumes_from_last_with_the_same_step_count(sig: signal.Signals, tmp_path: Path, data_root: Path) -> None:
    train, batch, epochs = 16_384, 64, 2
    expected_steps = epochs * math.ceil(train / batch)
    args = _args(
        tmp_path, data_root,
        "--data.init_args.train_subset", str(train), "--model.init_args.checkpoint_every_n_steps", "25",
        "--test_after_fit", "false",
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "visionsuite", *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not last.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    killed = torch.load(last, map_location="cpu", weights_only=True)  # complete, never half-written
    assert 0 < killed["global_step"] < expected_steps
    assert killed["global_step"] % (train // batch) != 0, "the kill should land mid-epoch"

    assert main([*args, "--ckpt_path", "last"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fit_global_step"] == expected_steps
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == expected_steps and final["epoch"] == epochs - 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_synchronise_logged_metrics(tmp_path: Path, data_root: Path) -> None:
    args = _args(
        tmp_path, data_root,
        "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.max_epochs", "1", "--data.init_args.train_subset", "2048",
    )
    result = subprocess.run([sys.executable, "-m", "visionsuite", *args], env=_env(MASTER_PORT=str(_free_port())),
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = json.loads((tmp_path / "metrics.rank0.json").read_text())
    rank1 = json.loads((tmp_path / "metrics.rank1.json").read_text())
    assert rank0 == rank1  # each rank saw half of val/test: equal values mean they were all-reduced
    assert rank0["fit_global_step"] == math.ceil(2048 / 64 / 2)  # the batches are split between ranks
    assert rank0["test/acc"] > 0.5


def test_wandb_offline_run_records_metrics(tmp_path: Path, data_root: Path) -> None:
    """The W&B logger config works with no account: an offline run directory with the metrics."""
    wandb_cfg = str(Path(__file__).parents[1] / "configs" / "logger" / "wandb.yaml")
    args = [
        "fit", "--config", TINY, "--config", wandb_cfg, "--data.init_args.data_dir", str(data_root),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.max_epochs", "1", "--data.init_args.train_subset", "1024",
    ]
    result = subprocess.run([sys.executable, "-m", "visionsuite", *args], env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = logged(next(runs[0].glob("run-*.wandb")))  # what `wandb sync` would upload
    assert run["summary"]["test/acc"] > 0.3 and 0.0 < run["summary"]["val/acc"] <= 1.0
    assert any("train/loss" in row for row in run["history"])
    assert run["config"]["backbone"] == "lenet5" and run["config"]["lr"] == 0.003  # hyperparameters
    assert run["summary"]["test/confusion_matrix/_type"] == "images/separated"
    media = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert any("confusion" in p.name for p in media) and any("samples" in p.name for p in media)
