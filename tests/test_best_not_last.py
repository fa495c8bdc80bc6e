"""A fit whose best validation epoch is not its last: the post-fit test scores the best checkpoint.

Catches ``after_fit`` testing the final weights (``trainer.test(..., ckpt_path=None)``) while its
closing line still says ``best-validation checkpoint``: in an ordinary run the last epoch is also
the best, so nothing else tells the two apart. Here the final epoch is wrecked on purpose.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.cli.app import main

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")
#: 16 steps an epoch, 2 epochs (the config's): epoch 0 learns, epoch 1 is wrecked before its validation.
SUBSETS = ["--data.init_args.train_subset", "1024", "--data.init_args.val_subset", "256",
           "--data.init_args.test_subset", "256"]  # fmt: skip


class WreckLastValidation(Callback):
    """At the start of the final fit epoch's validation, rotate the classifier's output rows by one
    class (finite, confidently wrong): that epoch's validation, ``last.ckpt`` and the final weights
    all score near zero, while the best checkpoint stays at epoch 0. Keeps the final weights."""

    final_state: ClassVar[dict[str, torch.Tensor]] = {}

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.current_epoch != trainer.max_epochs - 1:
            return
        fc = pl_module.model.head.fc  # LeNet-5's classifier
        with torch.no_grad():
            fc.weight.copy_(fc.weight.roll(1, dims=0))
            fc.bias.copy_(fc.bias.roll(1, dims=0))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        WreckLastValidation.final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def _test_acc(root: Path, data_root: Path, ckpt: Path) -> float:
    """``visionsuite test --ckpt_path <ckpt>`` in its own new folder under ``root``: its test/acc."""
    before = set(root.iterdir())
    assert main(["test", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
                 str(root), *SUBSETS, "--ckpt_path", str(ckpt)]) == 0  # fmt: skip
    (folder,) = set(root.iterdir()) - before
    return json.loads((folder / "metrics.json").read_text())["test/acc"]


@pytest.fixture(scope="module")
def wrecked_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> dict[str, Any]:
    """One tiny fit (with its post-fit test) whose last epoch is its worst, and what it printed."""
    root = tmp_path_factory.mktemp("best_not_last")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
                     str(root), *SUBSETS, "--run_name", "wrecked",
                     "--trainer.callbacks+=test_best_not_last.WreckLastValidation"]) == 0  # fmt: skip
    run = root / "wrecked"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    return {"root": root, "run": run, "best": best, "stdout": out.getvalue(),
            "metrics": json.loads((run / "metrics.json").read_text())}  # fmt: skip


@pytest.fixture(scope="module")
def scores(wrecked_run: dict[str, Any], data_root: Path) -> dict[str, float]:
    """test/acc of ``test --ckpt_path`` on the best checkpoint and on ``last.ckpt`` (the final weights)."""
    checkpoints = wrecked_run["run"] / "checkpoints"
    return {"best": _test_acc(wrecked_run["root"], data_root, wrecked_run["best"]),
            "final": _test_acc(wrecked_run["root"], data_root, checkpoints / "last.ckpt")}  # fmt: skip


def _best_score(ckpt: dict[str, Any]) -> float:
    (key,) = [k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint")]
    return float(ckpt["callbacks"][key]["best_model_score"])


def test_the_best_checkpoint_is_an_earlier_epoch_than_the_last(wrecked_run: dict[str, Any]) -> None:
    best = torch.load(wrecked_run["best"], map_location="cpu", weights_only=True)
    last = torch.load(wrecked_run["run"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 0 and last["epoch"] == 1 and wrecked_run["best"].name.startswith("best-epoch=000-")
    assert wrecked_run["metrics"]["val/acc"] < _best_score(last) - 0.2  # the last validation is far below the best
    final = WreckLastValidation.final_state
    assert final and all(torch.equal(last["state_dict"][k], v) for k, v in final.items())  # last.ckpt = final weights
    assert not torch.equal(best["state_dict"]["model.head.fc.bias"], final["model.head.fc.bias"])


def test_post_fit_test_scores_the_best_checkpoint_not_the_final_weights(
    wrecked_run: dict[str, Any], scores: dict[str, float]
) -> None:
    """The fit's test/acc is that of ``test --ckpt_path <best file>``, far from that of the final weights."""
    assert wrecked_run["metrics"]["test/acc"] == pytest.approx(scores["best"], abs=1e-6)
    assert scores["best"] > 0.4 and scores["final"] < scores["best"] - 0.2  # chance is 0.10; the rotated classifier is below it


def test_closing_line_reports_the_best_checkpoints_score(wrecked_run: dict[str, Any], scores: dict[str, float]) -> None:
    lines = re.findall(r"^Test acc \(best-validation checkpoint\): ([0-9.]+)%$", wrecked_run["stdout"], flags=re.MULTILINE)
    assert len(lines) == 1, wrecked_run["stdout"][-2000:]
    assert float(lines[0]) / 100 == pytest.approx(scores["best"], abs=5e-5)


def test_ensemble_and_export_of_the_run_use_its_best_checkpoint(
    wrecked_run: dict[str, Any], scores: dict[str, float], data_root: Path, tmp_path: Path
) -> None:
    """``ensemble --run`` scores the run's best checkpoint (beside its last, given by path), and
    ``export --run`` writes the best weights: the exported model's logits are the best's, not the
    final weights'."""
    from visionsuite.runs.trained import load_trained
    from visionsuite.tools.export import run_exported

    run, last = wrecked_run["run"], wrecked_run["run"] / "checkpoints" / "last.ckpt"
    table = tmp_path / "ensemble.md"
    assert main(["ensemble", "--run", str(run), "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                 "--data_dir", str(data_root), "--output", str(table)]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "ensemble.md.json").read_text())
    members = {name.rsplit(" ", 1)[1]: row["acc"] for name, row in rows.items() if not name.startswith("ensemble")}
    assert members == {wrecked_run["best"].name: pytest.approx(scores["best"], abs=1e-6),
                       "last.ckpt": pytest.approx(scores["final"], abs=1e-6)}  # fmt: skip

    onnx = tmp_path / "m.onnx"
    assert main(["export", "--run", str(run), "--output", str(onnx), "--data_dir", str(data_root), "--check_images", "8"]) == 0
    best = load_trained(None, None, run=run, data_overrides={"data_dir": str(data_root)})
    final = load_trained(None, "last", run=run, data_overrides={"data_dir": str(data_root)})
    assert best.ckpt == wrecked_run["best"]
    x = torch.rand(4, 1, 28, 28)
    got = torch.from_numpy(run_exported(onnx, x.numpy()))

    def logits(trained: Any) -> torch.Tensor:
        dm = trained.datamodule
        with torch.no_grad():
            return trained.task((x - torch.tensor(dm.mean).view(1, -1, 1, 1)) / torch.tensor(dm.std).view(1, -1, 1, 1))

    torch.testing.assert_close(got, logits(best), atol=1e-4, rtol=1e-4)
    assert (got - logits(final)).abs().max() > 0.1  # the final weights give other logits
