"""The ``visionsuite`` command end to end, in-process, on a real Fashion-MNIST subset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from task_tester import TaskTester

from visionsuite.cli.app import main

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")


def _dirs(root: Path) -> list[str]:
    return ["--trainer.default_root_dir", str(root)]


def _only_run(root: Path, suffix: str) -> Path:
    """The one run folder of ``root`` whose name ends with ``suffix`` (e.g. ``-test``)."""
    (run,) = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.endswith(suffix)]
    return run


class TestClassificationContract(TaskTester):
    config = TINY
    metric = "test/acc"
    images = ("test_samples.png", "test_confusion_matrix.png")
    predictions = ("predictions.csv",)
    predict_overrides = ("--data.init_args.test_subset", "32")
    mismatch = ("backbone", "lenet1")


@pytest.fixture
def trained_run(request: pytest.FixtureRequest) -> Path:
    """One real fit (+ test of the best checkpoint), the contract's, shared by the tests below."""
    return TestClassificationContract.fit_once(request)["run"]


def test_fit_learns_and_tests_the_best_checkpoint(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.70, metrics  # chance is 0.10; 128 steps on 4k images
    assert metrics["val/acc"] > 0.70
    assert metrics["fit_global_step"] == 2 * 4096 // 64
    best = list((trained_run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (trained_run / "checkpoints" / "last.ckpt").exists()
    version = trained_run  # the logger writes into the run folder itself
    assert (version / "config.yaml").exists() and (version / "hparams.yaml").exists()
    assert (version / "images" / "test_samples.png").stat().st_size > 10_000
    assert (version / "images" / "test_confusion_matrix.png").stat().st_size > 10_000
    logged = list(csv.DictReader((version / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in logged if r.get("train/loss")]
    assert 5 <= len(losses) <= 20, "per-step loss is logged at a cadence, not every step"
    assert losses[-1] < losses[0]


def test_test_subcommand_reproduces_the_best_checkpoint_accuracy(trained_run: Path, data_root: Path) -> None:
    best = next((trained_run / "checkpoints").glob("best-*.ckpt"))
    fit_metrics = json.loads((trained_run / "metrics.json").read_text())
    out = trained_run / "retest"
    args = ["test", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--ckpt_path", str(best), *_dirs(out)]
    assert main(args) == 0
    again = json.loads((_only_run(out, "-test") / "metrics.json").read_text())
    assert again["test/acc"] == pytest.approx(fit_metrics["test/acc"], abs=1e-6)


def test_predict_writes_file_class_probability_csv(trained_run: Path, data_root: Path, tmp_path: Path) -> None:
    """Real test images saved as PNG files; the CSV names each file with a class and probability."""
    from visionsuite.data import FashionMNISTDataModule

    dm = FashionMNISTDataModule(data_dir=str(data_root), test_subset=40)
    dm.setup("test")
    batch = dm.test_set[list(range(40))]
    images, labels = batch["image"], batch["label"]
    folder = tmp_path / "images"
    folder.mkdir()
    truth = {}
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(img[0].numpy()).save(path)
        truth[str(path)] = dm.class_names[int(label)]
    best = next((trained_run / "checkpoints").glob("best-*.ckpt"))
    csv_path = tmp_path / "predictions.csv"
    args = [
        "predict", "--config", TINY, "--data.init_args.data_dir", str(data_root),
        "--data.init_args.predict_dir", str(folder), "--ckpt_path", str(best),
        "--trainer.callbacks+=visionsuite.outputs.PredictionCSVWriter",
        "--trainer.callbacks.output", str(csv_path), *_dirs(tmp_path / "predict"),
    ]
    assert main(args) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["file"] for r in rows] == sorted(truth)
    assert all(0.0 < float(r["probability"]) <= 1.0 for r in rows)
    assert all(r["predicted_class"] in dm.class_names for r in rows)
    correct = sum(r["predicted_class"] == truth[r["file"]] for r in rows)
    assert correct / len(rows) > 0.6


def test_print_config_shows_the_resolved_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", TINY, "--model.init_args.lr", "0.5", "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "backbone: lenet5" in out and "FashionMNISTDataModule" in out


def test_an_int_batch_limit_is_a_count_and_a_float_a_fraction(capsys: pytest.CaptureFixture[str]) -> None:
    """``limit_val_batches: 1`` is one batch: read as 1.0 it silently validated on all of them."""
    limits = ["--trainer.limit_val_batches", "1", "--trainer.limit_train_batches", "0.5", "--trainer.limit_test_batches",
              "1.0", "--trainer.overfit_batches", "3"]  # fmt: skip
    with pytest.raises(SystemExit):
        main(["fit", "--config", TINY, *limits, "--print_config"])
    out = capsys.readouterr().out.splitlines()
    for line in ("limit_val_batches: 1", "limit_train_batches: 0.5", "limit_test_batches: 1.0", "overfit_batches: 3"):
        assert f"  {line}" in out


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--model.init_args.bogus", "3"], "model (ClassificationTask): Option 'bogus' is not accepted"),
        (["--trainer.bogus", "1"], "unrecognized arguments: --trainer.bogus"),
        (["--model.init_args.backbone", "lenet7"], "Unknown backbone 'lenet7'. Did you mean lenet5"),
        (["--model.init_args.num_classes", "7"], "model.num_classes=7 but the data has 10 classes"),
    ],
)
def test_bad_config_gives_one_line_error(
    override: list[str], expected: str, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), *_dirs(tmp_path), *override]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("visionsuite: error: ") and expected in err[-1], err


def test_unknown_backbone_error_lists_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", TINY, "--model.init_args.backbone", "resnet19"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "resnet18" in line and "lenet5" in line and "tv/<name>" in line


def test_missing_data_names_the_mirror_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No data under data_dir, an empty mirror and no network: one line naming VISIONSUITE_MIRROR."""
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path / "empty-mirror"))
    (tmp_path / "empty-mirror").mkdir()
    args = ["fit", "--config", TINY, "--data.init_args.data_dir", str(tmp_path / "nodata"), *_dirs(tmp_path)]
    assert main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("visionsuite: error: ") and "VISIONSUITE_MIRROR" in line


def test_checkpoints_load_with_weights_only(trained_run: Path) -> None:
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 128 and "model.head.fc.weight" in ckpt["state_dict"]


def test_seed_and_deterministic_make_runs_repeat_exactly(data_root: Path, tmp_path: Path) -> None:
    states = []
    for run in ("a", "b"):
        args = [
            "fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), *_dirs(tmp_path / run),
            "--trainer.deterministic", "true", "--trainer.max_epochs", "1", "--data.init_args.train_subset", "1024",
            "--test_after_fit", "false",
        ]
        assert main(args) == 0
        states.append(torch.load(tmp_path / run / "latest" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_wandb_logger_config_composes_with_an_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    wandb_cfg = str(Path(__file__).parents[1] / "configs" / "logger" / "wandb.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(Path(__file__).parents[1] / "configs" / "classification" / "lenet5_cifar10.yaml"),
              "--config", wandb_cfg, "--print_config"])
    assert "WandbLogger" in capsys.readouterr().out


def test_help_lists_every_subcommand_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    from visionsuite import __version__

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fit", "validate", "test", "predict", "summary", "backbones", "--version"))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"visionsuite {__version__}"
    with pytest.raises(SystemExit) as exit_info:
        main(["backbones", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: visionsuite backbones" in out and "lenet5\n" not in out


def test_short_class_names_and_no_lightning_tips(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    args = [
        "fit", "--config", TINY, "--data", "FashionMNISTDataModule", "--data.data_dir", str(data_root),
        "--data.train_subset", "256", "--model", "ClassificationTask", "--model.backbone", "lenet5",
        "--model.num_classes", "10", "--model.in_chans", "1", *_dirs(tmp_path), "--trainer.max_steps", "2",
        "--test_after_fit", "false",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    everything = printed.out + printed.err + caplog.text
    assert "Tip:" not in everything and "will override existing callbacks" not in everything
