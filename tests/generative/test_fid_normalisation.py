"""The classifier feature extractor of FID/KID feeds its network the data module's normalisation.

Catches an extractor that skips ``(x - mean) / std`` (or uses other statistics): it would still
give finite FIDs that fall with sample quality, but in the feature space of inputs the classifier
never saw, so its FIDs would not be comparable with those of any correctly fed extractor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionsuite.backbones import create_backbone
from visionsuite.models.generative import (
    build_sample_metrics,
    classifier_features,
    compute_sample_metrics,
    denormalize,
)


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning-style checkpoint of a (seeded, untrained) LeNet-5 classifier."""
    torch.manual_seed(0)
    net = create_backbone("lenet5", num_classes=10)
    path = tmp_path_factory.mktemp("ckpt") / "classifier.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def _by_hand(net: torch.nn.Module, normalised: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.forward_head(net.forward_features(normalised), pre_logits=True).flatten(1)


def test_features_are_the_networks_on_the_data_modules_normalised_images(fmnist_dm, lenet_checkpoint: Path) -> None:
    """[0, 1] pixels in → the network's pre-logits features of the very batch the data module
    normalised (``transform_batch``, what the classifier was trained on), with the statistics
    GANTask hands it (``dm.mean``/``dm.std``)."""
    extractor = classifier_features("lenet5", lenet_checkpoint, "lenet5_fmnist", num_classes=10,
                                    mean=fmnist_dm.mean, std=fmnist_dm.std, in_chans=1)  # fmt: skip
    batch = fmnist_dm.train_set[list(range(64))]
    normalised = fmnist_dm.transform_batch(batch, train=False)["image"]
    pixels = denormalize(normalised, fmnist_dm.mean, fmnist_dm.std)
    assert pixels.min() >= 0 and pixels.max() <= 1 and normalised.min() < -0.5  # two different inputs
    expected = _by_hand(extractor.backbone, normalised)
    torch.testing.assert_close(extractor(pixels), expected, atol=1e-5, rtol=1e-4)
    unnormalised = _by_hand(extractor.backbone, pixels)
    assert (unnormalised - expected).abs().max() > 1e-3  # the comparison can tell the two apart


def test_normalisation_is_the_given_mean_and_std(lenet_checkpoint: Path) -> None:
    """An image of constant value ``mean`` reaches the network as zeros, ``mean + std`` as ones."""
    mean, std = 0.3, 0.25
    extractor = classifier_features("lenet5", lenet_checkpoint, "lenet5_x", num_classes=10, mean=(mean,), std=(std,), in_chans=1)
    net = extractor.backbone
    flat = torch.ones(2, 1, 28, 28)
    got = extractor(torch.cat([flat * mean, flat * (mean + std)]))
    torch.testing.assert_close(got, _by_hand(net, torch.cat([flat * 0, flat])), atol=1e-5, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fid_between_two_real_sets_is_that_of_the_normalised_features(fmnist_dm, fmnist_train, fmnist_test,
                                                                      lenet_checkpoint: Path) -> None:  # fmt: skip
    """The FID metric GANTask builds runs on the normalised features: the Fréchet distance between
    the two sets' statistics of ``net((x - mean) / std)``, computed here by hand."""
    extractor = classifier_features("lenet5", lenet_checkpoint, "lenet5_fmnist", num_classes=10,
                                    mean=fmnist_dm.mean, std=fmnist_dm.std, in_chans=1)  # fmt: skip
    real, fake = fmnist_train[0][:256], fmnist_test[0][:256]
    metrics = build_sample_metrics(extractor, kid_subset_size=64, kid_subsets=2)
    metrics["fid_lenet5_fmnist"].update(real, real=True)
    metrics["fid_lenet5_fmnist"].update(fake, real=False)
    fid = compute_sample_metrics({"fid_lenet5_fmnist": metrics["fid_lenet5_fmnist"]})["fid_lenet5_fmnist"]

    m = torch.tensor(fmnist_dm.mean).view(1, -1, 1, 1)
    s = torch.tensor(fmnist_dm.std).view(1, -1, 1, 1)
    a, b = (_by_hand(extractor.backbone, (x - m) / s).double() for x in (real, fake))
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(ca @ cb).sqrt().real.sum()  # tr sqrt(ca cb): sqrt of its eigenvalues
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + ca.trace() + cb.trace() - 2 * root)
    assert fid == pytest.approx(expected, rel=1e-3)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_fid_and_kid_equal_torch_fidelity_fed_the_same_features(fmnist_dm, fmnist_train, fmnist_test,
                                                                lenet_checkpoint: Path) -> None:  # fmt: skip
    """An independent implementation (torch-fidelity's statistics → metric functions) given the
    very features the suite's metrics see; KID over one subset of every image (the MMD estimate
    does not depend on the order, so no sampling difference is left between the two)."""
    from torch_fidelity.metric_fid import (
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
    from torch_fidelity.metric_kid import kid_features_to_metric

    extractor = classifier_features("lenet5", lenet_checkpoint, "lenet5_fmnist", num_classes=10,
                                    mean=fmnist_dm.mean, std=fmnist_dm.std, in_chans=1)  # fmt: skip
    real, fake = fmnist_train[0][:200], fmnist_test[0][:200].flip(-2)  # upside-down garments: far from the real set
    metrics = build_sample_metrics(extractor, kid_subset_size=200, kid_subsets=1)
    for metric in metrics.values():
        metric.update(real, real=True)
        metric.update(fake, real=False)
    ours = compute_sample_metrics(metrics)

    with torch.no_grad():
        a, b = (extractor(x).double() for x in (real, fake))
    fid = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), verbose=False)
    kid = kid_features_to_metric(a, b, kid_subsets=1, kid_subset_size=200, verbose=False)
    assert ours["fid_lenet5_fmnist"] > 0.02 and ours["kid_lenet5_fmnist"] > 1e-4  # distances worth comparing
    assert ours["fid_lenet5_fmnist"] == pytest.approx(fid["frechet_inception_distance"], rel=1e-3)
    assert ours["kid_lenet5_fmnist"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-3)
