"""A run is the unit: ``test``/``predict``/``fit --run`` load a run's own config and checkpoint,
accept what only says how it was trained, refuse what changes what its weights mean, and leave
the run folder as it was. One tiny fit (module fixture) serves every test here."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from visionsuite.cli.app import main

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")
#: 16 steps an epoch, 2 epochs; lr and the checkpoint cadence differ from the config's (training settings).
FIT = ["--data.init_args.train_subset", "1024", "--data.init_args.val_subset", "256", "--data.init_args.test_subset",
       "256", "--model.init_args.lr", "0.002", "--model.init_args.checkpoint_every_n_steps", "5"]  # fmt: skip


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("visionsuite: error: "), err
    return err[-1]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class _Tested:
    """Records the weights the model holds when ``Trainer.test`` returns (what it scored)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lightning.pytorch import Trainer

        self.state: dict[str, torch.Tensor] | None = None
        original = Trainer.test

        @functools.wraps(original)  # LightningCLI reads the subcommand's options from this signature
        def test(trainer: Trainer, *args: Any, **kwargs: Any) -> Any:
            out = original(trainer, *args, **kwargs)
            self.state = {k: v.detach().clone() for k, v in trainer.lightning_module.state_dict().items()}
            return out

        monkeypatch.setattr(Trainer, "test", test)


class _Drawn:
    """Records what ``images/curves.png`` was last drawn from."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from visionsuite.outputs import curves

        self.panels: list[Any] = []
        original = curves.draw_curves

        def draw(panels: Any, path: Path) -> Any:
            self.panels = panels
            return original(panels, path)

        monkeypatch.setattr(curves, "draw_curves", draw)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> dict[str, Any]:
    """The tiny fit, with what it printed and what its curves were drawn from."""
    root = tmp_path_factory.mktemp("runs")
    capture = pytest.MonkeyPatch()
    drawn = _Drawn(capture)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            assert main(["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root),
                         "--trainer.default_root_dir", str(root), *FIT, "--run_name", "tiny"]) == 0  # fmt: skip
    finally:
        capture.undo()
    run = root / "tiny"
    return {"root": root, "run": run, "stdout": out.getvalue(), "panels": drawn.panels,
            "metrics": json.loads((run / "metrics.json").read_text())}  # fmt: skip


def _new_folder(root: Path, suffix: str) -> Path:
    found = sorted(p for p in root.iterdir() if p.name.endswith(suffix))
    assert found, list(root.iterdir())
    return found[-1]


def test_test_run_scores_the_checkpoint_it_names_with_its_weights(
    fitted: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run: Path = fitted["run"]
    before = _files(run)
    tested = _Tested(monkeypatch)
    assert main(["test", "--run", str(run)]) == 0  # default: the best checkpoint
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert tested.state is not None and tested.state.keys() == saved.keys()
    assert all(torch.equal(tested.state[k], saved[k]) for k in saved)
    score = json.loads((_new_folder(run.parent, "-test") / "metrics.json").read_text())["test/acc"]
    assert score == pytest.approx(fitted["metrics"]["test/acc"], abs=1e-6)  # what fit printed for the best
    assert _files(run) == before  # nothing written into the run

    assert main(["test", "--run", str(run), "--ckpt", "last"]) == 0
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(tested.state[k], last[k]) for k in last)


def test_predict_run_writes_its_own_folder(fitted: dict[str, Any]) -> None:
    run: Path = fitted["run"]
    before = _files(run)
    assert main(["predict", "--run", str(run), "--data.init_args.test_subset", "32"]) == 0  # the test split's files
    rows = list(csv.DictReader((_new_folder(run.parent, "-predict") / "predictions.csv").open()))
    assert len(rows) == 32
    assert _files(run) == before


def test_a_training_setting_differs_with_a_note_an_architecture_setting_is_refused(
    fitted: dict[str, Any], data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run: Path = fitted["run"]
    ckpt = str(run / "checkpoints" / "last.ckpt")
    # the shipped config has lr 0.003 and checkpoints every 20 steps: only training settings differ
    assert main(["test", "--config", TINY, "--ckpt_path", ckpt, "--data.init_args.data_dir", str(data_root),
                 "--trainer.default_root_dir", str(run.parent), "--data.init_args.test_subset", "64"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "other training settings" in err and "lr" in err and "checkpoint_every_n_steps" in err

    assert main(["test", "--run", str(run), "--model.init_args.backbone", "lenet5_wide"]) == 2
    line = _error_line(capsys)
    assert "backbone" in line and "lenet5" in line and "lenet5_wide" in line and "other model settings" in line


def test_an_input_option_of_the_data_is_refused(fitted: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run: Path = fitted["run"]
    assert main(["test", "--run", str(run), "--data.init_args.normalize", "false"]) == 2
    line = _error_line(capsys)
    assert "normalize" in line and str(run) in line
    assert main(["test", "--run", str(run), "--data.init_args.test_subset", "64"]) == 0  # a subset only selects images


def test_not_a_run_and_a_run_without_checkpoints(
    fitted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "--run", str(tmp_path)]) == 2
    assert str(tmp_path) in _error_line(capsys)
    assert main(["test", "--run", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in _error_line(capsys)
    bare = tmp_path / "bare"
    shutil.copytree(fitted["run"], bare, ignore=shutil.ignore_patterns("*.ckpt"))
    assert main(["test", "--run", str(bare)]) == 2
    assert "checkpoint" in _error_line(capsys)
    assert main(["test", "--run", str(fitted["run"]), "--ckpt_path", "last"]) == 2
    assert "--ckpt best|last" in _error_line(capsys)


def test_a_file_log_has_one_line_per_epoch_and_no_carriage_return(fitted: dict[str, Any]) -> None:
    out: str = fitted["stdout"]
    assert "\r" not in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("train/loss" in line and "val/acc" in line and "img/s" in line for line in epochs)
    assert epochs[-1].split()[3] == "32"  # the step after 2 x 16 batches


def test_curves_are_drawn_from_the_numbers_in_metrics_csv(fitted: dict[str, Any]) -> None:
    run: Path = fitted["run"]
    assert (run / "images" / "curves.png").stat().st_size > 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    expected = [(int(r["step"]), float(r["val/acc"])) for r in rows if r.get("val/acc")]
    assert len(expected) == 2
    drawn = {key: points for _, _, series in fitted["panels"] for key, points in series.items()}
    assert drawn["val/acc"] == expected
    losses = [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]
    assert drawn["train/loss"] == losses and len(losses) >= 3
    assert any(key.startswith("lr-") for key in drawn)


def test_fit_run_resumes_in_place_and_says_how_to_extend_a_finished_run(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
                 str(tmp_path), *FIT, "--trainer.max_epochs", "1", "--test_after_fit", "false", "--run_name", "r",
                 "--trainer.enable_progress_bar", "true"]) == 0  # fmt: skip
    out = capsys.readouterr().out  # not a terminal: the bar the config asks for is off, one line an epoch
    assert "\r" not in out and [line.split()[:2] for line in out.splitlines() if line.startswith("epoch")] == [["epoch", "1/1"]]
    run = tmp_path / "r"
    assert main(["fit", "--run", str(run)]) == 2
    line = _error_line(capsys)
    assert "trained 1 epoch(s) already" in line and "--trainer.max_epochs 2" in line
    assert main(["fit", "--run", str(run), "--trainer.max_epochs", "2", "--test_after_fit", "false"]) == 0
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 32 and last["epoch"] == 1
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1  # the newest best replaced the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "r"]  # resumed in place, no new folder
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/acc")]
    assert steps == [15, 31]  # the first epoch's row kept, the second appended


def test_a_moved_run_that_was_resumed_tests_its_newest_best(fitted: dict[str, Any], tmp_path: Path) -> None:
    """A copied folder resumed keeps the old best beside the new one: ``--ckpt best`` is the one
    ``last.ckpt`` names."""
    run = tmp_path / "copy"
    shutil.copytree(fitted["run"], run)
    assert main(["fit", "--run", str(run), "--trainer.max_epochs", "3", "--test_after_fit", "false"]) == 0
    from visionsuite.runs.folders import run_checkpoint

    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 2
    named = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    expected = {Path(s["best_model_path"]).name for s in named.values() if s.get("best_model_path")}
    assert run_checkpoint(run, "best").name in expected


def test_a_fit_that_fails_before_training_leaves_no_folder_and_keeps_latest(
    fitted: dict[str, Any], data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root: Path = fitted["root"]
    before = sorted(p.name for p in root.iterdir())
    latest = (root / "latest").resolve()
    args = ["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(root),
            "--model.init_args.backbone", "resnet999"]  # fmt: skip
    assert main(args) == 2
    assert "resnet999" in _error_line(capsys)
    assert sorted(p.name for p in root.iterdir()) == before
    assert (root / "latest").resolve() == latest
