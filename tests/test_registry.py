"""The backbone registry: names, errors, and the interface every family shares."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from visionsuite.backbones import Backbone, UnknownBackboneError, create_backbone, list_backbones

ROOT = Path(__file__).resolve().parents[1]


def test_course_baselines_are_registered() -> None:
    names = list_backbones()
    for name in ("linear", "mlp", "lenet1", "lenet5"):
        assert name in names
    assert list_backbones("lenet*") == ["lenet1", "lenet5"]


def test_unknown_backbone_lists_valid_names_and_suggests() -> None:
    with pytest.raises(UnknownBackboneError) as info:
        create_backbone("lenet6")
    message = str(info.value)
    assert "Unknown backbone 'lenet6'" in message and "Did you mean lenet5" in message
    assert "linear" in message and "\n" not in message


def test_linear_model_is_multinomial_logistic_regression() -> None:
    model = create_backbone("linear", num_classes=10, in_chans=3, input_size=32)
    assert sum(p.numel() for p in model.parameters()) == 3 * 32 * 32 * 10 + 10
    x = torch.rand(2, 3, 32, 32)
    head = model.get_classifier()
    assert torch.allclose(model(x), head(x.flatten(1)))


def test_mlp_skip_layer_nests_the_linear_model() -> None:
    """F(x) = α + βᵀx + Σ a_h σ(b_h + W_hᵀx): with a = 0 the MLP equals its linear skip layer."""
    model = create_backbone("mlp", num_classes=10, in_chans=3, input_size=32, hidden=10)
    head = model.get_classifier()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        head.out.weight.zero_()
    assert torch.allclose(model(x), head.skip(x.flatten(1)))
    # parameters: hidden (3072*10+10) + a (10*10) + skip (3072*10+10)
    assert sum(p.numel() for p in model.parameters()) == 30730 + 100 + 30730


def test_lenet5_matches_the_paper() -> None:
    model = create_backbone("lenet5", num_classes=10, in_chans=1)
    assert isinstance(model, Backbone)
    assert sum(p.numel() for p in model.parameters()) == 61_706
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [6, 16] and convs[0].kernel_size == (5, 5)
    assert any(isinstance(m, torch.nn.Tanh) for m in model.modules())
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in model.modules())
    assert [f.shape[1:] for f in model.encoder()(torch.rand(2, 1, 28, 28)).values()] == [(6, 14, 14), (16, 5, 5)]


def test_lenet1_has_4_then_12_valid_filters() -> None:
    model = create_backbone("lenet1", num_classes=10, in_chans=1)
    feats = model.forward_features(torch.rand(1, 1, 28, 28))
    assert feats.shape == (1, 12, 4, 4)


def test_course_backbones_do_not_import_torchvision_or_timm() -> None:
    """The adapters load on the first ``tv/``/``timm/`` name only: building LeNet-5 (and listing
    names) in a fresh interpreter imports neither library."""
    code = (
        "import sys\n"
        "from visionsuite.backbones import create_backbone, create_encoder, list_backbones\n"
        "create_backbone('lenet5'); create_encoder('resnet18_cifar'); assert 'efficientnet_lite0' in list_backbones()\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_lazy_names_resolve_on_first_use() -> None:
    backbone = create_backbone("tv/resnet18", num_classes=2)
    assert backbone.label == "tv/resnet18"
    with pytest.raises(UnknownBackboneError, match="'tv/<name>'"):
        create_backbone("lenet6")


def test_every_factory_lists_its_names_and_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    """`visionsuite list KIND` prints each registry; a misspelt name gets the nearest one."""
    from visionsuite.cli.app import main
    from visionsuite.core.registry import UnknownNameError
    from visionsuite.models.segmentation.losses import build_loss
    from visionsuite.tasks.optim import build_optimizer

    expected = {
        "heads": ["retinanet", "fcos", "ssd", "ssdlite", "fasterrcnn", "yolo"],
        "losses": ["cross_entropy", "dice", "focal", "ce+dice"],
        "optimizers": ["sgd", "adam", "adamw", "rmsprop", "adagrad"],
        "schedulers": ["none", "multistep", "cosine", "cosine_time", "onecycle", "triangular", "plateau"],
    }
    for kind, names in expected.items():
        assert main(["list", kind]) == 0
        assert capsys.readouterr().out.split() == names
    assert main(["list", "models"]) == 0
    assert capsys.readouterr().out.split()[:3] == ["segnet", "unet", "unet:<backbone>"]
    with pytest.raises(UnknownNameError, match="Did you mean adam, adamw"):
        build_optimizer("adamv", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(UnknownNameError, match="Did you mean focal"):
        build_loss("focall", ignore_index=255)
    capsys.readouterr()
    assert main(["list", "hedas"]) == 2  # the usage error is the CLI's one line, as for every tool
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("visionsuite: error: list: argument kind: invalid choice: 'hedas'"), err


def test_generative_choices_are_listed_and_suggest_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    """`visionsuite list generative`: one line per by-name option of the AE/VAE/GAN tasks; a
    misspelt name, in a model or in a task's constructor, is one ConfigError line naming the nearest."""
    from visionsuite.cli.app import main
    from visionsuite.errors import ConfigError
    from visionsuite.models.generative import ConvAutoencoder, ConvVAE, corrupt, discriminator_loss
    from visionsuite.tasks import AutoencoderTask, GANTask, VAETask
    from visionsuite.tasks.optim import build_scheduler

    assert main(["list", "generative"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "loss (GAN): nonsaturating hinge wasserstein",
        "noise (autoencoder): none gaussian salt_pepper masking",
        "arch (VAE): conv mlp",
        "likelihood (VAE): bernoulli gaussian",
        "upsample (autoencoder, VAE): nearest transposed",
    ]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scores = torch.zeros(2)
    misspelt = [
        (lambda: build_scheduler("cosin", opt, max_epochs=1, total_steps=1), "scheduler 'cosin'", "cosine, cosine_time"),
        (lambda: GANTask(loss="hinje"), "GAN loss 'hinje'", "hinge"),
        (lambda: discriminator_loss("wasserstien", scores, scores), "GAN loss 'wasserstien'", "wasserstein"),
        (lambda: AutoencoderTask(noise="gausian", noise_level=0.1), "noise 'gausian'", "gaussian"),
        (lambda: corrupt(torch.zeros(1, 1, 2, 2), "maskin", 0.1), "noise 'maskin'", "masking"),
        (lambda: VAETask(arch="mpl"), "VAE architecture 'mpl'", "mlp"),
        (lambda: ConvVAE(1, 28, likelihood="bernouli"), "likelihood 'bernouli'", "bernoulli"),
        (lambda: ConvAutoencoder(1, 28, upsample="nearst"), "upsample 'nearst'", "nearest"),
    ]
    for build, unknown, nearest in misspelt:
        with pytest.raises(ConfigError) as info:
            build()
        message = str(info.value)
        assert f"Unknown {unknown}. Did you mean {nearest}" in message and "\n" not in message, message
