"""Every option reaches its target (issue #28): for each task family, a table of its constructor
options, each with a non-default value and the probe that must change when it is set — the
built weights (names and shapes), their initial values, which of them train, the optimiser and
schedule, the training loss on a fixed batch, or the output on a fixed input.

An option the probes cannot see (it acts in the training loop, on pictures, or on files) is
listed in ``ELSEWHERE`` with the test that covers it; that test must exist. A constructor
option in neither table fails :func:`test_every_option_has_a_row`: a new option needs a row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from visionsuite.cli.suggest import accepted_options
from visionsuite.data.batch import BBOX_LABEL, BBOX_XYXY
from visionsuite.tasks import (
    AutoencoderTask,
    ClassificationTask,
    DetectionTask,
    GANTask,
    SegmentationTask,
    VAETask,
)

TESTS = Path(__file__).parent

# -- how each family is built small, and its fixed batch -------------------------------------------
BASE: dict[type, dict[str, Any]] = {
    ClassificationTask: {"backbone": "lenet5", "num_classes": 10, "in_chans": 1},
    SegmentationTask: {"model": "unet", "num_classes": 4, "in_chans": 3, "model_options": {"depth": 2, "base_width": 4}},
    DetectionTask: {"head": "fcos", "backbone": "resnet18", "backbone_options": {"base_width": 8}, "num_classes": 3,
                    "in_chans": 1, "image_size": 32, "fpn_channels": 32},
    AutoencoderTask: {"in_chans": 1, "img_size": 28, "latent_dim": 8, "widths": [8, 16]},
    VAETask: {"in_chans": 1, "img_size": 28, "latent_dim": 4, "widths": [8, 16]},
    GANTask: {"in_chans": 1, "img_size": 28, "latent_dim": 8, "g_width": 8, "d_width": 8},
}  # fmt: skip


def _batch(cls: type) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    if cls is ClassificationTask:
        return {"image": torch.randn(4, 1, 28, 28, generator=g), "label": torch.tensor([0, 1, 2, 3])}
    if cls is SegmentationTask:
        mask = torch.randint(0, 4, (2, 32, 32), generator=g)
        return {"image": torch.randn(2, 3, 32, 32, generator=g), "mask": mask}
    if cls is DetectionTask:
        boxes = [torch.tensor([[2.0, 3.0, 20.0, 25.0]]), torch.tensor([[8.0, 4.0, 30.0, 14.0], [1.0, 1.0, 9.0, 9.0]])]
        return {"image": torch.rand(2, 1, 32, 32, generator=g), BBOX_XYXY: boxes, BBOX_LABEL: [torch.tensor([1]), torch.tensor([0, 2])]}
    return {"image": torch.rand(4, 1, 28, 28, generator=g) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}


# -- probes: what an option may change ------------------------------------------------------------
def _digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def weights(task: Any) -> Any:
    return sorted((k, tuple(v.shape)) for k, v in task.state_dict().items())


def init(task: Any) -> Any:
    return _digest([v for _, v in sorted(task.state_dict().items())])


def trainable(task: Any) -> Any:
    return sorted(n for n, p in task.named_parameters() if p.requires_grad)


def optim(task: Any) -> Any:
    """Optimiser types and group settings, and the schedule's learning rates over 20 steps."""
    task._trainer = SimpleNamespace(max_epochs=4, estimated_stepping_batches=20, callbacks=[], max_time=None)
    try:
        config = task.configure_optimizers()
    finally:
        task._trainer = None
    configs = config if isinstance(config, (list, tuple)) else [config]
    out = []
    for c in configs:
        opt = c["optimizer"] if isinstance(c, dict) else c
        groups = [(len(g["params"]), *(repr(g.get(k)) for k in ("lr", "momentum", "nesterov", "betas", "weight_decay")))
                  for g in opt.param_groups]  # fmt: skip
        out.append((type(opt).__name__, groups))
        sched = c.get("lr_scheduler") if isinstance(c, dict) else None
        if sched is not None:
            s = sched["scheduler"] if isinstance(sched, dict) else sched
            if type(s).__name__ == "ReduceLROnPlateau":
                out.append(("plateau", s.patience, s.factor))
            else:
                lrs = []
                for _ in range(20):
                    opt.step()
                    s.step()
                    lrs.append(tuple(round(g["lr"], 10) for g in opt.param_groups))
                out.append((type(s).__name__, lrs))
    return out


def layout(task: Any) -> Any:
    """Which 4-D weights are stored channels-last."""
    return [p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in task.parameters()
            if p.ndim == 4]  # fmt: skip


def callbacks(task: Any) -> Any:
    """The run's callbacks and their step cadence."""
    return [(type(cb).__name__, getattr(cb, "_every_n_train_steps", None)) for cb in task.run_callbacks(None)]


def loss(task: Any) -> Any:
    torch.manual_seed(0)
    task.train()
    task._trainer = SimpleNamespace(sanity_checking=False, global_step=0, current_epoch=0)
    try:
        out = task.shared_step(_batch(type(task)), "train")
    finally:
        task._trainer = None
    value = out.loss if out.loss is not None else sum(v for v in (out.terms or {}).values())
    return round(float(value.detach()), 6)


def output(task: Any) -> Any:
    torch.manual_seed(0)
    task.eval()
    batch = _batch(type(task))
    task._trainer = SimpleNamespace(sanity_checking=True, global_step=0, current_epoch=0)
    try:
        with torch.no_grad():
            if isinstance(task, DetectionTask):
                out = task.shared_step(batch, "test").preds
                return [(d["boxes"].shape[0], _digest([d["boxes"], d["scores"]])) for d in out]
            if isinstance(task, GANTask):
                return _digest([task.sampler()(torch.randn(4, task.hparams.latent_dim), None)])
            out = task.shared_step(batch, "val")
    finally:
        task._trainer = None
    return _digest([out.preds if isinstance(out.preds, torch.Tensor) else torch.tensor(0.0)])


Probe = Callable[[Any], Any]

BASE_ROWS: dict[str, tuple[Any, Probe]] = {
    "optimizer": ("adamw", optim), "lr": (0.0123, optim), "weight_decay": (0.01, optim),
    "scheduler": ("cosine", optim), "channels_last": (True, layout), "checkpoint_every_n_steps": (7, callbacks),
}  # fmt: skip
#: options of the shared base, with the family whose defaults make them visible.
SCHEDULE_ROWS: dict[str, tuple[dict[str, Any], Any, Probe]] = {
    "momentum": ({"optimizer": "sgd"}, 0.5, optim),
    "no_decay_norm_and_bias": ({"weight_decay": 0.01}, True, optim),
    "nesterov": ({"optimizer": "sgd", "momentum": 0.9}, True, optim),
    "betas": ({"optimizer": "adam"}, (0.8, 0.9), optim),
    "milestones": ({"scheduler": "multistep", "milestones": [5]}, [10], optim),
    "gamma": ({"scheduler": "multistep", "milestones": [5]}, 0.5, optim),
    "patience": ({"scheduler": "plateau"}, 3, optim),
    "warmup_pct": ({"scheduler": "onecycle"}, 0.5, optim),
    "triangular_ends": ({"scheduler": "triangular"}, (0.2, 0.07), optim),
}

#: per family: option → (value, probe) or (value, probe, other options it needs to act).
ROWS: dict[type, dict[str, tuple[Any, ...]]] = {
    ClassificationTask: {
        "backbone": ("linear", weights), "num_classes": (7, weights), "in_chans": (3, weights),
        "backbone_options": ({"activation": "relu"}, loss), "freeze_backbone": (True, trainable),
        "finetune": ("linear_probe", trainable), "backbone_lr_mult": (0.1, optim), "frozen_stages": (1, trainable),
        "label_smoothing": (0.2, loss), "ema_decay": (0.9, callbacks),
        "aux_loss_weight": (0.9, loss, {"backbone": "googlenet", "backbone_options": {"aux_logits": True}}),
    },
    SegmentationTask: {
        "model": ("segnet", weights, {"model_options": {}}), "num_classes": (5, weights), "in_chans": (1, weights),
        "model_options": ({"depth": 3, "base_width": 4}, weights), "loss": ("dice", loss),
        "class_weights": ([1.0, 2.0, 3.0, 4.0], loss), "ignore_index": (0, loss),
        "encoder_lr_mult": (0.1, optim), "loss_options": ({"label_smoothing": 0.3}, loss),
        "frozen_encoder_stages": (1, trainable), "frozen_stages": (1, trainable), "backbone_lr_mult": (0.1, optim),
    },
    DetectionTask: {
        "head": ("retinanet", weights), "backbone": ("resnet34", weights), "num_classes": (4, weights),
        "in_chans": (3, weights), "backbone_options": ({"base_width": 16}, weights), "fpn_channels": (64, weights),
        "out_strides": ([16, 32], weights), "extra_blocks": ("none", weights), "head_convs": (2, weights),
        "regression_bias": (1.0, init), "score_thresh": (0.5, output), "nms_thresh": (0.1, output, {"regression_bias": 1.0}),
        "detections_per_img": (1, output), "image_size": (64, output), "anchor_scale": (2.0, loss, {"head": "retinanet"}),
        "test_time_flip": (True, output), "head_options": ({"topk_candidates": 2}, output),
        "frozen_stages": (1, trainable), "backbone_lr_mult": (0.1, optim),
        "detector": ("ssdlite320_mobilenet_v3_large", weights, {"in_chans": 3, "backbone_options": None, "fpn_channels": 128}),
    },
    AutoencoderTask: {
        "in_chans": (3, weights), "img_size": (32, weights), "latent_dim": (16, weights), "widths": ([8, 8], weights),
        "depth": (2, weights), "norm": ("none", weights), "activation": ("leaky_relu", loss),
        "upsample": ("transposed", weights), "noise": ("gaussian", loss, {"noise_level": 0.5}),
        "noise_level": (0.5, loss, {"noise": "gaussian", "noise_level": 0.1}),
    },
    VAETask: {
        "in_chans": (3, weights), "img_size": (32, weights), "latent_dim": (6, weights), "arch": ("mlp", weights),
        "widths": ([8, 8], weights), "depth": (2, weights), "norm": ("none", weights),
        "activation": ("leaky_relu", loss), "upsample": ("nearest", weights), "fc_hidden": ([32], weights), "hidden": ([64], weights, {"arch": "mlp"}),
        "likelihood": ("gaussian", loss), "sigma": (0.5, loss, {"likelihood": "gaussian"}),
        "learn_sigma": (True, trainable, {"likelihood": "gaussian"}), "beta": (4.0, loss),
    },
    GANTask: {
        "in_chans": (3, weights), "img_size": (32, weights), "latent_dim": (16, weights), "g_width": (16, weights),
        "d_width": (16, weights), "spectral_norm": (True, weights), "d_norm": ("none", weights),
        "conditional_classes": (10, weights), "d_lr": (1e-3, optim), "ema_decay": (0.9, weights),
        "num_fixed_samples": (8, weights), "loss": ("hinge", loss),
    },
}  # fmt: skip

#: options no probe here can see, and the test that shows each one acting.
ELSEWHERE: dict[str, str] = {
    "weights": "test_weights.py::test_",
    "detector_weights": "detection/test_detector_weights.py::test_class_rows_move_to_the_data_classes_by_name",
    "top_stages": "transfer/test_finetuning.py::test_",
    # the generative tasks have no pretrained trunk: they refuse the shared fine-tuning options
    "frozen_stages": "test_stages.py::test_a_task_without_a_trunk_refuses_the_fine_tuning_options",
    "backbone_lr_mult": "test_stages.py::test_a_task_without_a_trunk_refuses_the_fine_tuning_options",
    "norm_bias_lr_mult": "test_optim.py::test_norm_bias_lr_mult_reaches_the_task_optimizer_and_refuses_staged_rates",
    "unfreeze_at": "transfer/test_finetuning.py::test_",
    "stage_lr_decay": "transfer/test_finetuning.py::test_",
    "adopt_weights_preprocessing": "transfer/test_finetuning.py::test_",
    "keep_data_preprocessing": "test_weights_preprocessing.py::test_adopting_or_keeping_the_data_preprocessing",
    "num_sample_images": "test_figures.py::test_figures_hook_writes_pngs_for_val_and_test",
    "palette": "segmentation/test_seg_task.py::test_predict_writes_palette_masks_at_the_original_size",
    "num_overlay_images": "segmentation/test_seg_task.py::test_overlays_written_after_validation_and_test",
    "test_time_flip": "segmentation/test_seg_task.py::test_",
    "kl_warmup_steps": "generative/test_gen_elbo.py::test_",
    "scatter_points": "generative/test_gen_tasks.py::test_",
    "gp_weight": "generative/test_gen_gan.py::test_gradient_penalty_trains_the_critic",
    "n_critic": "generative/test_gen_tasks.py::test_gan_manual_steps_update_each_network_with_its_own_optimiser",
    "ema_warmup": "generative/test_gen_gan.py::test_gan_task_ema_warmup_option_and_its_position_in_the_checkpoint",
    "fid_classifier_ckpt": "generative/test_gen_metrics.py::test_extractor_loads_the_checkpoint_and_has_its_feature_size",
    "fid_backbone": "generative/test_gen_tasks.py::test_gan_run_keeps_last_ckpt_only_and_draws_grids_from_the_saved_fixed_noise",
    "fid_features_name": "generative/test_gen_tasks.py::test_gan_run_keeps_last_ckpt_only_and_draws_grids_from_the_saved_fixed_noise",
    "inception_weights": "generative/test_gen_metrics.py::test_standard_inception_with_a_wrong_file_is_a_one_line_error",
    "kid_subset_size": "generative/test_gen_metrics.py::test_",
    "d_wins_threshold": "generative/test_gen_gan.py::test_discriminator_wins_detector_fires_once",
    "d_wins_patience": "generative/test_gen_gan.py::test_detector_needs_the_streak_unbroken_and_g_rising",
    "test_time_augmentation": "test_record_techniques.py::test_the_task_scores_test_batches_under_tta_and_validation_without",
    "compile_mode": "test_record_techniques.py::test_a_compiled_network_gives_the_eager_logits_and_keeps_its_checkpoint_keys",
}  # fmt: skip


def _cases() -> list[tuple[type, str, dict[str, Any], Any, Probe]]:
    cases = []
    for cls, rows in ROWS.items():
        for name, (value, probe, *extra) in {**BASE_ROWS, **rows}.items():
            cases.append((cls, name, extra[0] if extra else {}, value, probe))
        for name, (extra, value, probe) in SCHEDULE_ROWS.items():
            cases.append((cls, name, extra, value, probe))
    return cases


def _build(cls: type, **options: Any) -> Any:
    torch.manual_seed(0)
    return cls(**{**BASE[cls], **options})


@pytest.mark.parametrize(("cls", "name", "extra", "value", "probe"), _cases(),
                         ids=[f"{c.__name__}-{n}" for c, n, *_ in _cases()])  # fmt: skip
def test_option_changes_what_it_is_meant_to(cls: type, name: str, extra: dict[str, Any], value: Any, probe: Probe) -> None:
    if cls is GANTask and name in SCHEDULE_ROWS | {"scheduler": 0, "no_decay_norm_and_bias": 0}:
        pytest.skip("GANTask trains without a schedule (its manual steps); its optimisers are checked by the rows above")
    default = probe(_build(cls, **extra))
    changed = probe(_build(cls, **{**extra, name: value}))
    assert changed != default, f"{cls.__name__}({name}={value!r}) changed nothing the {probe.__name__} probe sees"


def test_every_option_has_a_row() -> None:
    """A constructor option without a row here or in ``ELSEWHERE`` fails: add one with a probe."""
    covered = set(BASE_ROWS) | set(SCHEDULE_ROWS) | set(ELSEWHERE)
    missing = {cls.__name__: sorted(set(accepted_options(cls)) - covered - set(ROWS[cls])) for cls in ROWS}
    assert not any(missing.values()), missing


def test_every_elsewhere_test_exists() -> None:
    """Each option covered elsewhere names a test file and a test (or test prefix) that exist."""
    for option, where in ELSEWHERE.items():
        file, test = where.split("::")
        text = (TESTS / file).read_text()
        assert re.search(rf"^def {re.escape(test)}", text, re.MULTILINE), f"{option}: no {where}"
