"""What users look at and read (issue #30): figures tested on what they draw (titles, legend
labels, size in pixels), tools that write beside their run and never into the current
directory, messages that suggest the nearest key, closing lines of every evaluation."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from wandb_records import recording_wandb

from visionsuite.cli.app import main
from visionsuite.errors import ConfigError
from visionsuite.outputs.figures import (
    DPI,
    MIN_CELL,
    explanation_figure,
    labelled_grid,
    predicted_captions,
    sample_grid,
)
from visionsuite.outputs.generative_pictures import reconstruction_figure
from visionsuite.outputs.images import MaskOverlay, write_png
from visionsuite.outputs.output_names import prediction_path

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")
FIT = ["--data.init_args.train_subset", "512", "--data.init_args.val_subset", "128", "--data.init_args.test_subset",
       "128", "--trainer.max_epochs", "1"]  # fmt: skip


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []


def test_mask_overlay_is_titled_and_names_only_the_classes_drawn(tmp_path: Path) -> None:
    names = ["sky", "building", "pole", "road", "car"]
    palette = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [64, 0, 128]]
    preds = torch.zeros(2, 20, 30, dtype=torch.long)
    preds[:, :5] = 3
    targets = torch.full((2, 20, 30), 11)  # void everywhere but one patch of 'building'
    targets[0, :4, :4] = 1
    overlay = MaskOverlay(torch.rand(2, 3, 20, 30), preds, targets, names, palette, ignore_index=11)
    fig = overlay.figure()
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "ground truth", "prediction"]
    assert _texts(fig) == ["sky", "building", "road"]  # pole and car absent; void not a class
    width, _ = Image.open(write_png(fig, tmp_path / "o.png")).size
    assert width > 3 * MIN_CELL * DPI * 0.9  # a 30-pixel image is enlarged, not shown at 30 pixels
    no_truth = MaskOverlay(torch.rand(1, 3, 20, 30), preds[:1], None, names, palette).figure(titles=("a.jpg", "prediction"))
    assert [ax.get_title() for ax in no_truth.axes] == ["a.jpg", "prediction"]


def test_wandb_gets_the_titled_figure_and_the_interactive_masks_beside_it(tmp_path: Path) -> None:
    """W&B shows what the PNG shows (titles, legend), plus the images with masks it toggles per class."""
    from visionsuite.outputs.images import deliver

    preds = torch.zeros(1, 20, 30, dtype=torch.long)
    overlay = MaskOverlay(torch.rand(1, 3, 20, 30), preds, preds.clone(), ["sky", "road"], [[128, 128, 128], [128, 64, 128]])
    wandb = recording_wandb()
    deliver(type("T", (), {"loggers": [wandb], "global_step": 3})(), {"val/overlays": overlay}, "val", tmp_path)
    assert wandb.images["val/overlays"] == [str(tmp_path / "val_overlays_step0000003.png")]
    images, extra = wandb.images["val/overlays_interactive"], wandb.extra["val/overlays_interactive"]
    assert len(images) == 1 and set(extra["masks"][0]) == {"predictions", "ground_truth"}


def test_wandb_gets_the_run_curves_once_at_the_end_of_fit(tmp_path: Path) -> None:
    from visionsuite.outputs.curves import TrainingCurves

    wandb, curves = recording_wandb(), TrainingCurves()
    curves.rows = [{"epoch": 0, "step": 10, "train/loss": 0.9, "val/loss": 0.7}, {"epoch": 1, "step": 20, "val/loss": 0.5}]
    trainer = type("T", (), {"loggers": [wandb], "fast_dev_run": False, "log_dir": str(tmp_path), "is_global_zero": True})()
    curves.on_fit_end(trainer, type("M", (), {"monitor": "val/loss"})())
    assert wandb.images == {"curves": [str(tmp_path / "images" / "curves.png")]}
    from visionsuite.outputs.curves import curves_figure

    (loss_panel,) = [ax for ax in curves_figure(curves.drawn).axes if ax.get_lines()][:1]
    styles = {line.get_linestyle() for line in loss_panel.get_lines()}
    assert len(styles) >= 2  # train and validation loss differ by their dashes, not by colour alone


def test_explanations_and_reconstructions_are_labelled() -> None:
    probs = torch.tensor([[0.1, 0.9], [0.7, 0.3]])
    captions = predicted_captions(probs, ["shirt", "coat"])
    assert captions == ["coat\n0.90", "shirt\n0.70"]
    maps = {"saliency": torch.rand(2, 28, 28), "Grad-CAM stage2": torch.rand(2, 28, 28)}
    fig = explanation_figure(torch.rand(2, 1, 28, 28), maps, captions)
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:3]] == ["image", "saliency (bright = high)", "Grad-CAM stage2 (bright = high)"]
    assert [axes[0].get_ylabel(), axes[3].get_ylabel()] == captions
    assert fig.get_figwidth() * DPI >= 3 * MIN_CELL * DPI
    rec = reconstruction_figure(torch.rand(10, 1, 28, 28), torch.rand(10, 1, 28, 28), "reconstructions (val, step 7)",
                                input_label="corrupted input")  # fmt: skip
    rows = [ax.get_ylabel() for ax in rec.axes if ax.get_ylabel()]
    assert rows == ["corrupted input", "reconstruction", "corrupted input", "reconstruction"]
    assert rec._suptitle.get_text() == "reconstructions (val, step 7)"
    grid = labelled_grid([[torch.rand(3, 600, 1200)]])
    assert grid.get_figwidth() <= 6.1  # a large image is shown whole (MAX_CELL), not at 12 inches


def test_classification_samples_show_the_score_and_mark_the_wrong_ones_without_colour(tmp_path: Path) -> None:
    """Each test sample is titled with its prediction and probability; a wrong one carries a mark
    (not only red) and the truth, so the grid reads in greyscale; large images are not shrunk."""
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.35, 0.65]])
    fig = sample_grid(torch.rand(3, 1, 28, 28), torch.tensor([1, 1, 1]), probs, ["shirt", "coat"])
    assert [ax.get_title() for ax in fig.axes] == ["\u2713 coat 0.90", "\u2717 shirt 0.80\ntrue: coat", "\u2713 coat 0.65"]
    assert "2/3 right" in fig._suptitle.get_text()
    width, _ = Image.open(write_png(fig, tmp_path / "small.png")).size
    assert width >= 3 * MIN_CELL * DPI  # 28-pixel images are enlarged to a readable cell
    big = sample_grid(torch.rand(2, 3, 300, 300), torch.tensor([0, 1]), probs[:2], ["shirt", "coat"])
    assert big.get_figwidth() >= 2 * 300 / DPI  # 300-pixel images keep their pixels


def test_prediction_names_follow_the_input_file_and_never_collide(tmp_path: Path) -> None:
    root = tmp_path / "in"
    taken: set[Path] = set()
    out = tmp_path / "out"
    first = prediction_path(out, root / "street" / "a.jpg", root, taken)
    second = prediction_path(out, root / "street" / "a.png", root, taken)
    assert first == out / "street" / "a.png" and second == out / "street" / "a_png.png"
    assert prediction_path(out, "test/12", None, taken) == out / "test" / "12.png"
    relative = Path("in") / "street" / "b.jpg"  # a predict_dir given relative to the current directory
    assert prediction_path(out, relative, Path("in"), taken) == out / "street" / "b.png"

    photos = tmp_path / "photos"  # files on disk: two inputs with one stem both keep their suffix
    photos.mkdir()
    for name in ("scene.jpg", "scene.png", "street.jpg", "street_overlay.jpg"):
        (photos / name).write_bytes(b"")
    taken = set()
    names = [prediction_path(out, photos / n, photos, taken, companions=("_overlay",)).name
             for n in ("scene.png", "scene.jpg", "street_overlay.jpg", "street.jpg")]  # fmt: skip
    assert names == ["scene_png.png", "scene_jpg.png", "street_overlay.png", "street_jpg.png"]
    assert out / "street_overlay_overlay.png" in taken and out / "street_jpg_overlay.png" in taken  # no overlay over a mask


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("runs")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
                     str(root), *FIT, "--run_name", "tiny"]) == 0  # fmt: skip
    return root / "tiny"


def test_test_and_validate_end_with_a_headline_and_record_the_checkpoint_step(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    step = torch.load(best, map_location="cpu", weights_only=True)["global_step"]
    assert step > 0
    assert main(["test", "--run", str(run), "--trainer.limit_test_batches", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(f"Test acc ({best.name}, step {step}): ") and lines[-1].endswith("%")
    (folder,) = run.parent.glob("*-test")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_global_step"] == step and Path(metrics["test_checkpoint"]).name == best.name
    assert main(["validate", "--run", str(run), "--ckpt", "last", "--trainer.limit_val_batches", "1"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"Validation acc (last.ckpt, step {step}): ")
    (folder,) = run.parent.glob("*-validate")
    metrics = json.loads((folder / "metrics.json").read_text())  # validate keeps a record too
    assert metrics["validate_global_step"] == step and Path(metrics["validate_checkpoint"]).name == "last.ckpt"
    assert 0 <= metrics["val/acc"] <= 1
    images = folder.parent / "to_predict"
    images.mkdir()
    for i in range(3):
        Image.fromarray(torch.randint(0, 255, (28, 28), dtype=torch.uint8).numpy()).save(images / f"p{i}.png")
    assert main(["predict", "--run", str(run), "--data.init_args.predict_dir", str(images)]) == 0
    (predicted,) = run.parent.glob("*-predict")
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"Predicted 3 image(s) ({best.name}, step {step}); outputs in {predicted}"
    )


def test_tools_write_beside_the_run_never_into_the_current_directory(
    run: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(torch.randint(0, 255, (28, 28), dtype=torch.uint8).numpy()).save(images / f"i{i}.png")
    assert main(["export", "--run", str(run), "--check_images", "4"]) == 0
    (model,) = run.parent.glob("*-export/model.onnx")
    assert str(model) in capsys.readouterr().out
    assert main(["predict-exported", str(model), str(images)]) == 0
    assert len(list(model.parent.glob("*-predictions/predictions.csv"))) == 1
    assert main(["explain", "--run", str(run), "--images", "2"]) == 0
    (explained,) = run.parent.glob("*-explain")
    assert (explained / "explanations.png").is_file()
    assert main(["ensemble", "--run", str(run), "--config", str(run / "config.yaml"), "--ckpt_path",
                 str(run / "checkpoints" / "last.ckpt")]) == 0  # fmt: skip
    (table,) = run.parent.glob("*-ensemble/ensemble.md")
    assert str(table) in capsys.readouterr().out
    assert os.listdir(scratch) == []  # nothing in the current directory


def test_tool_usage_errors_are_one_line_with_the_nearest_option(capsys: pytest.CaptureFixture[str]) -> None:
    """The tools' own command lines: a misspelt option gets the nearest, a bad value one line, the
    dashed spelling of an underscored option is read as it, and ``--weights`` the method would
    ignore are refused (all before any checkpoint is read)."""
    from visionsuite.core.tool_parser import ToolParser

    cases = [
        (["export", "--run", "x", "--check_imagez", "8"], "visionsuite: error: export: unrecognized arguments: --check_imagez 8;"
         " did you mean --check_images? (see --help)"),
        (["summary", "lenet5", "--batch_size", "abc"], "visionsuite: error: summary: argument --batch_size"),
        (["predict-exported"], "visionsuite: error: predict-exported: the following arguments are required: model, images"),
        (["ensemble", "--run", "a", "--run", "b", "--weights", "1", "2"],
         "visionsuite: error: --weights are used by --method weighted only; --method mean would ignore them"),
    ]  # fmt: skip
    for args, expected in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(expected), err
    parser = ToolParser(prog="visionsuite t")
    parser.add_argument("--check_images", type=int)
    parser.add_argument("--output")
    assert parser.parse_args(["--check-images", "8"]).check_images == 8
    assert parser.parse_args(["--check-images=9"]).check_images == 9
    with pytest.raises(ConfigError, match="unrecognized arguments: --out x"):  # no abbreviation taken for --output
        parser.parse_args(["--out", "x"])


def test_an_abbreviated_key_is_a_misspelling_not_a_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    """``--trainer.max_epoch 3`` was taken for ``max_epochs`` by argparse's prefix matching."""
    assert main(["fit", "--config", TINY, "--trainer.max_epoch", "3", "--print_config"]) == 2
    assert "did you mean 'max_epochs'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda cfg: ["--config", TINY, "--model.init_args.lrr", "0.1"], "'lrr' on the command line; did you mean 'lr'?"),
        (lambda cfg: ["--config", cfg], "'lerning_rate' in {cfg} line 23; did you mean 'lr'?"),
        (lambda cfg: ["--config", TINY, "--trainer.max_epochz", "3"], "did you mean 'max_epochs'"),
        (lambda cfg: ["--config", TINY, "--data.init_args.batchsize", "3"], "did you mean 'batch_size'"),
    ],
)
def test_a_misspelt_key_gets_the_nearest_and_where_it_was_written(
    make: Any, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(TINY).read_text().replace("    lr: 0.003", "    lerning_rate: 0.003"))
    assert main(["fit", *make(str(bad))]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected.format(cfg=bad) in err, err


def test_help_leads_with_examples_tasks_and_the_configs_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "e.g. visionsuite test --run latest" in top and "README.md#quickstart" in top
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "ClassificationTask" in out and "CamVidDataModule" in out
    assert "TensorClassificationDataModule" not in out  # a base class is not a data module to choose
    assert "--trainer.max_epochs MAX_EPOCHS" not in out  # the Trainer's options wait behind --help all
    assert main(["fit", "--config", TINY, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model.lr LR" in out and "--data.batch_size BATCH_SIZE" in out and "--trainer.max_epochs MAX" not in out
    with pytest.raises(SystemExit):
        main(["fit", "--help", "all"])
    assert "--trainer.max_epochs MAX_EPOCHS" in capsys.readouterr().out


def test_wandb_logger_is_not_handed_the_unset_anonymous_argument(tmp_path: Path) -> None:
    """W&B prints 'The anonymous setting has no effect' whenever wandb.init gets ``anonymous``."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import WandbLogger

    from visionsuite.cli.app import _drop_unset_wandb_anonymous

    trainer = Trainer(logger=WandbLogger(save_dir=str(tmp_path), offline=True), default_root_dir=str(tmp_path),
                      enable_checkpointing=False, enable_progress_bar=False)  # fmt: skip
    assert "anonymous" in trainer.logger._wandb_init  # Lightning's default, what W&B warns about
    _drop_unset_wandb_anonymous(trainer)
    assert "anonymous" not in trainer.logger._wandb_init


def test_a_tool_that_fails_leaves_no_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The <stamp>-<tool> folder is made before the work; a failure takes it back (it is empty)."""
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"\x00not a graph" * 50)
    (tmp_path / "broken.onnx.json").write_text(json.dumps({"task": "classification", "classes": ["a"], "channels": 1,
                                                           "image_size": [28, 28]}))  # fmt: skip
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (28, 28)).save(images / "a.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["predict-exported", str(model), str(images)]) == 2
    assert "broken.onnx: not a loadable ONNX model" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_output_that_cannot_be_written_is_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tool whose --output cannot be written: one line naming the file the user gave (not the
    temporary name it writes first), exit 2, nothing left beside the run."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    before = sorted(p.name for p in run.parent.iterdir())
    assert main(["explain", "--run", str(run), "--images", "1", "--output", str(blocker / "explain")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"visionsuite: error: {blocker / 'explain'}"), err
    assert sorted(p.name for p in run.parent.iterdir()) == before


def test_a_failed_atomic_write_names_the_target_not_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk when the finished file is put in place: the error names ``table.md``, which
    the user knows, not ``.table.<pid>.tmp.md``; the old file stays and no temporary is left."""
    import errno

    from visionsuite.core import atomic

    target = tmp_path / "table.md"
    target.write_text("old")

    def full(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(OSError) as err:
        atomic.write_text_atomic(target, "new")
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_fit_without_a_test_headline_still_ends_with_a_closing_line(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
                 str(tmp_path), *FIT, "--trainer.max_steps", "2", "--test_after_fit", "false", "--run_name", "r"]) == 0  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"Fit finished after 2 steps; run folder {tmp_path / 'r'}"


def test_data_notes_are_the_suites_one_line_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    """A skipped-and-counted note of the data layer is printed as ``visionsuite: warning: …``, not
    as a warning located in Lightning's file that called the data module; other warnings unchanged."""
    import warnings

    from visionsuite.cli.app import _data_warnings_on_one_line
    from visionsuite.errors import DataWarning

    with pytest.warns(UserWarning, match="something else") as others:  # the ordinary path, recorded here
        _data_warnings_on_one_line()
        warnings.warn("skipped 2 unreadable file(s) under photos: a.jpg, b.png", DataWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == ["visionsuite: warning: skipped 2 unreadable file(s) under photos: a.jpg, b.png"]
    assert [str(w.message) for w in others] == ["something else"]
