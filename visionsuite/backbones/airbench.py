"""The airbench network (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"), after
hlb-CIFAR10 (Balsam 2023): a frozen patch-whitening convolution, then three conv groups.

Each group is conv3x3 → max-pool 2 → batch norm → GELU → conv3x3 → batch norm → GELU; the head is
a global max-pool and a bias-free linear layer whose logits are scaled by 1/9. What makes it fast
to train, as in the paper's ablations:

* the first layer's 2x2 filters are the training patches' PCA whitening (``WhiteningConv2d``:
  the eigenvectors of the patch covariance over sqrt(eigenvalue + eps), and their negatives),
  set from real images when ``fit`` starts and never trained (its bias trains);
* batch norm with a fast running-statistics momentum (0.4 in PyTorch's convention, airbench's
  0.6) and no trainable scale; conv filters initialised as identity (Dirac) on their first
  input channels, so the untrained net passes its input through.

It is a backbone like the others (stages, ``feature_info``, ``encoder``), so it trains through
the classification task with any optimiser; the record configs use airbench's recipe (Nesterov
SGD, triangular schedule, label smoothing 0.2, EMA, flip + translate, alternating flips, TTA).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import build_with_options

BACKBONES = BuilderTable()


class WhiteningConv2d(nn.Conv2d):
    """A ``kernel_size`` convolution whose ``2 * in_chans * k * k`` filters whiten image patches.

    :meth:`init_from_images` sets them from training images (airbench: 5,000 CIFAR-10 images):
    with the patch covariance ``Σ = V diag(λ) Vᵀ``, filter ``i`` is ``v_i / sqrt(λ_i + eps)`` and
    filter ``i + n`` its negative (so a ReLU-like non-linearity keeps both signs). The weights are
    frozen; ``initialised`` (a buffer, saved in checkpoints) records that they were set, so a
    resumed or evaluated run never recomputes them.
    """

    def __init__(self, in_chans: int, kernel_size: int = 2, eps: float = 5e-4) -> None:
        super().__init__(in_chans, 2 * in_chans * kernel_size**2, kernel_size, padding=0, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_from_images(self, images: Tensor) -> None:
        """Set the filters from ``images`` [N, C, H, W] (normalised as training batches are)."""
        c, k = self.in_channels, self.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / max(1, patches.shape[0] - 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None]).flip(0)
        filters = filters.reshape(-1, c, k, k).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))
        self.initialised.fill_(True)


class FastBatchNorm(nn.BatchNorm2d):
    """Batch norm with airbench's settings: running-statistics momentum 0.4 (PyTorch's
    convention; airbench writes 0.6 = 1 - 0.4), eps 1e-12, scale fixed at 1 (the bias trains)."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Sequential):
    """conv3x3 → max-pool 2 → BN → GELU → conv3x3 → BN → GELU (airbench's block)."""

    def __init__(self, cin: int, cout: int, bn_momentum: float) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), FastBatchNorm(cout, bn_momentum), nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), FastBatchNorm(cout, bn_momentum), nn.GELU(),
        )  # fmt: skip


class ScaledLinearHead(nn.Module):
    """Global max-pool, a bias-free linear layer, logits × ``scale`` (airbench: 1/9)."""

    def __init__(self, features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.pool, self.scale = nn.AdaptiveMaxPool2d(1), scale
        self.fc: nn.Module = nn.Linear(features, num_classes, bias=False) if num_classes > 0 else nn.Identity()

    def forward_pre_logits(self, x: Tensor) -> Tensor:
        return self.pool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_pre_logits(x)) * self.scale

    def reset_classifier(self, num_classes: int) -> None:
        features = self.fc.in_features if isinstance(self.fc, nn.Linear) else None
        if features is None:
            raise TypeError("the classifier was removed; it cannot be reset")
        self.fc = nn.Linear(features, num_classes, bias=False) if num_classes > 0 else nn.Identity()


def dirac_init(conv: nn.Conv2d) -> None:
    """Identity on the first ``min(in, out)`` channels of ``conv`` (its other filters keep
    PyTorch's init): airbench's initialisation, which lets the untrained net pass its input."""
    with torch.no_grad():
        n = min(conv.in_channels, conv.out_channels)
        torch.nn.init.dirac_(conv.weight[:n])


class AirbenchNet(Backbone):
    """Whitening stem + three :class:`ConvGroup` s (airbench94: widths 64, 256, 256)."""

    default_input_size = (3, 32, 32)
    min_input_size = (10, 10)

    def __init__(
        self,
        *,
        widths: tuple[int, int, int] = (64, 256, 256),
        num_classes: int = 10,
        in_chans: int = 3,
        whiten_kernel: int = 2,
        whiten_eps: float = 5e-4,
        bn_momentum: float = 0.4,
        logit_scale: float = 1 / 9,
        dirac: bool = True,
    ) -> None:
        """
        Args:
            widths: channels of the three conv groups (airbench94: 64, 256, 256; airbench96:
                128, 384, 512 with more blocks, not built here).
            whiten_kernel / whiten_eps: the whitening filters' size and eigenvalue floor.
            bn_momentum: running-statistics momentum of every batch norm (PyTorch's convention).
            logit_scale: the head's output scale (airbench: 1/9).
            dirac: identity-initialise every 3x3 conv on its first input channels.
        """
        super().__init__()
        whiten = WhiteningConv2d(in_chans, whiten_kernel, whiten_eps)
        stem = whiten.out_channels
        self.stages["stem"] = nn.Sequential(whiten, nn.GELU())
        channels, infos = stem, [FeatureInfo("stem", 1, stem)]
        for i, width in enumerate(widths, start=1):
            self.stages[f"block{i}"] = ConvGroup(channels, width, bn_momentum)
            channels = width
            infos.append(FeatureInfo(f"block{i}", 2**i, width))
        self.feature_info = infos
        self.head = ScaledLinearHead(channels, num_classes, logit_scale)
        self.num_features, self.num_classes = channels, num_classes
        if dirac:
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and not isinstance(m, WhiteningConv2d):
                    dirac_init(m)

    @property
    def whiten(self) -> WhiteningConv2d:
        """The first layer: the patch-whitening convolution."""
        return self.stages["stem"][0]  # type: ignore[return-value]

    def init_from_images(self, images: Tensor) -> None:
        """Set the whitening filters from training images (see :class:`WhiteningConv2d`)."""
        self.whiten.init_from_images(images)

    @property
    def needs_data_init(self) -> bool:
        """Whether the whitening filters still wait for training images."""
        return not bool(self.whiten.initialised)


@BACKBONES.add("airbench94")
def airbench94(*, num_classes: int = 10, in_chans: int = 3, **options: Any) -> AirbenchNet:
    """airbench94: whitening stem, conv groups 64-256-256, GELU, max-pool head (1.97 M parameters)."""
    return build_with_options(AirbenchNet, options, num_classes=num_classes, in_chans=in_chans)
