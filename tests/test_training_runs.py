"""Runs that need their own processes: DDP on 2 CPU processes, W&B offline (resume: test_run_lifecycle.py).

Each subprocess pays ~7 s of ``import lightning``; there are two of them in this file.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path


from wandb_records import logged

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")


def _args(root: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", TINY, "--data.init_args.data_dir", str(data_root),
        "--trainer.default_root_dir", str(root), *extra,
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


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
    (run,) = [p for p in tmp_path.iterdir() if not p.is_symlink()]  # both ranks wrote into one run folder
    rank0 = json.loads((run / "metrics.rank0.json").read_text())
    rank1 = json.loads((run / "metrics.rank1.json").read_text())
    assert rank0 == rank1  # each rank saw half of val/test: equal values mean they were all-reduced
    assert rank0["fit_global_step"] == math.ceil(2048 / 64 / 2)  # the batches are split between ranks
    assert rank0["test/acc"] > 0.5


def test_wandb_offline_run_records_metrics_config_and_model(tmp_path: Path, data_root: Path) -> None:
    """The W&B logger config works with no account: an offline run named <experiment>/<run> with the
    metrics, the whole resolved config and (log_model) the best checkpoint as an artifact."""
    wandb_cfg = str(Path(__file__).parents[1] / "configs" / "logger" / "wandb.yaml")
    args = [
        "fit", "--config", TINY, "--config", wandb_cfg, "--data.init_args.data_dir", str(data_root),
        "--trainer.default_root_dir", str(tmp_path / "exp"), "--run_name", "r1", "--trainer.max_epochs", "1",
        "--data.init_args.train_subset", "1024", "--trainer.logger.init_args.log_model", "true",
    ]
    result = subprocess.run([sys.executable, "-m", "visionsuite", *args], env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "exp" / "r1" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = logged(next(runs[0].glob("run-*.wandb")))  # what `wandb sync` would upload
    assert run["run"]["name"] == "exp/r1"
    assert run["summary"]["test/acc"] > 0.3 and 0.0 < run["summary"]["val/acc"] <= 1.0
    assert any("train/loss" in row for row in run["history"]) and any("lr-Adam" in row for row in run["history"])
    assert run["config"]["backbone"] == "lenet5" and run["config"]["lr"] == 0.003  # hyperparameters
    assert run["config"]["config"]["trainer"]["max_epochs"] == 1 and run["config"]["config"]["seed_everything"] == 0
    assert any(kind == "model" for _name, kind in run["artifacts"]), run["artifacts"]
    assert run["summary"]["test/confusion_matrix/_type"] == "images/separated"
    media = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    assert any("confusion" in p.name for p in media) and any("samples" in p.name for p in media)
