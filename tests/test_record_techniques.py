"""The fast-training techniques of the record recipes, each checked on its mechanism: the EMA of
the weights (the hand-computed average, checkpointed and restored bit-identically), test-time
augmentation (the mean of the views), alternating flips, airbench's whitening layer, and the
refusals (16-bit precision on a CPU without AMX)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from visionsuite.backbones import create_backbone
from visionsuite.data import FashionMNISTDataModule
from visionsuite.data import augment as aug
from visionsuite.data.augment import alternating_flips, shift_crop
from visionsuite.models.test_time import shift, tta_logits
from visionsuite.tasks import ClassificationTask


def _trainer(root: Path, steps: int, callbacks: list[Callback] | None = None) -> Trainer:
    return Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
                   callbacks=callbacks or [], val_check_interval=steps)  # fmt: skip


def _data(root: Path, **options: Any) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(data_dir=str(root), batch_size=16, train_subset=64, val_subset=16, test_subset=16, **options)


class _RawWeights(Callback):
    """The raw (trained) weights after each optimiser step, and the average at the fit's start."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.average_at_start: dict[str, torch.Tensor] | None = None
        self.updates_at_start: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        ema = next(cb for cb in trainer.callbacks if type(cb).__name__ == "WeightEMA")
        if ema._average_model is not None and int(ema._average_model.n_averaged):
            self.average_at_start = {k: v.clone() for k, v in ema._average_model.module.state_dict().items()}
            self.updates_at_start = int(ema._average_model.n_averaged)

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, *args: Any) -> None:
        self.steps.append({k: v.detach().clone() for k, v in pl_module.named_parameters()})


def _ema_task(**options: Any) -> ClassificationTask:
    return ClassificationTask(backbone="lenet5", in_chans=1, optimizer="sgd", lr=0.05, ema_decay=0.5, ema_warmup=False, **options)


def test_ema_after_two_steps_is_the_hand_computed_average_and_is_what_checkpoints_hold(
    data_root: Path, mirror: Path, tmp_path: Path
) -> None:
    """decay 0.5 without warm-up: the first update copies w1, the second gives (w1 + w2) / 2.
    After fit the task holds the average; the checkpoint's ``state_dict`` is the average (what
    ``test`` loads), ``current_model_state`` the raw w2."""
    torch.manual_seed(0)
    task, raw = _ema_task(), _RawWeights()
    _trainer(tmp_path, 2, [raw]).fit(task, datamodule=_data(data_root))
    w1, w2 = raw.steps
    assert any(not torch.equal(w1[k], w2[k]) for k in w1), "the two steps did not move the weights"
    expected = {k: 0.5 * w1[k] + 0.5 * w2[k] for k in w1}
    for name, value in task.named_parameters():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-7, msg=name)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    for name in w1:
        torch.testing.assert_close(ckpt["state_dict"][name], expected[name], rtol=0, atol=1e-7)
        assert torch.equal(ckpt["current_model_state"][name], w2[name])


def test_a_resumed_run_restores_the_average_bit_identically(data_root: Path, mirror: Path, tmp_path: Path) -> None:
    """Resuming from ``last.ckpt`` restores the average and its update count exactly, and the raw
    weights (not the average) keep training."""
    torch.manual_seed(0)
    first = _RawWeights()
    _trainer(tmp_path, 2, [first]).fit(_ema_task(), datamodule=_data(data_root))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = _RawWeights()
    _trainer(tmp_path / "again", 3, [resumed]).fit(
        _ema_task(), datamodule=_data(data_root), ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt")
    )
    assert resumed.updates_at_start == 2
    assert resumed.average_at_start is not None
    for name, value in ckpt["state_dict"].items():
        assert torch.equal(resumed.average_at_start[name], value), name
    # the third step started from the raw w2: it differs from w2 by one SGD step, not by the EMA gap
    w2, w3 = first.steps[-1], resumed.steps[-1]
    gap_from_raw = max((w3[k] - w2[k]).abs().max().item() for k in w2)
    gap_from_average = max((w3[k] - ckpt["state_dict"][k]).abs().max().item() for k in w2)
    assert gap_from_raw < gap_from_average


def test_tta_logits_are_the_mean_of_the_views() -> None:
    torch.manual_seed(0)
    model = create_backbone("lenet5", num_classes=10, in_chans=1).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        plain, mirrored = model(x), model(x.flip(-1))
        torch.testing.assert_close(tta_logits(model, x, "none"), plain)
        torch.testing.assert_close(tta_logits(model, x, "flip"), (plain + mirrored) / 2)
        # shifted one pixel down-right: the content moves, the uncovered row/column is reflected
        moved = shift(x, 1, 1)
        assert torch.equal(moved[..., 1:, 1:], x[..., :-1, :-1])
        assert torch.equal(moved[..., 0, 1:], x[..., 1, :-1])
        up_left = x.new_empty(x.shape)
        up_left[..., :-1, :-1] = x[..., 1:, 1:]
        assert torch.equal(shift(x, -1, -1)[..., :-1, :-1], up_left[..., :-1, :-1])

        def fm(v: torch.Tensor) -> torch.Tensor:
            return (model(v) + model(v.flip(-1))) / 2

        expected = 0.5 * fm(x) + 0.25 * fm(shift(x, 1, 1)) + 0.25 * fm(shift(x, -1, -1))
        torch.testing.assert_close(tta_logits(model, x, "flip_translate"), expected)


def test_the_task_scores_test_batches_under_tta_and_validation_without(data_root: Path, mirror: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(backbone="lenet5", in_chans=1, test_time_augmentation="flip").eval()
    dm = _data(data_root)
    dm.setup("fit")
    batch = dm.transform_batch(dm.val_set[list(range(8))], train=False)
    x = batch["image"]
    with torch.no_grad():
        expected = (task.model(x) + task.model(x.flip(-1))) / 2
        torch.testing.assert_close(task.shared_step(batch, "test").preds, expected)
        torch.testing.assert_close(task.shared_step(batch, "val").preds, task.model(x))
        probs = torch.softmax(expected, 1)
        batch["path"] = [str(i) for i in range(8)]
        out = task.predict_step(batch, 0)
        torch.testing.assert_close(out["prob"], probs.max(1).values)


def test_alternating_flips_mirror_each_image_in_every_other_epoch(data_root: Path, mirror: Path) -> None:
    """Every image is flipped in exactly one of two consecutive epochs; about half per epoch; the
    same rows flip in epochs 0 and 2; and the data module applies it to the training batches."""
    rows = torch.arange(4000)
    e0, e1, e2 = (alternating_flips(rows, e, seed=42) for e in (0, 1, 2))
    assert bool((e0 ^ e1).all()) and torch.equal(e0, e2)
    assert 0.45 < e0.float().mean().item() < 0.55
    dm = _data(data_root, hflip=True, flip_mode="alternating", crop_padding=0)
    dm.setup("fit")
    raw = dm.train_dataloader()
    batch = next(iter(raw))
    assert "index" in batch
    unflipped = dm.transform_batch(batch, train=False)["image"]
    for epoch in (0, 1):
        dm.trainer = type("T", (), {"current_epoch": epoch, "training": True})()
        out = dm.transform_batch(batch, train=True)["image"]
        want = alternating_flips(batch["index"], epoch, dm.seed)
        assert torch.equal(out[want], unflipped[want].flip(-1)) and torch.equal(out[~want], unflipped[~want])


def test_reflect_padding_shows_the_mirrored_edge_where_zeros_show_black(data_root: Path, mirror: Path) -> None:
    """A 3x3 image shifted one pixel down-right: reflect pads with row/column 1 (airbench's
    translate), zeros with 0; the data module's ``crop_pad_mode`` applies the same offsets as the
    zero padding does, only the border differs."""
    image = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    offsets = torch.tensor([[0, 0]])
    assert shift_crop(image, 1, offsets, mode="reflect")[0, 0].tolist() == [[5, 4, 5], [2, 1, 2], [5, 4, 5]]
    assert shift_crop(image, 1, offsets)[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]
    dm = {mode: _data(data_root, crop_padding=2, crop_pad_mode=mode, normalize=False) for mode in ("zeros", "reflect")}
    dm["zeros"].setup("fit")
    batch = next(iter(dm["zeros"].train_dataloader()))
    plain = aug.to_float(batch["image"])
    torch.manual_seed(0)
    offsets = aug.draw(len(plain), plain.device, padding=2).offsets
    outs = {}
    for mode, module in dm.items():
        torch.manual_seed(0)
        outs[mode] = module.transform_batch(batch, train=True)["image"]
        assert torch.equal(outs[mode], shift_crop(plain, 2, offsets, mode=mode))
    assert not torch.equal(outs["reflect"], outs["zeros"])


def test_whitening_layer_decorrelates_the_training_patches(data_root: Path, mirror: Path) -> None:
    """After ``init_from_images`` the first half of the whitening filters' outputs on those images
    have (about) the identity covariance; the filters are frozen; a checkpointed net keeps them."""
    dm = _data(data_root)
    dm.setup("fit")
    images = dm.transform_batch(dm.train_set[list(range(64))], train=False)["image"]
    net = create_backbone("airbench94", num_classes=10, in_chans=1)
    assert net.needs_data_init and not net.whiten.weight.requires_grad
    net.init_from_images(images)
    assert not net.needs_data_init
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, net.whiten.weight)[:, : net.whiten.out_channels // 2]
    feats = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
    feats = feats - feats.mean(0)
    cov = feats.T @ feats / (feats.shape[0] - 1)
    torch.testing.assert_close(cov, torch.eye(cov.shape[0]), atol=0.02, rtol=0)
    again = create_backbone("airbench94", num_classes=10, in_chans=1)
    again.load_state_dict(net.state_dict())
    assert not again.needs_data_init and torch.equal(again.whiten.weight, net.whiten.weight)


def test_fit_sets_the_whitening_from_the_training_images_once(data_root: Path, mirror: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(backbone="airbench94", in_chans=1, backbone_options={"widths": [8, 8, 8]})
    before = task.model.whiten.weight.clone()
    dm = _data(data_root)
    _trainer(tmp_path, 1).fit(task, datamodule=dm)
    after = task.model.whiten.weight.clone()
    assert not torch.equal(before, after) and bool(task.model.whiten.initialised)
    expected = create_backbone("airbench94", num_classes=10, in_chans=1, widths=(8, 8, 8))
    dm.setup("fit")
    expected.init_from_images(dm.transform_batch(dm.train_set[list(range(len(dm.train_set)))], train=False)["image"])
    torch.testing.assert_close(after, expected.whiten.weight)


def test_half_precision_on_a_cpu_without_amx_is_one_line(data_root: Path, mirror: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from visionsuite.cli import app

    monkeypatch.setattr(app, "cpu_has_amx", lambda: False)
    config = Path(__file__).parent / "configs" / "lenet5_tiny.yaml"
    code = app.main(["fit", "--config", str(config), "--trainer.precision", "bf16-mixed", "--trainer.default_root_dir",
                     str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path), "--data.init_args.data_dir", str(data_root)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bf16-mixed" in err[0] and "32-true" in err[0], err
    assert not any(tmp_path.iterdir()), "the refused run left a folder"


@pytest.mark.slow
def test_a_compiled_network_gives_the_eager_logits_and_keeps_its_checkpoint_keys() -> None:
    """``compile_mode`` compiles the network in place (inductor: ~30 s cold on this CPU, hence slow)."""
    torch.manual_seed(0)
    task = ClassificationTask(backbone="lenet5", in_chans=1, compile_mode="default").eval()
    keys = list(task.state_dict())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        eager = task.model(x)
        task.compile_network()
        compiled = task.model(x)
    assert task.model._compiled_call_impl is not None
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert list(task.state_dict()) == keys
