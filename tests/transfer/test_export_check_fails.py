"""``check_export`` refuses an exported file whose outputs differ from the PyTorch model's.

Catches a check that cannot fail, e.g. one that compares the exported outputs with themselves
(``np.allclose(got, got)``): ``visionsuite export`` would then certify any file it wrote. The good
case beside it shows the refusals come from the outputs, not from the check failing everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionsuite.backbones import create_backbone
from visionsuite.core.atomic import atomic_path
from visionsuite.tools.export import Deployable, ExportError, check_export, export_model

MEAN_STD = ((0.2860,), (0.3530,))
REFUSED = "exported outputs differ from PyTorch"


def _model(seed: int = 0, num_classes: int = 10) -> Deployable:
    """A LeNet-5 classifier behind the export's normalisation, as ``visionsuite export`` builds it."""
    torch.manual_seed(seed)
    return Deployable(create_backbone("lenet5", num_classes=num_classes, in_chans=1), MEAN_STD).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_faithful_export_passes_and_a_tampered_model_is_refused(fmt: str, images: torch.Tensor, tmp_path: Path) -> None:
    model = _model()
    path = export_model(model, images[:2], fmt, tmp_path / f"model.{fmt}")
    diff = check_export(model, path, images)
    assert 0.0 <= diff < 1e-4

    # after the export, shift one class logit by 0.01 in PyTorch: the file no longer matches
    with torch.no_grad():
        model.task.head.fc.bias[3] += 0.01
    with pytest.raises(ExportError, match=REFUSED) as info:
        check_export(model, path, images, label="model")
    assert "max |diff| 0.01" in str(info.value) and "\n" not in str(info.value)


def test_the_export_of_another_model_is_refused(images: torch.Tensor, tmp_path: Path) -> None:
    path = export_model(_model(seed=0), images[:2], "onnx", tmp_path / "a.onnx")
    with pytest.raises(ExportError, match=REFUSED):
        check_export(_model(seed=1), path, images)


def test_an_export_with_other_outputs_is_refused(images: torch.Tensor, tmp_path: Path) -> None:
    """10 logits in the file, 3 from the PyTorch model: refused with the one-line error, shape named."""
    path = export_model(_model(num_classes=10), images[:2], "onnx", tmp_path / "ten.onnx")
    with pytest.raises(ExportError, match=REFUSED) as info:
        check_export(_model(num_classes=3), path, images)
    assert "shape (8, 10)" in str(info.value)


def test_a_refused_export_leaves_no_file(images: torch.Tensor, tmp_path: Path) -> None:
    """As ``visionsuite export`` does it: the file is written and checked under a temporary name,
    so a refused check leaves nothing at the output path."""
    model, output = _model(), tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=REFUSED), atomic_path(output) as tmp:
        export_model(model, images[:2], "onnx", tmp)
        with torch.no_grad():
            model.task.head.fc.bias[0] -= 0.5
        check_export(model, tmp, images)
    assert not output.exists() and list(tmp_path.iterdir()) == []
