"""A convolutional autoencoder: it predicts its own input through a ``latent_dim`` bottleneck,
which forces it to keep only what matters most for reconstruction.

It works in whatever pixel space it is given (the task feeds [0, 1] pixels, see :mod:`.pixels`);
``output`` chooses the last activation: ``sigmoid`` keeps reconstructions in [0, 1], ``none``
leaves them unbounded. The denoising variant is the same network trained on corrupted inputs
(:func:`.noise.corrupt`) against clean targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from visionsuite.backbones.layers import check_choice
from visionsuite.models.generative.conv import ConvDecoder, ConvEncoder


class ConvAutoencoder(nn.Module):
    """Encoder (backbone blocks) → ``latent_dim`` code → mirrored decoder."""

    def __init__(
        self,
        in_chans: int = 1,
        image_size: int = 28,
        latent_dim: int = 32,
        *,
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str = "relu",
        upsample: str = "nearest",
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output = check_choice("autoencoder output", output, ("sigmoid", "none"))
        shape = {"widths": widths, "depth": depth, "norm": norm, "activation": activation}
        self.encoder = ConvEncoder(in_chans, image_size, latent_dim, **shape)
        self.decoder = ConvDecoder(latent_dim, in_chans, image_size, upsample=upsample, **shape)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
