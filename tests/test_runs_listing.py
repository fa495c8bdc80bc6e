"""``visionsuite runs`` and ``visionsuite compare`` on fake run folders shaped like real ones, and
``run.json`` (RunRecord) from one real tiny fit."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from visionsuite.cli.app import main
from visionsuite.tools import compare, runs

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")
COLUMNS = ["epoch", "lr-Adam", "step", "test/acc", "test/loss", "train/loss", "val/acc", "val/loss"]


def _config(run: Path, task: str = "ClassificationTask", lr: float = 0.003, batch_size: int = 64, **init: Any) -> dict[str, Any]:
    """The shape of a real resolved ``config.yaml`` (trimmed): per-run folders in trainer and logger."""
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "max_epochs": 2, "default_root_dir": str(run),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(run), "name": "", "version": ""}},
        },
        "model": {"class_path": f"visionsuite.tasks.{task}",
                  "init_args": {"backbone": "lenet5", "num_classes": 10, "optimizer": "adam", "lr": lr, **init}},
        "data": {"class_path": "visionsuite.data.FashionMNISTDataModule",
                 "init_args": {"data_dir": "data", "batch_size": batch_size, "train_subset": 4096}},
        "test_after_fit": True, "run_name": run.name, "run": None, "ckpt_path": None,
    }  # fmt: skip


def _rows(val: list[tuple[int, int, float, float]], test_acc: float | None = 0.8) -> list[dict[str, Any]]:
    """Sparse CSV-logger rows: lr rows, train rows, one val row per (epoch, step, acc, loss), the test row."""
    rows: list[dict[str, Any]] = []
    for epoch, step, acc, loss in val:
        rows += [{"lr-Adam": 0.003, "step": step - 1}, {"epoch": epoch, "step": step - 1, "train/loss": loss + 0.1},
                 {"epoch": epoch, "step": step, "val/acc": acc, "val/loss": loss}]  # fmt: skip
    if test_acc is not None and val:
        rows.append({"epoch": val[-1][0] + 1, "step": val[-1][1], "test/acc": test_acc, "test/loss": 0.5})
    return rows


def make_run(root: Path, name: str, *, val: list[tuple[int, int, float, float]] | None = None,
             record: dict[str, Any] | None = None, finished: bool = True, columns: list[str] = COLUMNS,
             **config: Any) -> Path:  # fmt: skip
    """A fit run folder as ``visionsuite fit`` leaves it (``run.json`` only when ``record`` is given)."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / "config.yaml").write_text("# lightning.pytorch==2.6.6\n" + yaml.safe_dump(_config(run, **config), sort_keys=False))
    val = [(0, 63, 0.70, 0.80), (1, 127, 0.81, 0.60), (2, 191, 0.77, 0.55)] if val is None else val
    with (run / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_rows(val))
    metrics = {"val/acc": val[-1][2], "test_global_step": 191} if val else {}
    if finished:
        metrics["fit_global_step"] = 191
    (run / "metrics.json").write_text(json.dumps(metrics))
    if record is not None:
        (run / "run.json").write_text(json.dumps(record))
    return run


def _record(status: str, started: float, **extra: Any) -> dict[str, Any]:
    iso = datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")
    return {"status": status, "pid": 1, "host": "elsewhere", "started": iso, "task": "ClassificationTask",
            "backbone": "lenet5", "monitor": "val/acc", "mode": "max", "epochs": 3, "step": 191, **extra}  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _listed(root: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["runs", str(root), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- the listing ----------------------------------------------------------------------------

def test_listing_is_newest_first_with_aligned_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    make_run(tmp_path / "exp_a", "old", record=_record("finished", now - 3 * 86400))
    make_run(tmp_path / "exp_b", "new", record=_record("finished", now - 120))
    legacy = make_run(tmp_path / "exp_a", "legacy")  # no run.json: sorted by the folder's time
    os.utime(legacy, (now - 3600, now - 3600))
    assert [r["name"] for r in _listed(tmp_path, capsys)] == ["exp_b/new", "exp_a/legacy", "exp_a/old"]

    assert main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "TASK", "MODEL", "STATUS", "EPOCHS", "BEST", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["exp_b/new", "exp_a/legacy", "exp_a/old"]
    assert lines[1].split()[1:] == ["ClassificationTask", "lenet5", "finished", "3", "val/acc", "0.8100", "2m"]
    assert lines[2].split()[-1] == "1h" and lines[3].split()[-1] == "3d"
    assert len({line.index("TASK") if i == 0 else line.index("Classification") for i, line in enumerate(lines)}) == 1


def test_a_running_record_whose_process_is_gone_is_killed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    here = socket.gethostname()
    make_run(tmp_path, "dead", record=_record("running", time.time() - 60, pid=_dead_pid(), host=here))
    make_run(tmp_path, "alive", record=_record("running", time.time() - 30, pid=os.getpid(), host=here))
    make_run(tmp_path, "remote", record=_record("running", time.time() - 10, pid=_dead_pid(), host="other-host"))
    status = {r["name"]: r["status"] for r in _listed(tmp_path, capsys)}
    assert status == {"dead": "killed", "alive": "running", "remote": "running"}  # another host's pid says nothing here


def test_status_diverged_failed_and_runs_without_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path, "div", record=_record("diverged", time.time(), error="DivergenceError: training loss is nan"))
    make_run(tmp_path, "fail", record=_record("failed", time.time(), error="RuntimeError: out of memory"))
    make_run(tmp_path, "old_done")  # metrics.json has fit_global_step
    make_run(tmp_path, "old_cut", finished=False)
    listed = {r["name"]: r for r in _listed(tmp_path, capsys)}
    assert {k: r["status"] for k, r in listed.items()} == {"div": "diverged", "fail": "failed", "old_done": "finished", "old_cut": "unknown"}
    assert listed["div"]["error"].startswith("DivergenceError")


def test_best_is_the_max_of_the_monitored_column_and_epochs_ignore_the_test_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, "r", val=[(0, 10, 0.52, 0.9), (1, 20, 0.875, 0.7), (2, 30, 0.61, 0.5), (3, 40, 0.70, 0.4)])
    with (run / "metrics.csv").open() as f:
        by_hand = max(float(row["val/acc"]) for row in csv.DictReader(f) if row["val/acc"])
    (listed,) = _listed(tmp_path, capsys)
    assert (listed["monitor"], listed["mode"], listed["best"]) == ("val/acc", "max", by_hand) and by_hand == 0.875
    assert listed["epochs"] == 4  # epochs 0…3; the test row (logged at epoch 4) is not trained


def test_the_monitor_rule_and_run_json_s_monitor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    val = [(0, 10, 0.5, 0.9), (1, 20, 0.6, 0.3), (2, 30, 0.7, 0.4)]
    make_run(tmp_path, "loss_only", val=val, columns=["epoch", "step", "train/loss", "val/loss"])
    make_run(tmp_path, "by_record", val=val, record=_record("finished", time.time(), monitor="val/loss", mode="min"))
    make_run(tmp_path, "gan", val=val, record=_record("finished", time.time(), monitor=None, mode=None))
    listed = {r["name"]: (r["monitor"], r["mode"], r["best"]) for r in _listed(tmp_path, capsys)}
    assert listed == {"loss_only": ("val/loss", "min", 0.3), "by_record": ("val/loss", "min", 0.3), "gan": (None, None, None)}
    assert runs.guess_monitor(["val/loss", "val/miou", "val/acc_top5"]) == ("val/miou", "max")
    assert runs.guess_monitor(["val/fid", "val/loss"]) == ("val/fid", "min")
    assert runs.guess_monitor(["train/loss"]) is None


def test_a_missing_root_is_an_error_and_an_empty_one_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"visionsuite: error: {tmp_path / 'nowhere'}: no such folder (give the folder your runs are in, e.g. logs/)"
    assert main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no fit runs below {tmp_path}/"


def test_the_listing_imports_neither_torch_nor_lightning(tmp_path: Path) -> None:
    make_run(tmp_path, "r", record=_record("finished", time.time()))
    code = ("import sys; from visionsuite.cli.app import main; main(['runs', sys.argv[1]]);"
            " assert not {'torch', 'lightning'} & set(sys.modules), sorted({'torch', 'lightning'} & set(sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ClassificationTask" in done.stdout


# --- compare --------------------------------------------------------------------------------

def _table(text: str, title: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``## title``: first cell → the other cells."""
    block = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split(" | ")] for r in rows)}


def test_compare_lists_exactly_the_changed_config_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", lr=0.01, batch_size=128)  # folders, logger dirs and run_name differ too
    out = tmp_path / "cmp.png"
    assert main(["compare", str(a), str(b), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert _table(text, "config differences") == {
        "data.init_args.batch_size": ["64", "128"],
        "model.init_args.lr": ["0.003", "0.01"],
    }
    metrics = _table(text, "metrics")
    assert metrics["final val/acc"] == ["0.7700", "0.7700"] and metrics["best val/acc (max)"] == ["0.8100", "0.8100"]
    assert set(metrics) == {"final val/acc", "final val/loss", "final test/acc", "final test/loss", "best val/acc (max)"}
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in a.iterdir()) == ["checkpoints", "config.yaml", "metrics.csv", "metrics.json"]


def test_compare_draws_each_run_s_validation_series(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", val=[(0, 10, 0.5, 0.9), (1, 20, 0.6, 0.8)])
    b = make_run(tmp_path, "b", val=[(0, 15, 0.4, 1.0), (1, 30, 0.9, 0.2), (2, 45, 0.95, 0.1)])
    panels = dict(compare.curve_panels(compare.load([str(a), str(b)], tmp_path)))
    assert panels == {
        "val/acc": {"a": [(10, 0.5), (20, 0.6)], "b": [(15, 0.4), (30, 0.9), (45, 0.95)]},
        "val/loss": {"a": [(10, 0.9), (20, 0.8)], "b": [(15, 1.0), (30, 0.2), (45, 0.1)]},
    }


def test_compare_refuses_one_run_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_run(tmp_path / "exp", "a")
    make_run(tmp_path / "exp", "b")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(a), "a", "--root", str(tmp_path)]) == 2  # its folder and its name
    err = capsys.readouterr().err.strip()
    assert err.startswith("visionsuite: error: run ") and "is given twice" in err and len(err.splitlines()) == 1
    assert main(["compare", str(a)]) == 2
    assert "at least 2 runs" in capsys.readouterr().err
    assert not (tmp_path / "compare.png").exists()


def test_compare_of_different_tasks_notes_it_and_compares_what_they_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "cls")
    b = make_run(tmp_path, "seg", task="SegmentationTask", columns=["epoch", "step", "train/loss", "val/loss"])
    assert main(["compare", str(a), str(b), "--output", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "note: runs of different tasks (ClassificationTask, SegmentationTask): comparing what they share"
    assert "model.class_path" in _table(text, "config differences")
    assert set(_table(text, "metrics")) == {"final val/loss", "best val/acc (max)", "best val/loss (min)"}
    assert list(dict(compare.curve_panels(compare.load([str(a), str(b)], tmp_path)))) == ["val/loss"]


# --- run.json -------------------------------------------------------------------------------

def _trainer(root: Path, **extra: Any) -> SimpleNamespace:
    from lightning.pytorch.trainer.states import TrainerFn

    return SimpleNamespace(is_global_zero=True, fast_dev_run=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
                           default_root_dir=str(root), current_epoch=0, global_step=0, interrupted=False, **extra)  # fmt: skip


def test_run_record_statuses_and_a_resume_keeping_its_start(tmp_path: Path) -> None:
    from visionsuite.callbacks import DivergenceError, RunRecord

    module = SimpleNamespace(hparams={"model": "unet"}, monitor="val/miou", mode="max")
    trainer = _trainer(tmp_path)
    (tmp_path / "config.yaml").write_text("{}")
    record = RunRecord()
    record.on_fit_start(trainer, module)
    assert (tmp_path / "run.json").is_file()
    record.on_exception(trainer, module, RuntimeError("CUDA out of memory"))
    assert not (tmp_path / "run.json").exists()  # nothing trained: the CLI may discard the folder

    (tmp_path / "metrics.csv").write_text("step,val/miou\n")
    record.on_fit_start(trainer, module)
    first = json.loads((tmp_path / "run.json").read_text())
    assert (first["status"], first["backbone"], first["monitor"], first["mode"]) == ("running", "unet", "val/miou", "max")
    trainer.current_epoch, trainer.global_step = 0, 50
    record.on_train_epoch_end(trainer, module)
    record.on_exception(trainer, module, DivergenceError("training loss is nan at step 51\nmore"))
    done = json.loads((tmp_path / "run.json").read_text())
    assert (done["status"], done["epochs"], done["error"]) == ("diverged", 1, "DivergenceError: training loss is nan at step 51")

    again = RunRecord()  # fit --ckpt_path last: the same folder
    again.on_fit_start(trainer, module)
    again.on_exception(trainer, module, KeyboardInterrupt())
    resumed = json.loads((tmp_path / "run.json").read_text())
    assert resumed["started"] == first["started"] and len(resumed["resumes"]) == 1 and resumed["status"] == "stopped"
    assert "error" in resumed
    again.on_fit_start(trainer, module)
    again.on_exception(trainer, module, RuntimeError("boom"))
    failed = json.loads((tmp_path / "run.json").read_text())
    assert (failed["status"], failed["error"], len(failed["resumes"])) == ("failed", "RuntimeError: boom", 2)


def test_run_record_of_a_real_fit_is_what_the_listing_shows(tmp_path: Path, data_root: Path, mirror: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    args = ["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.max_epochs", "1", "--data.init_args.train_subset", "512", "--data.init_args.val_subset", "128",
            "--test_after_fit", "false"]  # fmt: skip
    assert main(args) == 0
    run = (tmp_path / "latest").resolve()
    record = json.loads((run / runs.RUN_JSON).read_text())
    assert (record["status"], record["epochs"], record["step"], record["task"]) == ("finished", 1, 8, "ClassificationTask")
    assert (record["backbone"], record["monitor"], record["mode"], record["host"]) == ("lenet5", "val/acc", "max", socket.gethostname())
    capsys.readouterr()
    (listed,) = _listed(tmp_path, capsys)
    with (run / "metrics.csv").open() as f:
        accs = [float(row["val/acc"]) for row in csv.DictReader(f) if row.get("val/acc")]
    assert (listed["status"], listed["epochs"], listed["best"]) == ("finished", 1, max(accs))


def test_compare_without_output_writes_beside_the_first_run_not_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_run(tmp_path / "exp", "a", val=[(0, 10, 0.5, 0.9)])
    b = make_run(tmp_path / "exp", "b", val=[(0, 10, 0.6, 0.8)])
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    assert main(["compare", str(a), str(b)]) == 0
    (written,) = (tmp_path / "exp").glob("*-compare/compare.png")
    assert f"wrote {written}" in capsys.readouterr().out
    assert list(scratch.iterdir()) == []
