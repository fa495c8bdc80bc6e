"""Every shipped segmentation config runs ``fast_dev_run`` fit and test on real CamVid frames (a tiny
tree of mirror frames, at a small size: the configs' models, losses and data options, not their size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_camvid import make_tiny_camvid

from visionsuite.cli.app import main

CONFIGS = sorted(str(p) for p in (Path(__file__).parents[2] / "configs" / "segmentation").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_root(camvid_files: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_camvid(tmp_path_factory.mktemp("camvid_cfg"), camvid_files)


def test_every_config_is_here() -> None:
    names = {Path(c).stem for c in CONFIGS}
    for base in ("camvid_segnet", "camvid_unet", "camvid_smp_unet_lite0"):
        assert {base, f"{base}_cpu"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).stem)
def test_config_fast_dev_run_fit_and_test(config: str, tiny_root: Path, tmp_path: Path) -> None:
    args = [
        "fit", "--config", config, "--data.init_args.data_dir", str(tiny_root), "--trainer.default_root_dir",
        str(tmp_path), "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
        "--data.init_args.image_size", "[48, 64]", "--data.init_args.batch_size", "2",
    ]  # fmt: skip
    if "train_window:" in Path(config).read_text():  # a window inside the small test size
        args += ["--data.init_args.train_window", "[32, 48]"]
    assert main(args) == 0
    run = (tmp_path / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/miou" in metrics and "val/miou" in metrics  # fit validated, then tested
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
