"""Ensembles: the combination rules by hand, and ``visionsuite ensemble`` on real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from visionsuite.cli.app import main
from visionsuite.tools.ensemble import EnsembleError, combine, member_probabilities

TINY = Path(__file__).parents[1] / "configs" / "lenet5_tiny.yaml"


def test_combination_rules_by_hand() -> None:
    probs = torch.tensor([[[0.6, 0.4, 0.0]], [[0.1, 0.5, 0.4]], [[0.2, 0.3, 0.5]]])  # 3 members, 1 image
    assert torch.allclose(combine(probs, "mean"), torch.tensor([[0.3, 0.4, 0.3]]))
    weighted = combine(probs, "weighted", [2, 1, 1])
    assert torch.allclose(weighted, torch.tensor([[(1.2 + 0.1 + 0.2) / 4, (0.8 + 0.5 + 0.3) / 4, (0.0 + 0.4 + 0.5) / 4]]))
    assert combine(probs, "vote").argmax(1).item() == 1  # one vote each: the tie goes to the best mean (class 1)
    two_to_one = torch.tensor([[[0.9, 0.1]], [[0.4, 0.6]], [[0.45, 0.55]]])
    assert combine(two_to_one, "vote").argmax(1).item() == 1 and combine(two_to_one, "mean").argmax(1).item() == 0
    maps = torch.rand(2, 4, 3, 5, 5).softmax(2)  # segmentation: softmax maps [M, N, C, H, W]
    assert torch.allclose(combine(maps, "mean"), (maps[0] + maps[1]) / 2)


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> list[tuple[Path, Path]]:
    """Two briefly trained members of different architectures (LeNet-5 and an MLP)."""
    out = []
    for backbone in ("lenet5", "mlp"):
        root = tmp_path_factory.mktemp(backbone)
        cfg = yaml.safe_load(TINY.read_text())
        cfg["model"]["init_args"]["backbone"] = backbone
        if backbone == "mlp":
            cfg["model"]["init_args"]["backbone_options"] = {"input_size": 28, "hidden": 64}
        cfg["data"]["init_args"].update(data_dir=str(data_root), train_subset=512, val_subset=128, test_subset=200)
        cfg["trainer"].update(max_epochs=1, default_root_dir=str(root), logger=False)
        cfg["test_after_fit"] = False
        config = root / f"{backbone}.yaml"
        config.write_text(yaml.safe_dump(cfg))
        assert main(["fit", "--config", str(config)]) == 0
        out.append((config, (root / "latest" / "checkpoints" / "last.ckpt").resolve()))
    return out


def test_ensemble_cli_mean_equals_hand_computed_mean(members: list[tuple[Path, Path]], tmp_path: Path) -> None:
    from visionsuite.runs.trained import load_trained

    output = tmp_path / "table.md"
    args = ["ensemble", "--output", str(output)]
    for config, ckpt in members:
        args += ["--config", str(config), "--ckpt_path", str(ckpt)]
    assert main(args) == 0
    scores = json.loads((tmp_path / "table.md.json").read_text())
    assert len(scores) == 3 and "| ensemble (mean) |" in output.read_text()
    assert set(scores["ensemble (mean)"]) == {"acc", "acc_top5"}

    probs, labels = zip(*(member_probabilities(load_trained(c, str(k))) for c, k in members), strict=True)
    assert torch.equal(labels[0], labels[1]) and len(labels[0]) == 200
    hand = (probs[0] + probs[1]) / 2
    assert torch.allclose(combine(torch.stack(probs), "mean"), hand)
    by_hand = float((hand.argmax(1) == labels[0]).float().mean())
    assert scores["ensemble (mean)"]["acc"] == pytest.approx(by_hand)
    member_scores = sorted(v["acc"] for k, v in scores.items() if not k.startswith("ensemble"))
    assert member_scores == sorted(float((p.argmax(1) == labels[0]).float().mean()) for p in probs)


def test_members_with_other_classes_are_refused(members: list[tuple[Path, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config, ckpt), _ = members
    digits = yaml.safe_load(config.read_text())
    digits["data"]["class_path"] = "visionsuite.data.MNISTDataModule"
    other = tmp_path / "digits.yaml"
    other.write_text(yaml.safe_dump(digits))
    copy = tmp_path / "copy.ckpt"  # the same weights under another name: one checkpoint given twice is refused first
    copy.write_bytes(ckpt.read_bytes())
    assert main(["ensemble", "--config", str(config), "--ckpt_path", str(ckpt), "--config", str(other), "--ckpt_path", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{ckpt} has classes ['T-shirt/top'" in err and "'0', '1'" in err
    with pytest.raises(EnsembleError, match="3 finite, non-negative weights"):
        combine(torch.rand(3, 1, 2), "weighted", [1.0, 2.0])
    for bad in ([1.0, float("nan")], [1.0, float("inf")], [0.0, 0.0], [1.0, -1.0]):
        with pytest.raises(EnsembleError, match="finite, non-negative"):
            combine(torch.rand(2, 1, 2), "weighted", bad)


def test_ensemble_predict_writes_the_combined_classes(members: list[tuple[Path, Path]], tmp_path: Path) -> None:
    """``--predict_dir``: the CSV a single model's ``predict`` writes, holding the mean-probability class."""
    import csv

    from PIL import Image

    from visionsuite.runs.trained import load_trained

    folder = tmp_path / "in"
    folder.mkdir()
    batch = load_trained(*map(str, members[0])).test_batch(6)
    for i, image in enumerate(batch["image"]):
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    out = tmp_path / "pred"
    args = ["ensemble", "--predict_dir", str(folder), "--predict_output", str(out)]
    for config, ckpt in members:
        args += ["--config", str(config), "--ckpt_path", str(ckpt)]
    assert main(args) == 0
    rows = {Path(r["file"]).stem: r for r in csv.DictReader((out / "predictions.csv").open())}
    names = load_trained(*map(str, members[0])).class_names
    assert len(rows) == 6
    x = batch["image"].float() / 255
    probs = []
    for config, ckpt in members:
        trained = load_trained(config, str(ckpt))
        mean, std = trained.normalisation
        with torch.no_grad():
            probs.append(torch.softmax(trained.task((x - mean[0]) / std[0]), dim=1))
    expected = ((probs[0] + probs[1]) / 2).max(1)
    for i in range(6):
        assert rows[str(i)]["predicted_class"] == names[int(expected.indices[i])]
        assert float(rows[str(i)]["probability"]) == pytest.approx(float(expected.values[i]), abs=1e-4)
