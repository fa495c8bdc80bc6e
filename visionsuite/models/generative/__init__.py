"""Generative models as plain PyTorch: autoencoders, VAEs, DCGANs, their objectives, the metrics
that judge them (FID/KID in a named feature space, MSE/PSNR) and the pictures people look at.
The Lightning tasks wire these in; nothing here depends on Lightning.

Pixel ranges: models take [0, 1] pixels (the VAE, the AE) or [-1, 1] (the DCGAN's tanh); the data
module stays normalised and :mod:`.pixels` converts (see its docstring for why).
"""

from visionsuite.core.registry import Registry
from visionsuite.models.generative.autoencoder import ConvAutoencoder
from visionsuite.models.generative.conv import UPSAMPLINGS
from visionsuite.models.generative.dcgan import (
    DCGANDiscriminator,
    DCGANGenerator,
    dcgan_init,
)
from visionsuite.models.generative.elbo import (
    LIKELIHOODS,
    ElboTerms,
    gaussian_kl,
    kl_weight,
    negative_elbo,
    vae_loss,
)
from visionsuite.models.ema import make_ema, warmup_decay
from visionsuite.models.generative.features import (
    ClassifierFeatures,
    InceptionFeatures,
    classifier_features,
)
from visionsuite.models.generative.gan_losses import (
    GAN_LOSSES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)
from visionsuite.models.generative.metrics import (
    build_sample_metrics,
    compute_sample_metrics,
    reconstruction_metrics,
    sample_metric_names,
)
from visionsuite.models.generative.monitor import DiscriminatorWinsDetector
from visionsuite.models.generative.noise import NOISES, corrupt
from visionsuite.models.generative.pixels import denormalize, to_signed, to_unit
from visionsuite.models.generative.vae import MLPVAE, VAE_ARCHS, ConvVAE, VAEOutput, reparameterize

#: every by-name option of the generative tasks and the registry holding its names
#: (``visionsuite list generative`` prints them, one option per line).
CHOICES: dict[str, Registry] = {
    "loss (GAN)": GAN_LOSSES,
    "noise (autoencoder)": NOISES,
    "arch (VAE)": VAE_ARCHS,
    "likelihood (VAE)": LIKELIHOODS,
    "upsample (autoencoder, VAE)": UPSAMPLINGS,
}

__all__ = [
    "CHOICES",
    "GAN_LOSSES",
    "LIKELIHOODS",
    "NOISES",
    "UPSAMPLINGS",
    "VAE_ARCHS",
    "ClassifierFeatures",
    "ConvAutoencoder",
    "ConvVAE",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DiscriminatorWinsDetector",
    "ElboTerms",
    "InceptionFeatures",
    "MLPVAE",
    "VAEOutput",
    "build_sample_metrics",
    "classifier_features",
    "compute_sample_metrics",
    "corrupt",
    "dcgan_init",
    "denormalize",
    "discriminator_loss",
    "gaussian_kl",
    "generator_loss",
    "gradient_penalty",
    "kl_weight",
    "make_ema",
    "warmup_decay",
    "negative_elbo",
    "reconstruction_metrics",
    "reparameterize",
    "sample_metric_names",
    "to_signed",
    "to_unit",
    "vae_loss",
]
