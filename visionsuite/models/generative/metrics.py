"""The numbers that judge generative models.

* Samples: FID (Heusel et al., 2017) and KID (Bińkowski et al., 2018) through torchmetrics, in the
  feature space of a named extractor (:mod:`.features`). Keys always carry the extractor's name,
  ``fid_<extractor>`` / ``kid_<extractor>`` (never "fid" alone): ``fid_inception`` for the standard
  network, ``fid_lenet5_fmnist`` for a LeNet-5 trained on Fashion-MNIST.
* Reconstructions: MSE and PSNR on [0, 1] pixels.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.regression import MeanSquaredError


def sample_metric_names(extractor_name: str) -> tuple[str, str]:
    """The (FID, KID) keys for an extractor, e.g. ``fid_lenet5_fmnist``."""
    suffix = extractor_name.replace("/", "_")
    return f"fid_{suffix}", f"kid_{suffix}"


def build_sample_metrics(
    extractor: nn.Module, *, kid_subset_size: int = 1000, kid_subsets: int = 100
) -> dict[str, Metric]:
    """FID and KID metric objects sharing ``extractor`` (which has ``name`` and ``num_features``),
    keyed by :func:`sample_metric_names`. Feed both with ``update(images01, real=bool)``; real
    statistics are kept across ``reset`` (``reset_real_features=False``), so the real set is fed once.
    KID needs at least ``kid_subset_size`` images of each kind."""
    fid_key, kid_key = sample_metric_names(extractor.name)
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
    kid = KernelInceptionDistance(
        feature=extractor, subsets=kid_subsets, subset_size=kid_subset_size, reset_real_features=False
    )
    return {fid_key: fid, kid_key: kid}


def compute_sample_metrics(metrics: dict[str, Metric]) -> dict[str, float]:
    """``{key: value}``; KID's standard deviation over subsets is reported as ``<key>_std``."""
    values: dict[str, float] = {}
    for key, metric in metrics.items():
        result = metric.compute()
        if isinstance(result, tuple):
            values[key], values[f"{key}_std"] = float(result[0]), float(result[1])
        else:
            values[key] = float(result)
    return values


def reconstruction_metrics() -> MetricCollection:
    """MSE and PSNR (data range 1) between reconstructions and targets, both [0, 1] pixels."""
    return MetricCollection({"mse": MeanSquaredError(), "psnr": PeakSignalNoiseRatio(data_range=1.0)})


def update_reconstruction(metrics: MetricCollection, recon: Tensor, target: Tensor) -> None:
    """Flattened update (MSE wants matching shapes; PSNR works on any)."""
    metrics.update(recon.detach().flatten(1), target.flatten(1))
