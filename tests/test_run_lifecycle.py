"""Run folders, resuming, evaluating the right checkpoint, and refusing bad or unsafe checkpoints."""

from __future__ import annotations

import csv
import http.server
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from run_probe import FirstStep

from visionsuite.cli.app import main

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")


def _args(cmd: str, root: Path, data_root: Path, *extra: str) -> list[str]:
    return [cmd, "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(root), *extra]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("visionsuite: error: "), err
    return err[-1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """Two short fits of one experiment."""
    root = tmp_path_factory.mktemp("exp")
    for name in ("first", "second"):
        args = _args("fit", root, data_root, "--run_name", name, "--trainer.max_epochs", "1",
                     "--data.init_args.train_subset", "2048", "--test_after_fit", "false")
        assert main(args) == 0
    return root


def test_two_runs_leave_two_folders_and_latest_points_at_the_second(two_runs: Path) -> None:
    first, second = two_runs / "first", two_runs / "second"
    for run in (first, second):
        assert (run / "checkpoints" / "last.ckpt").is_file() and len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
        assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file() and (run / "metrics.csv").is_file()
    assert (two_runs / "latest").resolve() == second.resolve()
    assert sorted(p.name for p in two_runs.iterdir()) == ["first", "latest", "second"]


def test_a_run_name_is_never_reused(two_runs: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args("fit", two_runs, data_root, "--run_name", "first")) == 2
    assert "exists already" in _error_line(capsys)


@pytest.mark.parametrize("which", ["best", "last"])
def test_test_scores_the_trained_checkpoint_of_the_latest_run(which: str, two_runs: Path, data_root: Path) -> None:
    """A fresh CLI (new Trainer, no fit before it) finds and loads the run's checkpoint."""
    assert main(_args("test", two_runs, data_root, "--ckpt_path", which)) == 0
    runs = sorted(p for p in two_runs.iterdir() if p.name.endswith("-test"))
    metrics = json.loads((runs[-1] / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.6  # chance is 0.10
    config = (runs[-1] / "config.yaml").read_text()
    assert str(two_runs / "second" / "checkpoints") in config  # the resolved checkpoint is recorded


def test_run_name_selects_which_run_to_evaluate(two_runs: Path, data_root: Path) -> None:
    assert main(_args("validate", two_runs, data_root, "--ckpt_path", "last", "--run_name", "first")) == 0
    runs = sorted(p for p in two_runs.iterdir() if p.name.endswith("-validate"))
    assert str(two_runs / "first" / "checkpoints" / "last.ckpt") in (runs[-1] / "config.yaml").read_text()


def _payload_checkpoint(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):  # runs at unpickling time, unless weights_only refuses it
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {}, "payload": Payload()}, path)


def test_checkpoint_with_code_is_refused_locally_and_over_http(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "serve" / "evil.ckpt"
    evil.parent.mkdir()
    _payload_checkpoint(evil, marker)
    assert main(_args("test", tmp_path / "exp", data_root, "--ckpt_path", str(evil))) == 2
    assert "pickled code" in _error_line(capsys)

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(evil.parent))  # noqa: E731
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/evil.ckpt"
        assert main(_args("test", tmp_path / "exp", data_root, "--ckpt_path", url)) == 2
        assert "remote checkpoints are not loaded" in _error_line(capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.ckpt", "no such file"),
        (lambda d: (d / "garbage.ckpt").write_text("not a checkpoint") and d / "garbage.ckpt", "truncated or not a checkpoint"),
        (lambda d: (d / "t.ckpt").write_bytes((d / "second" / "checkpoints" / "last.ckpt").read_bytes()[:4000]) and d / "t.ckpt",
         "truncated or not a checkpoint"),
    ],
    ids=["missing", "garbage", "truncated"],
)
def test_bad_ckpt_path_gives_one_line(make, expected: str, two_runs: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args("test", two_runs, data_root, "--ckpt_path", str(make(two_runs)))) == 2
    assert expected in _error_line(capsys)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["test"], "test needs trained weights"),
        (["predict"], "predict needs trained weights"),
        (["test", "--ckpt_path", "last", "--model.init_args.backbone", "lenet1"], "backbone: checkpoint='lenet5' config='lenet1'"),
        (["fit", "--trainer.max_steps", "-5"], "trainer.max_steps=-5"),
        (["fit", "--trainer.max_epochs", "0"], "trainer.max_epochs=0 trains nothing"),
        (["fit", "--trainer.max_steps", "0"], "trainer.max_steps=0 trains nothing"),
        (["test", "--ckpt_path", "best", "--run_name", "nope"], "no run"),
    ],
    ids=["test-untrained", "predict-untrained", "hparams-differ", "max-steps-negative", "max-epochs-0", "max-steps-0", "no-run"],
)
def test_user_errors_are_one_line(args: list[str], expected: str, two_runs: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in two_runs.iterdir())
    assert main(_args(args[0], two_runs, data_root, *args[1:])) == 2
    assert expected in _error_line(capsys)
    assert sorted(p.name for p in two_runs.iterdir()) == before  # refused before any folder is made


def test_best_on_an_empty_experiment_is_one_line(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args("test", tmp_path, data_root, "--ckpt_path", "best")) == 2
    assert "has no 'latest' run" in _error_line(capsys)


def test_diverging_loss_stops_at_the_step_with_no_nan_checkpoint(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # lr 1e38 is a valid (finite) value that makes SGD overflow to NaN within a few steps
    args = _args("fit", tmp_path, data_root, "--model.init_args.lr", "1e38", "--model.init_args.optimizer", "sgd",
                 "--model.init_args.checkpoint_every_n_steps", "1")
    assert main(args) == 2
    line = _error_line(capsys)
    assert "training loss is nan at step" in line or "training loss is inf at step" in line or "are not finite" in line, line
    run = (tmp_path / "latest").resolve()
    assert not list((run / "checkpoints").glob("best-*.ckpt"))
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (run / "metrics.json").exists() or "test/acc" not in json.loads((run / "metrics.json").read_text())


def test_lr_curve_and_full_config_are_logged(two_runs: Path) -> None:
    import yaml

    rows = list(csv.DictReader((two_runs / "second" / "metrics.csv").open()))
    assert any(r.get("lr-Adam") for r in rows)
    hparams = yaml.safe_load((two_runs / "second" / "hparams.yaml").read_text())
    assert hparams["config"]["trainer"]["max_epochs"] == 1 and hparams["config"]["seed_everything"] == 0


def _env() -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def test_sigkilled_run_resumes_in_place_from_the_restored_step(tmp_path: Path, data_root: Path) -> None:
    train, batch, epochs = 16_384, 64, 2
    expected_steps = epochs * math.ceil(train / batch)
    args = _args("fit", tmp_path, data_root, "--data.init_args.train_subset", str(train),
                 "--model.init_args.checkpoint_every_n_steps", "25", "--test_after_fit", "false", "--run_name", "run")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "visionsuite", *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not last.exists() or torch.load(last, map_location="cpu", weights_only=True)["global_step"] <= 100:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint past step 100 appeared"
        time.sleep(0.5)  # past step 100, where the CSV logger first flushes metrics.csv
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = torch.load(last, map_location="cpu", weights_only=True)
    assert 0 < killed["global_step"] < expected_steps

    FirstStep.seen.clear()
    resume = [a for a in args if a not in ("--run_name", "run")]  # `last` = the experiment's latest run
    assert main([*resume, "--ckpt_path", "last", "--trainer.callbacks+=run_probe.FirstStep"]) == 0
    assert FirstStep.seen == [killed["global_step"]]  # training restarted at the restored step, not 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "run"]  # resumed in place
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == expected_steps and final["epoch"] == epochs - 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["fit_global_step"] == expected_steps
    rows = [r for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open()) if r.get("train/loss")]
    steps = [int(float(r["step"])) for r in rows]
    assert steps == sorted(set(steps)), "no step logged twice"
    assert steps[0] < 100 < killed["global_step"] < steps[-1], "the killed run's history is kept"


TENSORBOARD = str(Path(__file__).parents[1] / "configs" / "logger" / "tensorboard.yaml")


def test_tensorboard_logger_writes_events_into_the_run_folder(tmp_path: Path, data_root: Path) -> None:
    pytest.importorskip("tensorboard")  # the `tensorboard` extra (part of `test`)
    args = _args("fit", tmp_path, data_root, "--config", TENSORBOARD, "--run_name", "tb", "--trainer.max_steps", "3",
                 "--test_after_fit", "false")
    assert main(args) == 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*")) and (tmp_path / "tb" / "config.yaml").is_file()


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    assert main(_args("fit", tmp_path, data_root, "--config", TENSORBOARD)) == 2
    assert ".[tensorboard]" in _error_line(capsys)


def test_wandb_without_login_or_mode_falls_back_to_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No WANDB_MODE, no API key, no ~/.netrc: offline with a warning instead of a login prompt."""
    from jsonargparse import Namespace

    from visionsuite.runs.config import configure_loggers

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    logger = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(project="p", offline=False, id=None))
    run = tmp_path / "exp" / "r1"
    notes = configure_loggers(Namespace(logger=logger), run, resumed=False)
    assert logger.init_args.offline is True and len(notes) == 1 and "wandb sync" in notes[0]
    assert logger.init_args.name == "exp/r1" and logger.init_args.save_dir == str(run)
    monkeypatch.setenv("WANDB_MODE", "online")
    logger.init_args.offline = False
    assert configure_loggers(Namespace(logger=logger), run, resumed=False) == []


def test_resume_mid_epoch_ends_with_the_weights_of_an_uninterrupted_run(tmp_path: Path, data_root: Path) -> None:
    """Stopped mid-epoch (step 40 of 64; 32 batches per epoch) and resumed with ``--ckpt_path last``,
    the run trains on exactly the batches the uninterrupted run saw after step 40: same weights."""
    common = ["--data.init_args.train_subset", "2048", "--model.init_args.checkpoint_every_n_steps", "10",
              "--trainer.deterministic", "true", "--test_after_fit", "false", "--run_name", "run"]
    assert main(_args("fit", tmp_path / "whole", data_root, *common)) == 0
    assert main(_args("fit", tmp_path / "cut", data_root, *common, "--trainer.max_steps", "40")) == 0
    last = tmp_path / "cut" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 40
    resume = [a for a in common if a not in ("--run_name", "run")]
    assert main(_args("fit", tmp_path / "cut", data_root, *resume, "--ckpt_path", "last")) == 0

    def final(root: Path) -> dict:
        return torch.load(root / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)

    whole, resumed = final(tmp_path / "whole"), final(tmp_path / "cut")
    assert whole["global_step"] == resumed["global_step"] == 64
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_evaluation_options_may_differ_from_the_checkpoint(two_runs: Path, data_root: Path) -> None:
    """``channels_last`` (how weights are stored, not what they are) may be changed for ``test``;
    the score is that of the same trained weights."""
    assert main(_args("test", two_runs, data_root, "--ckpt_path", "last")) == 0
    assert main(_args("test", two_runs, data_root, "--ckpt_path", "last", "--model.init_args.channels_last", "true")) == 0
    runs = sorted(p for p in two_runs.iterdir() if p.name.endswith("-test"))
    default, nhwc = (json.loads((r / "metrics.json").read_text()) for r in runs[-2:])
    assert nhwc["test/acc"] == pytest.approx(default["test/acc"], abs=1e-3)


def test_each_task_lists_its_evaluation_only_options() -> None:
    from visionsuite.runs.checkpoints import hparam_differences
    from visionsuite.tasks import DetectionTask, SegmentationTask

    saved = {"model": "smp:Unet", "test_time_flip": False, "lr": 0.002}
    configured = {"model": "smp:Unet", "test_time_flip": True, "lr": 0.01}
    assert hparam_differences(saved, configured, SegmentationTask.evaluation_options) == ["lr: checkpoint=0.002 config=0.01"]
    assert len(hparam_differences(saved, configured)) == 2
    saved = {"head": "fcos", "score_thresh": 0.05, "nms_thresh": 0.5, "test_time_flip": False, "fpn_channels": 128}
    configured = {"head": "fcos", "score_thresh": 0.3, "nms_thresh": 0.6, "test_time_flip": True, "fpn_channels": 64}
    assert hparam_differences(saved, configured, DetectionTask.evaluation_options) == ["fpn_channels: checkpoint=128 config=64"]
