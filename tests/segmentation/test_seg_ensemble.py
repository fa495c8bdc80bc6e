"""`visionsuite ensemble` on segmentation: the mean of the members' softmax maps, scored with the
paper's metrics, and ensemble `predict` writing palette masks like a single model's `predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tiny_camvid import make_tiny_camvid

from visionsuite.cli.app import main
from visionsuite.models.segmentation.metrics import segmentation_metrics
from visionsuite.runs.trained import load_trained
from visionsuite.tools.ensemble import combine, member_probabilities

TINY = Path(__file__).parents[1] / "configs" / "segmentation_tiny.yaml"
MEMBERS = {  # two architectures: smp U-Net (Lite0 encoder) and the classic U-Net
    "smp_unet": {"model": "smp:Unet", "model_options": {"encoder_weights": "imagenet"}},
    "unet": {"model": "unet", "model_options": {"depth": 2, "base_width": 8}},
}


@pytest.fixture(scope="module")
def members(camvid_files: list, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    data = make_tiny_camvid(tmp_path_factory.mktemp("camvid_ens"), camvid_files)
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, model in MEMBERS.items():
            root = tmp_path_factory.mktemp(name)
            cfg = yaml.safe_load(TINY.read_text())
            cfg["model"]["init_args"].update(model)
            cfg["data"]["init_args"].update(data_dir=str(data), image_size=[48, 64])
            cfg["trainer"].update(max_epochs=4, check_val_every_n_epoch=4, default_root_dir=str(root), logger=False)
            cfg["test_after_fit"] = False
            config = root / f"{name}.yaml"
            config.write_text(yaml.safe_dump(cfg))
            assert main(["fit", "--config", str(config)]) == 0
            out.append((config, (root / "latest" / "checkpoints" / "last.ckpt").resolve()))
    finally:
        torch.set_num_threads(threads)
    return out


def _args(members: list[tuple[Path, Path]]) -> list[str]:
    return [a for config, ckpt in members for a in ("--config", str(config), "--ckpt_path", str(ckpt))]


def test_ensemble_scores_the_mean_softmax_map(members: list[tuple[Path, Path]], tmp_path: Path) -> None:
    output = tmp_path / "ens.md"
    assert main(["ensemble", "--output", str(output), *_args(members)]) == 0
    scores = json.loads((tmp_path / "ens.md.json").read_text())
    assert set(scores["ensemble (mean)"]) == {"global_accuracy", "class_accuracy", "miou"}
    assert "Ensemble − best member (miou)" in output.read_text()
    # by hand: each member's softmax maps, their mean, the paper's metrics on it
    probs, masks = zip(*(member_probabilities(load_trained(c, str(k))) for c, k in members), strict=True)
    assert torch.equal(masks[0], masks[1]) and (masks[0] == 11).any()  # void present, and ignored
    for name, p in (("ensemble (mean)", (probs[0] + probs[1]) / 2), *zip(list(scores)[:2], probs, strict=True)):
        metrics = segmentation_metrics(11, 11)
        metrics.update(p, masks[0])
        expected = {k: float(v) for k, v in metrics.compute().items() if v.numel() == 1}
        assert scores[name] == pytest.approx(expected, abs=1e-6), name
    assert scores["ensemble (mean)"] != scores[list(scores)[0]]  # the members differ, so the mean is its own model


def test_ensemble_predict_writes_the_combined_masks(members: list[tuple[Path, Path]], camvid_files: list, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    source = camvid_files[0][0]
    Image.open(source).save(folder / "frame.png")
    out = tmp_path / "pred"
    args = ["ensemble", *_args(members), "--predict_dir", str(folder), "--predict_output", str(out)]
    assert main(args) == 0
    mask = np.array(Image.open(out / "predictions" / "frame.png"))
    assert mask.shape == (360, 480) and (out / "predictions" / "frame_overlay.png").is_file()
    # the same combination by hand: each member at the fitted size, mean of softmax, back to 360x480
    from visionsuite.data.geometry import fit_sample

    raw = torch.from_numpy(np.array(Image.open(source).convert("RGB"))).permute(2, 0, 1)
    fitted = fit_sample(raw, (48, 64), "letterbox").image[None].float() / 255
    maps = []
    for config, ckpt in members:
        task = load_trained(config, str(ckpt)).task
        with torch.no_grad():
            maps.append(torch.softmax(task((fitted - 0.5) / 0.5), dim=1))
    mean = combine(torch.stack(maps), "mean").log()
    expected = torch.nn.functional.interpolate(mean, size=(360, 480), mode="bilinear", align_corners=False)[0].argmax(0)
    assert (mask == expected.numpy()).mean() > 0.999
