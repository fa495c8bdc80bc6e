"""FID/KID in a named classifier feature space, the standard-Inception errors, MSE/PSNR."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionsuite.backbones import create_backbone
from visionsuite.errors import ConfigError
from visionsuite.models.generative import (
    InceptionFeatures,
    build_sample_metrics,
    classifier_features,
    compute_sample_metrics,
    reconstruction_metrics,
)
from visionsuite.models.generative.features import INCEPTION_WEIGHTS_FILE
from visionsuite.models.generative.metrics import update_reconstruction


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory) -> Path:
    """A Lightning-style checkpoint of a LeNet-5 classifier (keys under ``backbone.``)."""
    torch.manual_seed(0)
    net = create_backbone("lenet5", num_classes=10)
    path = tmp_path_factory.mktemp("ckpt") / "classifier.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}, "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def extractor(lenet_checkpoint: Path):
    return classifier_features(
        "lenet5", lenet_checkpoint, "lenet5_fmnist", num_classes=10, mean=(0.2860,), std=(0.3530,), in_chans=1
    )


def test_extractor_loads_the_checkpoint_and_has_its_feature_size(extractor, lenet_checkpoint) -> None:
    saved = torch.load(lenet_checkpoint, weights_only=True)["state_dict"]
    own = extractor.backbone.state_dict()
    assert all(torch.equal(own[k.removeprefix("backbone.")], v) for k, v in saved.items())
    assert extractor.num_features == 84  # LeNet-5's pre-logits layer
    extractor.train()
    assert not extractor.training and not any(p.requires_grad for p in extractor.parameters())


def test_fid_and_kid_floor_noise_ceiling_and_monotone_in_noise(extractor, fmnist_train) -> None:
    real = fmnist_train[0][:256]
    metrics = build_sample_metrics(extractor, kid_subset_size=64, kid_subsets=20)
    assert set(metrics) == {"fid_lenet5_fmnist", "kid_lenet5_fmnist"}
    for m in metrics.values():
        m.update(real, real=True)

    def score(fake: torch.Tensor) -> dict[str, float]:
        for m in metrics.values():
            m.reset()  # keeps the real features
            m.update(fake, real=False)
        return compute_sample_metrics(metrics)

    g = torch.Generator().manual_seed(0)
    itself = score(real)
    noisy = [score((real + s * torch.randn(real.shape, generator=g)).clamp(0, 1)) for s in (0.05, 0.2, 0.5)]
    noise = score(torch.rand(real.shape, generator=g))
    fids = [itself["fid_lenet5_fmnist"]] + [n["fid_lenet5_fmnist"] for n in noisy] + [noise["fid_lenet5_fmnist"]]
    assert abs(fids[0]) < 1e-3 * fids[-1]
    assert fids == sorted(fids) and fids[1] > 10 * abs(fids[0])
    assert abs(itself["kid_lenet5_fmnist"]) < 0.05 * noise["kid_lenet5_fmnist"]
    assert "kid_lenet5_fmnist_std" in noise


def test_standard_inception_without_weights_is_a_one_line_error(tmp_path) -> None:
    for given in (None, tmp_path / "missing.pth"):
        with pytest.raises(ConfigError) as err:
            InceptionFeatures(given)
        assert INCEPTION_WEIGHTS_FILE in str(err.value) and "\n" not in str(err.value)


def test_standard_inception_with_a_wrong_file_is_a_one_line_error(tmp_path) -> None:
    pytest.importorskip("torch_fidelity")
    wrong = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ConfigError) as err:
        InceptionFeatures(wrong)
    assert "\n" not in str(err.value) and str(wrong) in str(err.value)


def test_reconstruction_metrics_by_hand() -> None:
    target = torch.zeros(2, 1, 4, 4)
    recon = torch.full_like(target, 0.1)
    metrics = reconstruction_metrics()
    update_reconstruction(metrics, recon, target)
    values = metrics.compute()
    assert values["mse"].item() == pytest.approx(0.01)
    assert values["psnr"].item() == pytest.approx(20.0, rel=1e-5)
