"""Export through the CLI: ONNX/TorchScript files that match PyTorch on real test images, and a
Lightning-free predict writing the same CSV as ``visionsuite predict``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visionsuite.cli.app import main
from visionsuite.tools.export import Deployable, ExportError, export_model, run_exported

TINY = str(Path(__file__).parents[1] / "configs" / "lenet5_tiny.yaml")
SMALL = ["--trainer.max_epochs", "1", "--data.init_args.train_subset", "512", "--data.init_args.val_subset", "128",
         "--data.init_args.test_subset", "128", "--test_after_fit", "false"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("fit")
    args = ["fit", "--config", TINY, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(root), *SMALL]
    assert main(args) == 0
    return (root / "latest").resolve()


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open()))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_and_predicts_the_same_csv(
    fmt: str, run: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visionsuite.runs.trained import load_trained

    ckpt = str(run / "checkpoints" / "last.ckpt")
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt")
    args = ["export", "--config", TINY, "--ckpt_path", ckpt, "--format", fmt, "--output", str(out), "--data_dir", str(data_root)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"Checked {out.name} on 64 test images: max |diff|" in printed and "same class for 100.0%" in printed

    # the exported file against the task itself, at another batch size than traced (dynamic batch)
    trained = load_trained(TINY, ckpt, data_overrides={"data_dir": str(data_root)})
    x = trained.test_batch(37)["image"].float() / 255
    dm = trained.datamodule
    with torch.no_grad():
        expected = trained.task((x - torch.tensor(dm.mean).view(1, -1, 1, 1)) / torch.tensor(dm.std).view(1, -1, 1, 1))
    got = run_exported(out, x.numpy())
    assert got.shape == (37, 10) and np.allclose(got, expected.numpy(), atol=1e-4)

    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(x[:20]):
        Image.fromarray((img[0] * 255).round().byte().numpy()).save(folder / f"img_{i:02d}.png")
    exported_csv = tmp_path / "exported.csv"
    assert main(["predict-exported", str(out), str(folder), "--output", str(exported_csv)]) == 0
    lightning_csv = tmp_path / "predict.csv"
    predict = ["predict", "--config", TINY, "--ckpt_path", ckpt, "--data.init_args.data_dir", str(data_root),
               "--data.init_args.predict_dir", str(folder), "--trainer.default_root_dir", str(tmp_path / "p"),
               "--trainer.callbacks+=visionsuite.outputs.PredictionCSVWriter",
               "--trainer.callbacks.output", str(lightning_csv)]  # fmt: skip
    assert main(predict) == 0
    ours, theirs = _rows(exported_csv), _rows(lightning_csv)
    assert ours[0] == theirs[0] and len(ours) == 21
    for a, b in zip(ours[1:], theirs[1:], strict=True):
        assert a[:2] == b[:2] and float(a[2]) == pytest.approx(float(b[2]), abs=1e-4)
    if fmt == "onnx":
        _predict_without_lightning(out, folder, tmp_path / "no_lightning.csv", exported_csv)
        _bad_runs_leave_the_csv_as_it_was(out, folder, exported_csv, capsys)


def _bad_runs_leave_the_csv_as_it_was(model: Path, folder: Path, csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Too few class names, a broken sidecar, an unreadable model: one line each, and the CSV of
    the last good run is still there, byte for byte."""
    import json
    import shutil

    before = csv_path.read_bytes()
    capsys.readouterr()
    assert main(["predict-exported", str(model), str(folder), "--output", str(csv_path), "--classes", "a", "b"]) == 2
    assert "--classes: 2 name(s) given, the export predicts 10 classes" in capsys.readouterr().err
    broken = model.with_name("broken.onnx")
    shutil.copy(model, broken)
    sidecar = json.loads(model.with_name(model.name + ".json").read_text())
    broken.with_name(broken.name + ".json").write_text(json.dumps({**sidecar, "classes": []}))
    assert main(["predict-exported", str(broken), str(folder), "--output", str(csv_path)]) == 2
    assert "classes must be a non-empty list" in capsys.readouterr().err
    broken.write_bytes(b"not an onnx file")
    broken.with_name(broken.name + ".json").write_text(json.dumps(sidecar))
    assert main(["predict-exported", str(broken), str(folder), "--output", str(csv_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.onnx" in err[0], err
    unreadable = folder.parent / "unreadable"  # a folder of images none of which decodes
    unreadable.mkdir()
    (unreadable / "notes.png").write_text("not an image")
    (unreadable / "cut.jpg").write_bytes((folder / "img_00.png").read_bytes()[:40])
    assert main(["predict-exported", str(model), str(unreadable), "--output", str(csv_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"visionsuite: error: {unreadable}: none of its 2 image file(s) is readable (nothing was written)"]
    shutil.copy(model, broken)  # a classification graph whose sidecar says segmentation
    broken.with_name(broken.name + ".json").write_text(json.dumps({**sidecar, "task": "segmentation", "palette": [[0, 0, 0]] * 10}))
    masks = folder.parent / "masks"
    assert main(["predict-exported", str(broken), str(folder), "--output", str(masks)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the [1, 10, H, W] class maps" in err[0], err
    assert not masks.exists() or not any(masks.iterdir())
    assert csv_path.read_bytes() == before


#: run in a fresh interpreter where importing Lightning or torchmetrics raises ImportError.
_BLOCKED = """
import sys
for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "torchmetrics"):
    sys.modules[name] = None
from visionsuite.cli.app import main
sys.exit(main(sys.argv[1:]))
"""


def _predict_without_lightning(model: Path, folder: Path, output: Path, expected: Path) -> None:
    """``predict-exported`` with Lightning and torchmetrics unimportable writes the same CSV."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _BLOCKED, "predict-exported", str(model), str(folder), "--output", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert output.read_text() == expected.read_text()


class _HostNumpy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.tanh(x.numpy()))


def test_untraceable_module_is_named(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), _HostNumpy())
    with pytest.raises(ExportError, match=r"module 1 \(_HostNumpy\) failed") as info:
        export_model(model, torch.rand(2, 1, 8, 8), "onnx", tmp_path / "x.onnx")
    assert "\n" not in str(info.value)


def test_deployable_bakes_in_the_normalisation() -> None:
    net = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(net.weight)
    model = Deployable(net, ((0.25,), (0.5,)))
    assert torch.allclose(model(torch.full((1, 1, 2, 2), 0.75)), torch.ones(1, 1, 2, 2))
